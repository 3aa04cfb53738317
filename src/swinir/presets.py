"""Model configurations: one typed record per network, and the table of every published SwinIR.

A :class:`ModelConfig` is what a network *is* (the constructor arguments that shape its weights). It is
what safetensors metadata stores, what :func:`infer_config` recovers from a state dict, and what
:data:`PRESETS` names. Unknown keys are errors, never silently ignored.

The table also answers what weights alone cannot tell, from the published models themselves: the input
range a network was trained with (:func:`published_img_range`: 255 for the JPEG models) and the task family
an architecture points to (:func:`architecture_family`). No other module restates those facts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .errors import SwinIRError
from .network import RESI_CONNECTIONS, UPSAMPLERS, SwinIR
from .tasks import Family, family_of


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of one SwinIR network (the reference constructor's shape-defining arguments)."""

    upscale: int = 1
    in_chans: int = 3
    img_size: int = 64
    window_size: int = 8
    img_range: float = 1.0
    depths: tuple[int, ...] = (6, 6, 6, 6)
    embed_dim: int = 60
    num_heads: tuple[int, ...] = (6, 6, 6, 6)
    mlp_ratio: float = 2.0
    upsampler: str = ""
    resi_connection: str = "1conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))
        problems = []
        if self.upsampler not in UPSAMPLERS:
            problems.append(f"upsampler {self.upsampler!r} is not one of {UPSAMPLERS}")
        if self.resi_connection not in RESI_CONNECTIONS:
            problems.append(f"resi_connection {self.resi_connection!r} is not one of {RESI_CONNECTIONS}")
        if len(self.depths) != len(self.num_heads) or not self.depths:
            problems.append(f"depths {list(self.depths)} and num_heads {list(self.num_heads)} must be equally long")
        if any(self.embed_dim % h for h in self.num_heads):
            problems.append(f"embed_dim {self.embed_dim} is not divisible by every num_heads {list(self.num_heads)}")
        if self.in_chans not in (1, 3):
            problems.append(f"in_chans must be 1 or 3, got {self.in_chans}")
        if (self.upsampler == "") != (self.upscale == 1):
            problems.append(f"upscale {self.upscale} does not fit upsampler {self.upsampler!r}")
        if problems:
            raise SwinIRError("invalid model config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a mapping; unknown keys are an error (a typo must not become a default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SwinIRError(f"unknown model config keys {unknown}; valid keys are {sorted(names)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["depths"], d["num_heads"] = list(self.depths), list(self.num_heads)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def build(self, **runtime: Any) -> SwinIR:
        """A fresh network; ``runtime`` passes non-architectural options (drop_path_rate, attention).

        The network is only the module: what is known about a loaded model (this config, its task, its
        metadata) travels beside it in a :class:`swinir.descriptor.ModelDescriptor`.
        """
        return SwinIR(**self.to_dict(), **runtime)

    @classmethod
    def of(cls, network: SwinIR) -> ModelConfig:
        """The config of a built network: its weights' names and shapes (:func:`infer_config`), and the two
        constructor arguments that only the module itself keeps (``img_size``, ``img_range``)."""
        inferred = infer_config(network.state_dict())
        return inferred.replace(img_size=int(network.img_size), img_range=float(network.img_range))

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Preset:
    """A named configuration the paper publishes (or this project ships), with what it is for."""

    name: str
    task: str
    config: ModelConfig
    description: str
    official_params: int | None = None  # parameter count of the reference model, where published
    official_checkpoints: tuple[str, ...] = field(default=())


_M = {"depths": (6,) * 6, "embed_dim": 180, "num_heads": (6,) * 6, "mlp_ratio": 2.0}
_S = {"depths": (6,) * 4, "embed_dim": 60, "num_heads": (6,) * 4, "mlp_ratio": 2.0}
_L = {"depths": (6,) * 9, "embed_dim": 240, "num_heads": (8,) * 9, "mlp_ratio": 2.0}


def _classical(scale: int, params: int) -> Preset:
    return Preset(
        f"classical_sr_x{scale}", "classical_sr",
        ModelConfig(upscale=scale, img_size=48, window_size=8, upsampler="pixelshuffle", **_M),
        f"SwinIR-M classical (bicubic) SR x{scale}, trained on DIV2K with 48x48 LR patches",
        params,
        (f"001_classicalSR_DIV2K_s48w8_SwinIR-M_x{scale}.pth", f"001_classicalSR_DF2K_s64w8_SwinIR-M_x{scale}.pth"),
    )


def _lightweight(scale: int, params: int) -> Preset:
    return Preset(
        f"lightweight_sr_x{scale}", "lightweight_sr",
        ModelConfig(upscale=scale, img_size=64, window_size=8, upsampler="pixelshuffledirect", **_S),
        f"SwinIR-S lightweight SR x{scale} (pixel-shuffle-direct head)",
        params,
        (f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{scale}.pth",),
    )


def _same_size(name: str, task: str, chans: int, window: int, img_size: int, rng: float, params: int,
               what: str, files: tuple[str, ...]) -> Preset:
    cfg = ModelConfig(upscale=1, in_chans=chans, img_size=img_size, window_size=window, img_range=rng, **_M)
    return Preset(name, task, cfg, what, params, files)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _classical(2, 11_752_487),
        _classical(3, 11_937_127),
        _classical(4, 11_900_199),
        _classical(8, 12_047_911),
        _lightweight(2, 910_152),
        _lightweight(3, 918_267),
        _lightweight(4, 929_628),
        Preset(
            "real_sr_x4_m", "real_sr",
            ModelConfig(upscale=4, img_size=64, window_size=8, upsampler="nearest+conv", **_M),
            "SwinIR-M real-world SR x4 (BSRGAN-style degradations, GAN-trained)", 11_715_559,
            ("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth"),
        ),
        Preset(
            "real_sr_x4_l", "real_sr",
            ModelConfig(upscale=4, img_size=64, window_size=8, upsampler="nearest+conv", resi_connection="3conv",
                        **_L),
            "SwinIR-L real-world SR x4 (3conv residual connections, GAN-trained)", 28_013_059,
            ("003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth",
             "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_PSNR.pth"),
        ),
        Preset(
            "real_sr_x2_m", "real_sr",
            ModelConfig(upscale=2, img_size=64, window_size=8, upsampler="nearest+conv", **_M),
            "SwinIR-M real-world SR x2 (the x4 model's head with one upsampling step, GAN-trained)",
            11_678_631,  # counted: the reference publishes no figure for it
            ("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth",),
        ),
        _same_size("gray_dn", "gray_dn", 1, 8, 128, 1.0, 11_497_681, "SwinIR-M gray denoising (one model per sigma)",
                   tuple(f"004_grayDN_DFWB_s128w8_SwinIR-M_noise{s}.pth" for s in (15, 25, 50))),
        _same_size("color_dn", "color_dn", 3, 8, 128, 1.0, 11_504_163, "SwinIR-M color denoising (one model per sigma)",
                   tuple(f"005_colorDN_DFWB_s128w8_SwinIR-M_noise{s}.pth" for s in (15, 25, 50))),
        _same_size("gray_car", "gray_car", 1, 7, 126, 255.0, 11_485_585,
                   "SwinIR-M gray JPEG artifact reduction (one model per quality)",
                   tuple(f"006_CAR_DFWB_s126w7_SwinIR-M_jpeg{q}.pth" for q in (10, 20, 30, 40))),
        _same_size("color_car", "color_car", 3, 7, 126, 255.0, 11_492_067,
                   "SwinIR-M color JPEG artifact reduction (one model per quality)",
                   tuple(f"006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg{q}.pth" for q in (10, 20, 30, 40))),
    )
}


def preset_help(what: str) -> str:
    """A ``--preset`` help line: what the option does, then every preset's name (so ``--help`` lists them)."""
    return f"{what}; one of {', '.join(PRESETS)}"


def get_preset(name: str) -> Preset:
    """Look a preset up by name; an unknown name lists the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SwinIRError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def preset_for_checkpoint_name(filename: str) -> Preset | None:
    """The preset of an official checkpoint file name, e.g. ``005_colorDN_DFWB_s128w8_SwinIR-M_noise15.pth``."""
    for preset in PRESETS.values():
        if filename in preset.official_checkpoints:
            return preset
    return None


def published_img_range(upsampler: str, window_size: int) -> float:
    """The input range of the published networks with this head and window, which weights cannot tell: 255
    for the JPEG models (same-size, 7x7 windows), 1 for every other one and for architectures not published."""
    ranges = {p.config.img_range for p in PRESETS.values()
              if p.config.upsampler == upsampler and p.config.window_size == window_size}
    return ranges.pop() if len(ranges) == 1 else 1.0


def _family_traits(family: Family, field_name: str) -> set[Any]:
    """The values of one config field among the published networks of a family."""
    return {getattr(p.config, field_name) for p in PRESETS.values() if family_of(p.task) == family}


def architecture_family(config: ModelConfig) -> Family:
    """The task family an architecture points to where no name or metadata tells, as the published networks
    differ: an upscaling head used only by the real-world models (``nearest+conv``, which avoids
    pixel-shuffle's checkerboards under GAN training) means photo, any other sr; a same-size network with the
    JPEG models' window (7) or input range (255) means jpeg, any other denoise."""
    if config.upscale > 1:
        return "photo" if config.upsampler in _family_traits("photo", "upsampler") else "sr"
    jpeg_like = (config.window_size in _family_traits("jpeg", "window_size")
                 or config.img_range in _family_traits("jpeg", "img_range"))
    return "jpeg" if jpeg_like else "denoise"


def infer_config(state: Mapping[str, Tensor]) -> ModelConfig:
    """Recover the architecture from tensor names and shapes (reference key layout).

    ``img_range`` cannot be read from weights: it is the published networks' (:func:`published_img_range`).
    ``img_size`` is read from a stored shift mask when there is one (it only matters for those buffers).
    """
    try:
        conv_first = state["conv_first.weight"]
    except KeyError:
        raise SwinIRError("not a SwinIR state dict: it has no 'conv_first.weight'") from None
    embed_dim, in_chans = conv_first.shape[:2]
    depths: list[int] = []
    heads: list[int] = []
    while f"layers.{len(depths)}.residual_group.blocks.0.attn.qkv.weight" in state:
        i = len(depths)
        block_norm = re.compile(rf"layers\.{i}\.residual_group\.blocks\.\d+\.norm1\.weight")
        depths.append(sum(1 for k in state if block_norm.fullmatch(k)))
        heads.append(state[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"].shape[1])
    if not depths:
        raise SwinIRError("not a SwinIR state dict: no 'layers.0.residual_group.blocks.0' found")
    table = state["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"]
    window = (math.isqrt(table.shape[0]) + 1) // 2
    mlp_ratio = state["layers.0.residual_group.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    resi = "3conv" if "conv_after_body.0.weight" in state else "1conv"
    upsampler, upscale = _infer_head(state, in_chans)
    img_size = 64
    mask = next((v for k, v in state.items() if k.endswith(".attn_mask")), None)
    if mask is not None and mask.ndim == 3:
        img_size = math.isqrt(mask.shape[0]) * window
    return ModelConfig(
        upscale=upscale, in_chans=in_chans, img_size=img_size, window_size=window,
        img_range=published_img_range(upsampler, window), depths=tuple(depths), embed_dim=embed_dim,
        num_heads=tuple(heads), mlp_ratio=mlp_ratio, upsampler=upsampler, resi_connection=resi,
    )


def _infer_head(state: Mapping[str, Tensor], in_chans: int) -> tuple[str, int]:
    """The upsampler and the scale, from the head's tensors."""
    if "conv_up1.weight" in state:
        return "nearest+conv", 4 if "conv_up2.weight" in state else 2
    if "conv_before_upsample.0.weight" in state:
        convs = [k for k in state if re.fullmatch(r"upsample\.\d+\.weight", k)]
        first = state["upsample.0.weight"].shape[0] // state["upsample.0.weight"].shape[1]
        return "pixelshuffle", 3 if first == 9 else 2 ** len(convs)
    if "upsample.0.weight" in state:
        return "pixelshuffledirect", math.isqrt(state["upsample.0.weight"].shape[0] // in_chans)
    return "", 1
