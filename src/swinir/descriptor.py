"""What a loaded model is, apart from how its weights were recognised (after spandrel's ``ImageModelDescriptor``).

A :class:`ModelDescriptor` is what :func:`swinir.load`, :func:`swinir.backends.open_model` and the web service
hand to the engine: the network that computes (a PyTorch :class:`~swinir.network.SwinIR`, or the onnxruntime
runner of an export), its architecture and :class:`~swinir.presets.ModelConfig`, what it is for
(:class:`ModelInfo`: task family, scale, channels, the noise level or JPEG quality it was trained on), the
precisions its backend computes in and its memory per pixel (:data:`BACKENDS`), and its typed ``swinir.*``
metadata (:class:`~swinir.metadata.ModelMetadata`). The network itself carries none of this.

Recognising weights (reading files, inferring the architecture, the task from names and metadata) is
:mod:`swinir.checkpoints`' job; this module only records what was recognised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .errors import OptionRefused
from .metadata import ModelMetadata
from .network import SwinIR
from .precision import Precision
from .presets import ModelConfig, architecture_family
from .tasks import FAMILY_LABELS, RESTORE_LEVELS, Family, family_label, upsamples

Backend = Literal["torch", "onnxruntime"]


@dataclass(frozen=True)
class BackendTraits:
    """What a backend computes in, and how much memory one pass takes.

    Attributes:
        precisions: the precisions it computes in (the first is what ``auto`` falls back to).
        activation_factor: measured peak bytes per LR pixel over :func:`activation_elements` x the bytes of
            one element.
        memory_cap: the most its default tiling budget may be (None: half the free memory, the engine's default).
    """

    precisions: tuple[Precision, ...]
    activation_factor: float
    memory_cap: int | None = None


BACKENDS: dict[Backend, BackendTraits] = {
    # PyTorch runs the blocks a chunk of windows at a time, so its peak stays near the shapes' estimate
    "torch": BackendTraits(("fp32", "bf16", "fp16"), 1.5),
    # onnxruntime runs the whole image at once in fp32. Measured (VmHWM growth, 2-CPU Xeon, onnxruntime 1.32,
    # 2026-12-05): SwinIR-S x4 19.4-19.7 KB/px at 128-192 px (1.08 x the shapes), a 12-channel x2 toy
    # 3.6-5.5 KB/px (0.76-1.17 x); the factor covers both. Its default budget is capped at 2 GB.
    "onnxruntime": BackendTraits(("fp32",), 1.2, 2 << 30),
}


def backend_precision(backend: Backend, choice: str) -> str:
    """The precision a backend runs at for a requested one: the choice itself where the backend has a choice
    (``auto`` is then resolved per device by the engine), else its only one; one it lacks is refused."""
    precisions = BACKENDS[backend].precisions
    if choice in precisions or (choice == "auto" and len(precisions) > 1):
        return choice
    if choice == "auto":
        return precisions[0]
    others = [f"the {b} backend for {choice}" for b, traits in BACKENDS.items() if choice in traits.precisions]
    raise OptionRefused("precision", choice, problem="is not available", accepted=precisions, alternatives=others,
                        reason=f"the {backend} backend computes in {'/'.join(precisions)}")


def activation_elements(config: ModelConfig) -> float:
    """Elements alive per LR pixel at the peak of one forward pass, from the shapes: the MLP hidden layer,
    q/k/v and attention logits of one block, plus the upsampling head."""
    heads = max(config.num_heads)
    ws = config.window_size
    return (config.embed_dim * (8 + 2 * config.mlp_ratio) + heads * ws * ws * 2
            + 64 * config.upscale * config.upscale * 3)


# --------------------------------------------------------------------------------------------------
# What a model is for
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What a network is for, as far as its file tells: the task family, scale, channels, and the degradation
    level it was trained on (a ``(low, high)`` range; equal ends for one level; None where unknown)."""

    family: Family
    scale: int
    channels: int
    level: tuple[float, float] | None = None

    @classmethod
    def of_architecture(cls, config: ModelConfig) -> ModelInfo:
        """What the architecture alone says (:func:`swinir.presets.architecture_family`), level unknown."""
        return cls(architecture_family(config), int(config.upscale), int(config.in_chans))

    @property
    def blind(self) -> bool:
        return self.level is not None and self.level[0] < self.level[1]

    @property
    def label(self) -> str:
        return family_label(self.family, self.scale)

    def check_options(self, *, scale: int | None = None, sigma: float | None = None,
                      quality: int | None = None) -> None:
        """Refuse, as an :class:`~swinir.errors.OptionRefused`, a request option that does not apply to this
        model (instead of ignoring it): another scale, or a level its family does not take, it estimates
        itself (blind) or it was not trained for."""
        if scale is not None and scale != self.scale:
            if not upsamples(self.family):
                raise keeps_size_refusal(self.family, scale)
            raise OptionRefused("scale", scale, reason=f"these weights upscale x{self.scale}", omit=True,
                                alternatives=[f"weights trained for x{scale}"])
        for name, value in (("sigma", sigma), ("quality", quality)):
            if value is not None:
                self._check_level(name, value)

    def _check_level(self, name: str, value: float) -> None:
        taker = next(family for family, level in RESTORE_LEVELS.items() if level == name)
        if RESTORE_LEVELS.get(self.family) != name:
            raise OptionRefused(name, value, omit=True, reason=f"{FAMILY_LABELS[self.family]} models take none "
                                                              f"({name} is for {taker} models)")
        if self.level is None:
            return
        low, high = self.level
        if self.blind:
            raise OptionRefused(name, value, omit=True, reason=f"the model is blind (trained for {name} {low:g}-"
                                                              f"{high:g}) and estimates the level itself")
        if value != low:
            raise OptionRefused(name, value, problem="does not fit", accepted=[low],
                                reason=f"the model was trained for {name} {low:g} only",
                                alternatives=[f"weights trained for {value:g}", "a blind model"])


def keeps_size_refusal(family: Family, scale: int) -> OptionRefused:
    """The refusal of a scale for a family that keeps the image size."""
    return OptionRefused("scale", scale, reason=f"{FAMILY_LABELS[family]} keeps the image size", omit=True)


# --------------------------------------------------------------------------------------------------
# The descriptor
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ModelDescriptor:
    """A loaded model: the network that computes and everything known about it (module docstring).

    It runs like the network (call it on a float tensor (B, C, H, W) in [0, 1]; ``eval()``, ``to()``,
    ``float()``, ``half()``, ``bfloat16()``, ``double()``) and answers what the engine asks: ``upscale``,
    ``in_chans``, ``window_size``, ``device``, ``dtype``, :meth:`activation_bytes_per_pixel`,
    :attr:`default_memory_cap`. The module itself, for what only it does (``state_dict``,
    ``set_attention``), is :attr:`network`.
    """

    network: Any
    config: ModelConfig
    info: ModelInfo
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    backend: Backend = "torch"
    architecture: str = "SwinIR"

    # ---- what the network is ------------------------------------------------------------------------

    @property
    def upscale(self) -> int:
        return int(self.config.upscale)

    scale = upscale  # spandrel's name

    @property
    def in_chans(self) -> int:
        return int(self.config.in_chans)

    @property
    def window_size(self) -> int:
        return int(self.config.window_size)

    @property
    def img_range(self) -> float:
        return float(self.config.img_range)

    @property
    def precisions(self) -> tuple[Precision, ...]:
        """The precisions this model's backend computes in."""
        return BACKENDS[self.backend].precisions

    def run_precision(self, choice: str) -> str:
        """The precision to run this model at for a requested one (:func:`backend_precision`)."""
        return backend_precision(self.backend, choice)

    # ---- what the engine asks ----------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        if isinstance(self.network, nn.Module):
            return next(self.network.parameters()).device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        if isinstance(self.network, nn.Module):
            return next(self.network.parameters()).dtype
        return torch.float32

    def activation_bytes_per_pixel(self, precision: Precision = "fp32") -> float:
        """Peak activation bytes per LR pixel of one pass at ``precision`` (the engine tiles from it)."""
        element = 4 if precision == "fp32" or len(self.precisions) == 1 else 2
        return activation_elements(self.config) * element * BACKENDS[self.backend].activation_factor

    @property
    def default_memory_cap(self) -> int | None:
        """The most the engine's default tiling budget may be for this backend (None: no cap)."""
        return BACKENDS[self.backend].memory_cap

    def __call__(self, x: Tensor) -> Tensor:
        return self.network(x)

    def eval(self) -> ModelDescriptor:
        if isinstance(self.network, nn.Module):
            self.network.eval()
        return self

    def to(self, *args: Any, **kwargs: Any) -> ModelDescriptor:
        """Move or cast a PyTorch network as ``nn.Module.to`` does (the onnxruntime runner stays as it is:
        CPU, fp32)."""
        if isinstance(self.network, nn.Module):
            self.network.to(*args, **kwargs)
        return self

    def float(self) -> ModelDescriptor:
        return self.to(torch.float32)

    def double(self) -> ModelDescriptor:
        return self.to(torch.float64)

    def half(self) -> ModelDescriptor:
        return self.to(torch.float16)

    def bfloat16(self) -> ModelDescriptor:
        return self.to(torch.bfloat16)


def describe(model: object) -> ModelDescriptor | None:
    """The descriptor of what the engine was handed: a descriptor itself; for a bare SwinIR module, one built
    from its structure (:meth:`ModelConfig.of`, the task its architecture points to, no metadata); None for a
    stand-in network that is neither."""
    if isinstance(model, ModelDescriptor):
        return model
    if isinstance(model, SwinIR):
        config = ModelConfig.of(model)
        return ModelDescriptor(model, config, ModelInfo.of_architecture(config))
    return None
