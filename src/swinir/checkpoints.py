"""Reading, recognising and writing SwinIR weights.

What a network *is* lives in :mod:`swinir.network` and :mod:`swinir.presets`; this module only recognises
weights: it reads reference ``.pth`` files (never unpickling code: ``torch.load(weights_only=True)``) and
safetensors files, infers the architecture from the tensor names and shapes, and writes safetensors whose
metadata carries the config so that they load with no further information.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import SwinIRError
from .fileio import atomic_path
from .network import SwinIR, relative_position_index, shift_attention_mask
from .presets import ModelConfig, Preset, get_preset
from .tasks import (
    FAMILY_LABELS,
    Family,
    family_label,
    family_of,
    is_family_name,
    same_size_family,
    upsamples,
    upscaling_family,
)

CONFIG_KEY = "swinir.config"
METADATA_PREFIX = "swinir."
DERIVED_BUFFERS = re.compile(r".*\.(attn\.relative_position_index|attn_mask)$")
StateDict = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def read_checkpoint(path: str | os.PathLike) -> tuple[StateDict, dict[str, str]]:
    """The state dict and the ``swinir.*`` metadata (empty for ``.pth``) of a weights file."""
    path = Path(path)
    if not path.is_file():
        raise SwinIRError(f"{path}: no such weights file; pass the path of a .pth or .safetensors checkpoint")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
        except Exception as err:
            raise SwinIRError(f"{path}: not a readable safetensors file ({err}); re-download or re-export it") from err
        return state, {k: v for k, v in meta.items() if k.startswith(METADATA_PREFIX)}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refuses anything but tensors and plain containers
        raise SwinIRError(
            f"{path}: refused to load: not a plain PyTorch state dict (damaged, or holding pickled objects other "
            "than tensors, possibly code); only weights are ever loaded. Re-download it, or convert a file you "
            "trust in its own environment"
        ) from err
    except Exception as err:
        raise SwinIRError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    return _unwrap_state_dict(obj, path), {}


def _unwrap_state_dict(obj: Any, path: Path) -> StateDict:
    """Top-level ``params_ema`` wins over ``params``; otherwise the object itself must be a state dict."""
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params", "state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SwinIRError(
            f"{path}: not a SwinIR state dict (expected a mapping of tensor names to tensors, "
            "possibly under 'params_ema' or 'params')"
        )
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


# --------------------------------------------------------------------------------------------------
# Recognising
# --------------------------------------------------------------------------------------------------


def infer_config(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """Recover the architecture from tensor names and shapes (reference key layout).

    ``img_range`` cannot be read from weights: it is 255 for the JPEG models (the only ones with window 7
    and no upsampler) and 1 otherwise, as in every published checkpoint. ``img_size`` is read from a stored
    shift mask when there is one (it only matters for those buffers).
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

    if "conv_up1.weight" in state:
        upsampler, upscale = "nearest+conv", 4 if "conv_up2.weight" in state else 2
    elif "conv_before_upsample.0.weight" in state:
        upsampler = "pixelshuffle"
        convs = [k for k in state if re.fullmatch(r"upsample\.\d+\.weight", k)]
        first = state["upsample.0.weight"].shape[0] // state["upsample.0.weight"].shape[1]
        upscale = 3 if first == 9 else 2 ** len(convs)
    elif "upsample.0.weight" in state:
        upsampler = "pixelshuffledirect"
        upscale = math.isqrt(state["upsample.0.weight"].shape[0] // in_chans)
    else:
        upsampler, upscale = "", 1

    img_size = 64
    mask = next((v for k, v in state.items() if k.endswith(".attn_mask")), None)
    if mask is not None and mask.ndim == 3:
        img_size = math.isqrt(mask.shape[0]) * window
    img_range = 255.0 if (upsampler == "" and window == 7) else 1.0
    return ModelConfig(
        upscale=upscale, in_chans=in_chans, img_size=img_size, window_size=window, img_range=img_range,
        depths=tuple(depths), embed_dim=embed_dim, num_heads=tuple(heads), mlp_ratio=mlp_ratio,
        upsampler=upsampler, resi_connection=resi,
    )


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise one clear line when ``state`` does not fit ``model``: missing, unexpected, mis-shaped tensors."""
    expected = model.state_dict()
    given = {k: v for k, v in state.items() if not DERIVED_BUFFERS.match(k)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(given))
        if given[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:

        def listing(label: str, items: list[str]) -> str:
            return f"{len(items)} {label} ({', '.join(items[:4])}{', ...' if len(items) > 4 else ''})"

        parts = [listing(n, x) for n, x in (("missing", missing), ("unexpected", unexpected),
                                             ("shape conflicts", shapes)) if x]
        raise SwinIRError(
            "checkpoint does not match the model: " + "; ".join(parts)
            + ". Use the preset it was trained with, or omit --preset to infer it"
        )


def resolve_config(state: Mapping[str, torch.Tensor], meta: Mapping[str, str],
                   preset: str | Preset | ModelConfig | None) -> ModelConfig:
    """The config to build: an explicit preset, else the file's metadata, else inferred from the weights."""
    if isinstance(preset, ModelConfig):
        return preset
    if isinstance(preset, Preset):
        return preset.config
    if isinstance(preset, str):
        return get_preset(preset).config
    if CONFIG_KEY in meta:
        try:
            return ModelConfig.from_dict(json.loads(meta[CONFIG_KEY]))
        except json.JSONDecodeError as err:
            raise SwinIRError(f"the '{CONFIG_KEY}' metadata is not valid JSON ({err})") from err
    return infer_config(state)


def load(path: str | os.PathLike, preset: str | Preset | ModelConfig | None = None, *,
         device: str | torch.device = "cpu") -> SwinIR:
    """A ready network (eval mode) from a reference ``.pth`` or a ``.safetensors`` file.

    The returned module carries ``config`` (a :class:`ModelConfig`) and ``metadata`` (the file's
    ``swinir.*`` metadata, e.g. ``swinir.task``) as attributes.
    """
    state, meta = read_checkpoint(path)
    config = resolve_config(state, meta, preset)
    model = config.build()
    check_state_dict(model, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # inconsistent derived buffers
        raise SwinIRError(f"{path}: {str(err).splitlines()[-1].strip()}") from err
    model.metadata = dict(meta)
    return model.eval().to(device)


def read_header(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, str]]:
    """A weights file's config and ``swinir.*`` metadata, without loading its tensors where the file allows.

    A safetensors file that carries its config (``swinir convert``, training exports, the bundled models) is
    described from its header alone, which is what a server listing many models wants at start-up. Other
    files (reference ``.pth``) are read whole once to infer the architecture, and the tensors are dropped.
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = {k: v for k, v in (f.metadata() or {}).items() if k.startswith(METADATA_PREFIX)}
        except Exception as err:
            raise SwinIRError(f"{path}: not a readable safetensors file ({err}); re-download or re-export it") from err
        if CONFIG_KEY in meta:
            return resolve_config({}, meta, None), meta
    state, meta = read_checkpoint(path)
    return resolve_config(state, meta, None), meta


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def parameters_only(model_or_state: torch.nn.Module | Mapping[str, torch.Tensor]) -> StateDict:
    """Contiguous CPU copies of the learned tensors, derived buffers left out."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    return {k: v.detach().cpu().contiguous() for k, v in state.items() if not DERIVED_BUFFERS.match(k)}


def save_safetensors(path: str | os.PathLike, model_or_state: torch.nn.Module | Mapping[str, torch.Tensor],
                     config: ModelConfig, metadata: Mapping[str, Any] | None = None) -> None:
    """Write weights with the config (and ``swinir.*`` metadata) atomically: temp file, fsync, rename."""
    with atomic_path(path) as tmp:
        save_file(parameters_only(model_or_state), tmp, metadata=_file_metadata(config, metadata))


def _file_metadata(config: ModelConfig, metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """The safetensors metadata this package writes: the config, then ``swinir.*`` entries as strings."""
    meta = {CONFIG_KEY: config.to_json()}
    for key, value in (metadata or {}).items():
        key = key if key.startswith(METADATA_PREFIX) else METADATA_PREFIX + key
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def reference_state_dict(model: SwinIR) -> StateDict:
    """The state dict the reference code expects, derived buffers included (for its ``img_size``).

    The inverse of reading: :func:`parameters_only` drops the buffers that :data:`DERIVED_BUFFERS` names (the
    network checks them on load); this puts them back as the reference constructor registers them: a
    ``relative_position_index`` in every block, an ``attn_mask`` for an ``img_size`` map in shifted blocks
    only (a block whose ``img_size`` does not exceed the window is built unshifted, so it has none).
    """
    state = parameters_only(model)
    for i, layer in enumerate(model.layers):
        for j, block in enumerate(layer.residual_group.blocks):
            prefix = f"layers.{i}.residual_group.blocks.{j}."
            state[prefix + "attn.relative_position_index"] = relative_position_index(block.window_size)
            if block.shift_size:
                side = model.img_size
                state[prefix + "attn_mask"] = shift_attention_mask(side, side, block.window_size, block.shift_size)
    return state


CONVERT_TARGETS: dict[str, tuple[str, ...]] = {  # --to: the file suffixes each format is written as
    "swinir": (".safetensors",),  # parameters only, the config and swinir.* metadata in the header
    "reference": (".pth", ".safetensors"),  # the reference's keys and derived buffers ({"params": ...} in .pth)
}


def check_target(dst: str | os.PathLike, to: str) -> None:
    """Refuse, in one line and before any work, a ``--to`` format this package does not write or a file
    suffix the format is not written as."""
    if to not in CONVERT_TARGETS:
        raise SwinIRError(f"--to {to}: unknown format; use swinir (this package's .safetensors, config in the "
                          "metadata) or reference (the official code's state dict, .pth or .safetensors)")
    suffix = Path(dst).suffix
    if suffix not in CONVERT_TARGETS[to]:
        other = next((f" (or pass --to {t})" for t, suffixes in CONVERT_TARGETS.items() if suffix in suffixes), "")
        raise SwinIRError(f"{dst}: --to {to} writes {' or '.join(CONVERT_TARGETS[to])} files, not "
                          f"'{suffix or 'no extension'}'; name the output accordingly{other}")


def save_reference(path: str | os.PathLike, model: SwinIR, metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` as the reference code's state dict (:func:`reference_state_dict`), atomically.

    ``.pth``: ``{"params": state_dict}`` saved with ``torch.save``, as the official scripts read it (plain
    tensors: it loads with ``weights_only=True``). ``.safetensors``: the same tensors, with this package's
    config and ``metadata`` in the header (the reference's loaders ignore it; this package reads it back).
    """
    check_target(path, "reference")
    state = reference_state_dict(model)
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".pth":
            torch.save({"params": state}, tmp)
        else:
            save_file(state, tmp, metadata=_file_metadata(model.config, metadata))


def reference_gaps(path: str | os.PathLike, config: ModelConfig) -> dict[str, tuple[Any, Any]]:
    """Config fields that the weights in ``path`` cannot tell, as ``{field: (true value, what the weights
    suggest)}``: a reader that infers the architecture from the tensors (spandrel, :func:`infer_config`)
    must be given these. Empty for every published configuration."""
    state, _ = read_checkpoint(path)
    inferred = infer_config(state).to_dict()
    return {k: (v, inferred[k]) for k, v in config.to_dict().items() if inferred[k] != v}


def convert(src: str | os.PathLike, dst: str | os.PathLike, preset: str | None = None, *,
            to: str = "swinir") -> ModelConfig:
    """Any checkpoint this package loads -> ``dst`` in the ``to`` format (:data:`CONVERT_TARGETS`).

    ``swinir``: safetensors with the config in its metadata. ``reference``: the official code's state dict
    (:func:`save_reference`), which its scripts, spandrel, chaiNNer and ComfyUI load strictly. The source's
    ``swinir.*`` metadata is kept where the format has a header.
    """
    check_target(dst, to)
    model = load(src, preset)
    meta = {k: v for k, v in model.metadata.items() if k != CONFIG_KEY}
    if to == "reference":
        save_reference(dst, model, meta)
    else:
        save_safetensors(dst, model, model.config, meta)
    return model.config


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------------
# Recognising what weights are for
# --------------------------------------------------------------------------------------------------

_OFFICIAL_LEVEL = re.compile(r"(noise|jpeg)(\d+)(?!.*\d)")


@dataclass(frozen=True)
class ModelInfo:
    """What a network is for, as far as its file tells: the task family, scale, channels, and the degradation
    level it was trained on (a ``(low, high)`` range; equal ends for one level; None where unknown)."""

    family: Family
    scale: int
    channels: int
    level: tuple[float, float] | None = None

    @property
    def blind(self) -> bool:
        return self.level is not None and self.level[0] < self.level[1]

    @property
    def label(self) -> str:
        return family_label(self.family, self.scale)

    def check_options(self, *, scale: int | None = None, sigma: float | None = None,
                      quality: int | None = None) -> None:
        """Refuse, in one line, a request option that does not apply to this model (instead of ignoring it)."""
        if scale is not None and scale != self.scale:
            if not upsamples(self.family):
                raise SwinIRError(f"--scale {scale} does not apply: {FAMILY_LABELS[self.family]} keeps the image "
                                  "size (remove --scale)")
            raise SwinIRError(f"--scale {scale} does not apply: these weights upscale x{self.scale} "
                              f"(drop --scale, or use weights trained for x{scale})")
        for name, value, family in (("sigma", sigma, "denoise"), ("quality", quality, "jpeg")):
            if value is None:
                continue
            if self.family != family:
                raise SwinIRError(f"--{name} is for {family} models; this one does {FAMILY_LABELS[self.family]}")
            if self.level is None:
                continue
            low, high = self.level
            if self.blind:
                raise SwinIRError(f"--{name} does not apply: the model is blind (trained for {name} {low:g}-"
                                  f"{high:g}) and estimates the level itself; remove --{name}")
            if value != low:
                raise SwinIRError(f"--{name} {value:g} does not fit: the model was trained for {name} {low:g} only; "
                                  f"use weights trained for {value:g}, or a blind model")


def model_info(config: ModelConfig, meta: Mapping[str, str], name: str | None = None) -> ModelInfo:
    """Recognise a model: a task-like ``name`` wins, then the ``swinir.task`` metadata, then the architecture.

    The level comes from the training config in the metadata (swinir train's exports) or from an official
    checkpoint's file name (``..._noise25.pth``, ``..._jpeg10.pth``).
    """
    family: Family | None = None
    for hint in (name, meta.get(f"{METADATA_PREFIX}task")):
        if hint and is_family_name(hint):
            family = family_of(hint)
            break
    if family is None:
        family = upscaling_family(config.upsampler) if config.upscale > 1 else same_size_family(config.window_size,
                                                                                      config.img_range)
    level: tuple[float, float] | None = None
    training = meta.get(f"{METADATA_PREFIX}training_config")
    if training and family in ("denoise", "jpeg"):
        task = json.loads(training).get("task", {})
        value = task.get("sigma" if family == "denoise" else "quality")
        if isinstance(value, list | tuple) and len(value) == 2:
            level = (float(value[0]), float(value[1]))
    if level is None and name:
        match = _OFFICIAL_LEVEL.search(Path(name).name)
        if match and (match.group(1) == "noise") == (family == "denoise"):
            level = (float(match.group(2)),) * 2
    return ModelInfo(family, int(config.upscale), int(config.in_chans), level)
