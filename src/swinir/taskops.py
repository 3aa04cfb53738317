"""What the task table's entries do to images: degradations (for training and for the paper's test), the
baseline, the scores.

:data:`swinir.tasks.TASKS` says what each task is; this module holds the functions that act on those facts,
so that ``swinir eval`` (:mod:`swinir.evaluation`) and training (:mod:`swinir.training`), which may not import
each other, call the same code:

* :data:`DEGRADATIONS`: per :data:`~swinir.tasks.Degradation`, its two uses side by side: the random draw of
  training (:func:`training_degradation`: a ground-truth patch to a network input at a drawn level) and the
  protocol of the paper's test (:func:`paper_degradation`, ``shared/PROTOCOL.md``: the LR file or MATLAB
  bicubic for SR, seed-0 Gaussian noise, OpenCV JPEG, bicubic-then-JPEG for photos);
* :func:`run_baseline`: what the model is compared with (:attr:`swinir.tasks.Task.baseline`);
* :func:`score`: the task's metrics of an 8-bit output, with its border.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .degradations import (
    PhotoDegradationConfig,
    RealDegradationConfig,
    add_gaussian_noise,
    imresize,
    jpeg_compress,
    modcrop,
    photo_degrade,
    real_degrade,
)
from .errors import SwinIRError
from .metrics import psnr, psnrb, rgb_to_y, ssim
from .tasks import Baseline, Degradation, Task

NOISE_SEED = 0  # the reference seeds numpy with 0 before every image

TrainingDegrade = Callable[[np.ndarray, np.random.Generator, int, "float | None"], np.ndarray]
"""``(hr, rng, scale, level) -> network input``: a ground-truth patch (uint8, or float32 on [0, 1] from 16-bit
and float files) to float32 on [0, 1] (noisy inputs neither clipped nor rounded, as at test time); ``level`` is
the drawn sigma or quality (None if the task has none)."""

PaperDegrade = Callable[[np.ndarray, int, "float | None", "np.ndarray | None"], tuple[np.ndarray, np.ndarray]]
"""``(hr, scale, level, lr) -> (ground truth, input)``; ``lr`` is a pre-made LR file's pixels, where given."""


# --------------------------------------------------------------------------------------------------
# Training: a level drawn per patch
# --------------------------------------------------------------------------------------------------


def as_unit(img: np.ndarray) -> np.ndarray:
    """A patch on the [0, 1] scale as float32: uint8 divided by 255, float (already on that scale) as it is."""
    return img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32, copy=False)


