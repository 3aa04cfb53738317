"""Reading, recognising and writing SwinIR weights.

What a network *is* lives in :mod:`swinir.network` and :mod:`swinir.presets`, what a loaded model is in
:mod:`swinir.descriptor`; this module recognises weights: it reads reference ``.pth`` files (never unpickling
code: ``torch.load(weights_only=True)``) and safetensors files, takes the architecture from the file's
metadata or infers it from the tensor names and shapes (:func:`swinir.presets.infer_config`), recognises what
the model is for (:func:`model_info`), and writes safetensors whose metadata (:mod:`swinir.metadata`) carries
the config so that they load with no further information.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .descriptor import ModelDescriptor, ModelInfo, describe
from .errors import OptionRefused, SwinIRError, WeightsMismatch
from .fileio import atomic_path
from .metadata import ModelMetadata, entries
from .network import SwinIR, relative_position_index, shift_attention_mask
from .presets import ModelConfig, Preset, get_preset, infer_config
from .tasks import RESTORE_LEVELS, family_of, is_family_name

DERIVED_BUFFERS = re.compile(r".*\.(attn\.relative_position_index|attn_mask)$")
StateDict = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def read_checkpoint(path: str | os.PathLike) -> tuple[StateDict, ModelMetadata]:
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
        return state, ModelMetadata(meta)
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
    return _unwrap_state_dict(obj, path), ModelMetadata()


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
        raise WeightsMismatch("checkpoint does not match the model: " + "; ".join(parts))


def resolve_config(state: Mapping[str, torch.Tensor], meta: Mapping[str, str],
                   preset: str | Preset | ModelConfig | None) -> ModelConfig:
    """The config to build: an explicit preset, else the file's metadata, else inferred from the weights."""
    if isinstance(preset, ModelConfig):
        return preset
    if isinstance(preset, Preset):
        return preset.config
    if isinstance(preset, str):
        return get_preset(preset).config
    stored = ModelMetadata(meta).config
    return stored if stored is not None else infer_config(state)


def load(path: str | os.PathLike, preset: str | Preset | ModelConfig | None = None, *,
         device: str | torch.device = "cpu", name: str | None = None) -> ModelDescriptor:
    """A ready model from a reference ``.pth`` or a ``.safetensors`` file: its network (eval mode, on
    ``device``), config, what it is for (:func:`model_info`, with ``name``, default the file's name, as the
    hint) and ``swinir.*`` metadata, as a :class:`~swinir.descriptor.ModelDescriptor`.
    """
    state, meta = read_checkpoint(path)
    config = resolve_config(state, meta, preset)
    network = config.build()
    check_state_dict(network, state)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:  # inconsistent derived buffers
        raise SwinIRError(f"{path}: {str(err).splitlines()[-1].strip()}") from err
    info = model_info(config, meta, Path(path).name if name is None else name)
    return ModelDescriptor(network.eval().to(device), config, info, meta)


