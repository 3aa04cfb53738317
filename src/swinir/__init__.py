"""SwinIR image restoration: the network, its published presets, checkpoints, and inference.

    import swinir
    model = swinir.load("001_classicalSR_DIV2K_s48w8_SwinIR-M_x2.pth")   # or a .safetensors file: a ModelDescriptor
    model = swinir.load("classical-x2", download=True)                     # the authors' model, cached
    sr = swinir.restore(model, image)                                      # uint8/uint16 array or float tensor
"""

from .checkpoints import convert, save_safetensors
from .descriptor import ModelDescriptor
from .engine import restore
from .errors import SwinIRError
from .hub import load
from .network import SwinIR
from .presets import PRESETS, ModelConfig, Preset, get_preset, infer_config

__version__ = "0.1.0"
__all__ = [
    "PRESETS", "ModelConfig", "ModelDescriptor", "Preset", "SwinIR", "SwinIRError", "convert", "get_preset",
    "infer_config", "load", "restore", "save_safetensors",
]
