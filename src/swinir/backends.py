"""Choosing what computes a model: PyTorch or onnxruntime, both behind one :class:`~swinir.descriptor.ModelDescriptor`.

``swinir restore`` and ``swinir eval`` take ``--backend``: ``torch`` loads a checkpoint
(:func:`swinir.checkpoints.load`); ``onnxruntime`` runs an export (:class:`swinir.export.OnnxRuntimeModel`), or
exports a checkpoint to a temporary file first; ``auto`` picks onnxruntime for ``.onnx`` files. Either way the
caller gets a descriptor, which the engine runs, and the precision to run it at (onnxruntime: fp32 only, as its
descriptor's :attr:`~swinir.descriptor.ModelDescriptor.precisions` say). Refusals are
:class:`~swinir.errors.OptionRefused`, worded by the front end.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Literal, get_args

import torch

from .checkpoints import load, model_info
from .descriptor import ModelDescriptor, backend_precision
from .errors import OptionRefused
from .export import OnnxRuntimeModel, export_onnx, require_optional, stage_display

BackendChoice = Literal["auto", "torch", "onnxruntime"]
BACKEND_CHOICES: tuple[str, ...] = get_args(BackendChoice)


def resolve_backend(choice: str, weights: str | os.PathLike) -> str:
    """``auto``: onnxruntime for an ``.onnx`` file, PyTorch for checkpoints. ``torch`` cannot run an .onnx file."""
    is_onnx = Path(weights).suffix.lower() == ".onnx"
    if choice == "auto":
        return "onnxruntime" if is_onnx else "torch"
    if choice not in BACKEND_CHOICES:
        raise OptionRefused("backend", choice, problem="is unknown", accepted=BACKEND_CHOICES)
    if choice == "torch" and is_onnx:
        raise OptionRefused("backend", choice, reason=f"{Path(weights).name} is an ONNX export",
                            accepted=["onnxruntime"], alternatives=["the .safetensors/.pth checkpoint"])
    return choice


def open_onnxruntime(weights: str | os.PathLike, preset: str | None = None, *, device: str = "cpu",
                     threads: int | None = None, quiet: bool = False, name: str | None = None) -> ModelDescriptor:
    """The onnxruntime model of ``weights``: an .onnx file as it is, a checkpoint exported to a temporary file
    first (said in one line on stderr unless ``quiet``; ``swinir export`` saves the file to reuse). ``name``
    is the hint its task is recognised by (:func:`swinir.checkpoints.model_info`; default the file's name)."""
    if torch.device(device).type != "cpu":
        raise OptionRefused("device", device, reason="the onnxruntime backend runs on the CPU", omit=True,
                            alternatives=["the torch backend"])
    path = Path(weights)
    if path.suffix.lower() == ".onnx":
        if preset:
            raise OptionRefused("preset", None, reason=f"{path.name} is an ONNX export, which stores its config",
                                omit=True)
        return _described(OnnxRuntimeModel(path, threads=threads), name or path.name)
    require_optional("onnxruntime")
    if not quiet:
        print(f"exporting {path.name} to ONNX for onnxruntime (a minute or more; keep the file with "
              f"swinir export {path.name} --onnx FILE.onnx)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="swinir-onnx-") as folder, stage_display(quiet=quiet) as stage:
        exported = Path(folder) / f"{path.stem}.onnx"
        export_onnx(path, exported, preset=preset, stage=stage)
        runner = OnnxRuntimeModel(exported, threads=threads)  # the session holds the graph; the file can go
    return _described(runner, name or path.name)


def _described(runner: OnnxRuntimeModel, name: str) -> ModelDescriptor:
    info = model_info(runner.config, runner.metadata, name)
    return ModelDescriptor(runner, runner.config, info, runner.metadata, backend="onnxruntime")


def open_model(weights: str | os.PathLike, preset: str | None = None, *, backend: str = "auto",
               device: str = "cpu", precision: str = "auto", threads: int | None = None,
               quiet: bool = False, name: str | None = None) -> tuple[ModelDescriptor, str]:
    """The model to run and the precision to run it at, for ``swinir restore`` and ``swinir eval``.

    ``backend`` (see :func:`resolve_backend`): ``torch`` loads the checkpoint and keeps ``precision``;
    ``onnxruntime`` opens the ONNX file, or exports the checkpoint first, and computes in fp32 (a precision
    its descriptor lacks is refused). ``name`` is the hint the model's task is recognised by (default the
    file's name; the CLI passes a bundled model's task).
    """
    kind = resolve_backend(backend, weights)
    concrete = backend_precision(kind, precision)  # refused before minutes of loading or exporting
    if kind == "torch":
        return load(weights, preset, device=device, name=name), concrete
    return open_onnxruntime(weights, preset, device=device, threads=threads, quiet=quiet, name=name), concrete
