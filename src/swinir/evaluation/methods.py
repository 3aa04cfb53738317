"""What is evaluated: a :data:`Method` restores one degraded input. Baselines, a SwinIR checkpoint, the bundled models.

Baselines (:data:`swinir.tasks.BASELINES`, computed by :func:`swinir.taskops.run_baseline`, as training's
validation computes them): ``bicubic`` (MATLAB bicubic upscaling, SR) and ``identity`` (the degraded input itself,
same-size tasks). :func:`model_method` runs a checkpoint through :func:`swinir.pipeline.restore_image`, the one
image-level restore function the CLI and the web service use too, with the reference's uniform tile average.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import SwinIRError
from ..precision import PrecisionChoice
from ..taskops import run_baseline
from ..tasks import BASELINES, TASKS, Task, family_of
from .protocol import EvalSettings

Method = Callable[[np.ndarray], np.ndarray]
"""Restores one degraded input.

Input: the degraded image, HxW (gray) or HxWx3 (RGB):
  - SR and JPEG tasks: uint8;
  - denoising: float64 on the [0, 1] scale, unclipped (noise pushes values outside [0, 1]).
Output: the restored image at ``(H * scale, W * scale)`` with the input's channels (HxW or HxWx1 for
gray), either uint8 or float in [0, 1] (the runner clips, scales by 255 and rounds, as the reference).
"""


def bicubic_method(scale: int) -> Method:
    """MATLAB bicubic upscaling by ``scale`` (uint8 in, uint8 out, MATLAB's uint8 path)."""

    def method(lq: np.ndarray) -> np.ndarray:
        return run_baseline("bicubic", lq, scale)

    return method


def identity_method(lq: np.ndarray) -> np.ndarray:
    """The degraded input itself (a float denoising input is quantised by the runner)."""
    return run_baseline("identity", lq, 1)


def baseline_method(name: str, settings: EvalSettings) -> Method:
    """``bicubic`` (SR tasks) or ``identity`` (same-size tasks)."""
    if name == "bicubic":
        if not settings.is_sr:
            raise SwinIRError(f"--method bicubic is for SR tasks; use --method identity for {settings.task}")
        return bicubic_method(settings.scale)
    if name == "identity":
        if settings.is_sr and settings.scale != 1:
            raise SwinIRError("--method identity keeps the LR size; use --method bicubic for SR tasks")
        return identity_method
    raise SwinIRError(f"unknown method {name!r}; use one of {', '.join(BASELINES)}")


def model_method(weights: str | os.PathLike, settings: EvalSettings, *, preset: str | None = None,
                 device: str = "cpu", tile: int | None = None, tile_overlap: int | None = None,
                 precision: PrecisionChoice = "auto", ensemble: bool = False, backend: str = "auto") -> Method:
    """A method that runs a SwinIR checkpoint through :func:`swinir.pipeline.restore_image`.

    uint8 inputs (SR, JPEG) go in as ``/ 255`` float32 and come back rounded to uint8, as the reference; float
    denoising inputs go in unclipped, as the reference feeds them, and come back as float32 in [0, 1]. Tiles are
    blended by the reference's uniform average (``blend="average"``), not the feathering of ``swinir restore``.
    ``precision`` ``auto`` is bf16 where the hardware computes it natively, fp32 elsewhere (:mod:`swinir.precision`).
    ``backend`` ``onnxruntime`` runs an ONNX export (or exports ``weights`` first) in fp32, see
    :func:`swinir.backends.open_model`; ``auto`` picks it for ``.onnx`` files.
    """
    from ..backends import open_model
    from ..pipeline import RestoreOptions, restore_image

    model, precision = open_model(weights, preset, backend=backend, device=device, precision=precision)
    want = settings.scale if settings.is_sr else 1
    if int(model.upscale) != want:
        raise SwinIRError(f"{weights}: the model upscales x{model.upscale} but the task needs x{want}")
    channels = settings.spec.channels
    if int(model.in_chans) != channels:
        raise SwinIRError(f"{weights}: the model takes {model.in_chans}-channel images but {settings.task} is "
                          f"measured on {channels}-channel ones; pass a {channels}-channel model")
    options = RestoreOptions(tile=tile, tile_overlap=tile_overlap, precision=precision, ensemble=ensemble,
                             blend="average")

    def method(lq: np.ndarray) -> np.ndarray:
        return restore_image(model, lq, options).pixels

    return method


def has_bundled_model(spec: Task) -> bool:
    """Whether a shipped model fits the task: one of its family, with its channels, trained on its degradation
    (the manifest lists the models, each file's header says what it was trained as)."""
    from ..bundled import bundled_models
    from ..checkpoints import read_header

    for bundled in bundled_models():
        if family_of(bundled.task) != spec.family:
            continue
        config, meta = read_header(bundled.path)
        trained = TASKS.get(meta.task or "")
        if config.in_chans == spec.channels and trained is not None and trained.degradation == spec.degradation:
            return True
    return False


def bundled_weights_for(settings: EvalSettings) -> Path:
    """The bundled model of the task's family (:attr:`swinir.tasks.Task.family`), at the task's scale for SR."""
    from ..bundled import bundled_weights

    spec = settings.spec
    if not has_bundled_model(spec):
        raise SwinIRError(f"no bundled model for {settings.task}; pass --weights W or --method bicubic|identity")
    return bundled_weights(spec.family, settings.scale if spec.upsamples else None)