def bicubic_down(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """MATLAB bicubic downscaling: on the uint8 path (each pass rounded) for 8-bit patches, as the benchmark LR
    files are made; unrounded for float ones."""
    return as_unit(imresize(hr, 1 / scale))


def gaussian_noise(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """``hr + N(0, level / 255)`` on the [0, 1] scale, float32 and unclipped."""
    clean = as_unit(hr)
    return clean + rng.normal(0.0, float(level) / 255.0, clean.shape).astype(np.float32)  # type: ignore[arg-type]


def jpeg(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """OpenCV JPEG at quality ``level``."""
    return jpeg_compress(hr, int(level)).astype(np.float32) / 255.0  # type: ignore[arg-type]


def real_world(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """The second-order real-world degradation (blur, resize, noise, JPEG twice; Real-ESRGAN's ranges)."""
    return real_degrade(as_unit(hr), rng, RealDegradationConfig(scale=scale))


def photo(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """The first-order photo degradation (mild blur, antialiased downscale, mild noise), JPEG at quality ``level``."""
    return photo_degrade(as_unit(hr), rng, int(level), PhotoDegradationConfig(scale=scale))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# The paper's test: fixed and deterministic
# --------------------------------------------------------------------------------------------------


def _bicubic(hr: np.ndarray, scale: int, level: float | None, lr: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The LR file if given, else MATLAB bicubic of ``modcrop(hr, scale)``; the ground truth is ``hr`` cropped
    top-left to ``lr * scale``."""
    if lr is None:
        lr = imresize(modcrop(hr, scale), 1 / scale)
    h, w = lr.shape[:2]
    if h * scale > hr.shape[0] or w * scale > hr.shape[1]:
        raise SwinIRError(f"LR {w}x{h} times {scale} is larger than the HR image {hr.shape[1]}x{hr.shape[0]}")
    return hr[: h * scale, : w * scale], lr


def _photo(hr: np.ndarray, scale: int, level: float | None, lr: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB bicubic of ``modcrop(hr, scale)``, then OpenCV JPEG at the quality (a fixed stand-in for a photo
    that was resized and saved as JPEG; deterministic, so every model sees the same inputs)."""
    hr = modcrop(hr, scale)
    return hr, jpeg_compress(imresize(hr, 1 / scale), int(level))  # type: ignore[arg-type]


def _noise(hr: np.ndarray, scale: int, level: float | None, lr: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Float noisy input (seed 0), neither clipped nor quantised."""
    return hr, add_gaussian_noise(hr.astype(np.float32) / 255.0, float(level), seed=NOISE_SEED)  # type: ignore[arg-type]


def _jpeg(hr: np.ndarray, scale: int, level: float | None, lr: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV JPEG at the quality (gray JPEG runs on the rounded Y the ``y`` read mode gives)."""
    return hr, jpeg_compress(hr, int(level))  # type: ignore[arg-type]


@dataclass(frozen=True)
class DegradationSteps:
    """One degradation's two uses: ``training`` draws a network input from a ground-truth patch; ``paper`` is
    the fixed protocol of the paper's test (None where the inputs are LR files without ground truth)."""

    training: TrainingDegrade
    paper: PaperDegrade | None


DEGRADATIONS: dict[Degradation, DegradationSteps] = {
    "bicubic": DegradationSteps(bicubic_down, _bicubic),
    "real": DegradationSteps(real_world, None),
    "photo": DegradationSteps(photo, _photo),
    "noise": DegradationSteps(gaussian_noise, _noise),
    "jpeg": DegradationSteps(jpeg, _jpeg),
}


def training_degradation(task: Task, hr: np.ndarray, rng: np.random.Generator, scale: int,
                         level: float | None) -> np.ndarray:
    """A training input of the ground-truth patch ``hr`` for ``task`` at ``level`` (:data:`DEGRADATIONS`)."""
    return DEGRADATIONS[task.degradation].training(hr, rng, scale, level)


def paper_degradation(task: Task, hr: np.ndarray, scale: int, level: float | None, *,
                      lr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's ``(ground truth, degraded input)`` for one image ``hr`` (uint8, read per the task's read
    mode) at ``level`` (the sigma or quality, None for tasks without one): :data:`DEGRADATIONS`."""
    degrade = DEGRADATIONS[task.degradation].paper
    if degrade is None:
        raise SwinIRError(f"{task.name} has no synthetic test degradation; its inputs are LR files (--lr)")
    return degrade(hr, scale, level, lr)


BASELINE_METHODS: dict[Baseline, Callable[[np.ndarray, int], np.ndarray]] = {
    "bicubic": lambda lq, scale: imresize(lq, float(scale)),  # MATLAB bicubic upscaling, uint8 path
    "identity": lambda lq, scale: lq,  # the degraded input itself
}


def run_baseline(name: Baseline, lq: np.ndarray, scale: int) -> np.ndarray:
    """The baseline ``name``'s output for a degraded input (uint8 in, uint8 out for bicubic)."""
    return BASELINE_METHODS[name](lq, scale)


_METRICS = {"psnr": psnr, "ssim": ssim, "psnrb": psnrb}


def _full_range_luma(img: np.ndarray) -> np.ndarray:
    """Luma rescaled to 0-255 (``(Y - 16) * 255 / 219``): the gray values themselves for a replicated gray image."""
    return (rgb_to_y(img) - 16.0) * (255.0 / 219.0)


def score(task: Task, output: np.ndarray, gt: np.ndarray, scale: int, keys: tuple[str, ...] | None = None, *,
          raw_gray_luma: bool = False) -> dict[str, float]:
    """The metrics ``keys`` (default the task's, :attr:`~swinir.tasks.Task.metric_keys`) of a uint8 output
    against its ground truth, with the task's border cropped (the scale for SR).

    Keys: ``psnr``/``ssim``/``psnrb`` on the image's own channels (RGB or gray), ``_y`` for luma (MATLAB
    ``rgb2ycbcr`` Y, not rounded). ``raw_gray_luma`` scores the luma of an SR ground truth stored gray as the
    gray values themselves, as the MATLAB scripts behind the published bicubic tables do.
    """
    keys = task.metric_keys if keys is None else keys
    b = task.metric_border(scale)
    out: dict[str, float] = {}
    if task.upsamples and raw_gray_luma:
        luma_out, luma_gt = _full_range_luma(output), gt[..., 0].astype(np.float64)
        out["psnr_y"] = psnr(luma_out, luma_gt, border=b)
        out["ssim_y"] = ssim(luma_out, luma_gt, border=b)
    for key in keys:
        if key not in out:
            out[key] = _METRICS[key.removesuffix("_y")](output, gt, border=b, y_channel=key.endswith("_y"))
    return {k: out[k] for k in keys}