def read_header(path: str | os.PathLike) -> tuple[ModelConfig, ModelMetadata]:
    """A weights file's config and ``swinir.*`` metadata, without loading its tensors where the file allows.

    A safetensors file that carries its config (``swinir convert``, training exports, the bundled models) is
    described from its header alone, which is what a server listing many models wants at start-up. Other
    files (reference ``.pth``) are read whole once to infer the architecture, and the tensors are dropped.
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = ModelMetadata(f.metadata() or {})
        except Exception as err:
            raise SwinIRError(f"{path}: not a readable safetensors file ({err}); re-download or re-export it") from err
        config = meta.config
        if config is not None:
            return config, meta
    state, meta = read_checkpoint(path)
    return resolve_config(state, meta, None), meta


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def parameters_only(model_or_state: ModelDescriptor | torch.nn.Module | Mapping[str, torch.Tensor]) -> StateDict:
    """Contiguous CPU copies of the learned tensors, derived buffers left out."""
    if isinstance(model_or_state, ModelDescriptor):
        model_or_state = model_or_state.network
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    return {k: v.detach().cpu().contiguous() for k, v in state.items() if not DERIVED_BUFFERS.match(k)}


def save_safetensors(path: str | os.PathLike,
                     model_or_state: ModelDescriptor | torch.nn.Module | Mapping[str, torch.Tensor],
                     config: ModelConfig, metadata: Mapping[str, Any] | None = None) -> None:
    """Write weights with the config (and ``swinir.*`` metadata, :func:`swinir.metadata.entries`) atomically:
    temp file, fsync, rename."""
    with atomic_path(path) as tmp:
        save_file(parameters_only(model_or_state), tmp, metadata=entries(config, metadata))


def _network(model: ModelDescriptor | SwinIR) -> SwinIR:
    return model.network if isinstance(model, ModelDescriptor) else model


def reference_state_dict(model: ModelDescriptor | SwinIR) -> StateDict:
    """The state dict the reference code expects, derived buffers included (for its ``img_size``).

    The inverse of reading: :func:`parameters_only` drops the buffers that :data:`DERIVED_BUFFERS` names (the
    network checks them on load); this puts them back as the reference constructor registers them: a
    ``relative_position_index`` in every block, an ``attn_mask`` for an ``img_size`` map in shifted blocks
    only (a block whose ``img_size`` does not exceed the window is built unshifted, so it has none).
    """
    model = _network(model)
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
    """Refuse (:class:`~swinir.errors.OptionRefused` on the ``to`` format), before any work, a format this
    package does not write or a file suffix the format is not written as."""
    if to not in CONVERT_TARGETS:
        raise OptionRefused("to", to, problem="is an unknown format",
                            accepted=["swinir (this package's .safetensors, config in the metadata)",
                                      "reference (the official code's state dict, .pth or .safetensors)"])
    suffix = Path(dst).suffix
    if suffix not in CONVERT_TARGETS[to]:
        others = [t for t, suffixes in CONVERT_TARGETS.items() if suffix in suffixes]
        raise OptionRefused("to", to, problem=f"writes {' or '.join(CONVERT_TARGETS[to])} files, not "
                                              f"'{suffix or 'no extension'}'", subject=str(dst), accepted=others,
                            alternatives=[f"an output named {' or '.join(CONVERT_TARGETS[to])}"])


def save_reference(path: str | os.PathLike, model: ModelDescriptor | SwinIR,
                   metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` as the reference code's state dict (:func:`reference_state_dict`), atomically.

    ``.pth``: ``{"params": state_dict}`` saved with ``torch.save``, as the official scripts read it (plain
    tensors: it loads with ``weights_only=True``). ``.safetensors``: the same tensors, with this package's
    config and ``metadata`` in the header (the reference's loaders ignore it; this package reads it back).
    """
    check_target(path, "reference")
    described = describe(model)
    state = reference_state_dict(model)
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".pth":
            torch.save({"params": state}, tmp)
        else:
            save_file(state, tmp, metadata=entries(described.config if described else None, metadata))


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
    meta = model.metadata.without_config()
    if to == "reference":
        save_reference(dst, model, meta)
    else:
        save_safetensors(dst, model, model.config, meta)
    return model.config


def count_parameters(model: ModelDescriptor | torch.nn.Module) -> int:
    return sum(p.numel() for p in _network(model).parameters())


# --------------------------------------------------------------------------------------------------
# Recognising what weights are for
# --------------------------------------------------------------------------------------------------

_OFFICIAL_LEVEL = re.compile(r"(noise|jpeg)(\d+)(?!.*\d)")
_OFFICIAL_LEVEL_WORDS = {"noise": "sigma", "jpeg": "quality"}  # the authors' file names: ..._noise25, ..._jpeg10


def model_info(config: ModelConfig, meta: Mapping[str, str], name: str | None = None) -> ModelInfo:
    """Recognise a model: a task-like ``name`` wins, then the ``swinir.task`` metadata, then the architecture
    (:meth:`ModelInfo.of_architecture`).

    The level its family takes (:data:`swinir.tasks.RESTORE_LEVELS`) comes from the training config in the
    metadata (swinir train's exports) or from an official checkpoint's file name (``..._noise25.pth``,
    ``..._jpeg10.pth``).
    """
    meta = meta if isinstance(meta, ModelMetadata) else ModelMetadata(meta)
    hint = next((h for h in (name, meta.task) if h and is_family_name(h)), None)
    if hint is None:
        info = ModelInfo.of_architecture(config)
    else:
        info = ModelInfo(family_of(hint), int(config.upscale), int(config.in_chans))
    level_name = RESTORE_LEVELS.get(info.family)
    if level_name is None:
        return info
    level = meta.trained_level(level_name)
    if level is None and name:
        match = _OFFICIAL_LEVEL.search(Path(name).name)
        if match and _OFFICIAL_LEVEL_WORDS[match.group(1)] == level_name:
            level = (float(match.group(2)),) * 2
    return dataclasses.replace(info, level=level)
