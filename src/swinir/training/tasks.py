"""The one table of what differs between the tasks: channels, how images are read, the degradation that
turns a ground-truth patch into the network input, the default loss, and how validation scores.

Everything else in the trainer is task-agnostic and looks the task up here (:func:`task_behaviour`).
Degradations take an 8-bit ground truth (HxW or HxWx3 RGB) and a :class:`numpy.random.Generator` and
return the network input as float32 on the [0, 1] scale (noisy inputs are neither clipped nor rounded,
as at test time). ``level`` fixes the noise sigma / JPEG quality (validation); None samples it from the
task's range (training).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..degradations import RealDegradationConfig, imresize, jpeg_compress, real_degrade, rgb_to_y_uint8
from ..evaluation import read_image
from ..metrics import quantize
from .config import TaskConfig

Degrade = Callable[[np.ndarray, np.random.Generator, TaskConfig, "float | None"], np.ndarray]
ReadMode = Literal["color", "gray", "y"]


def bicubic_down(hr: np.ndarray, rng: np.random.Generator, task: TaskConfig, level: float | None) -> np.ndarray:
    """MATLAB bicubic downscaling on the uint8 path (each pass rounded), as the benchmark LR files are made."""
    return imresize(hr, 1 / task.scale).astype(np.float32) / 255.0


def gaussian_noise(hr: np.ndarray, rng: np.random.Generator, task: TaskConfig, level: float | None) -> np.ndarray:
    """``hr / 255 + N(0, sigma / 255)``, sigma uniform in ``task.sigma`` (blind) unless ``level`` is given."""
    sigma = float(level) if level is not None else float(rng.uniform(*task.sigma))
    clean = hr.astype(np.float32) / 255.0
    return clean + rng.normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)


def jpeg(hr: np.ndarray, rng: np.random.Generator, task: TaskConfig, level: float | None) -> np.ndarray:
    """OpenCV JPEG at a quality drawn from ``task.quality`` (inclusive) unless ``level`` is given."""
    quality = int(level) if level is not None else int(rng.integers(task.quality[0], task.quality[1] + 1))
    return jpeg_compress(hr, quality).astype(np.float32) / 255.0


def real_world(hr: np.ndarray, rng: np.random.Generator, task: TaskConfig, level: float | None) -> np.ndarray:
    """The second-order real-world degradation (blur, resize, noise, JPEG twice; Real-ESRGAN's ranges)."""
    return real_degrade(hr.astype(np.float32) / 255.0, rng, RealDegradationConfig(scale=task.scale))


@dataclass(frozen=True)
class TaskBehaviour:
    """How one task trains and validates."""

    name: str
    channels: int  # 1 (gray) or 3 (RGB)
    read_mode: ReadMode  # color: RGB (gray files replicated); gray: OpenCV gray; y: gray files kept, RGB -> Y
    degrade: Degrade
    loss: str  # the default pixel loss: l1 | charbonnier
    is_sr: bool
    level: Literal["sigma", "quality"] | None = None  # the task's degradation parameter, if it has one

    def read(self, path: Path) -> np.ndarray:
        """The 8-bit ground truth of an image file for this task (raises SwinIRError when unreadable)."""
        if self.read_mode == "y":
            img = read_image(path, "unchanged")
            return rgb_to_y_uint8(img) if img.ndim == 3 else img
        return read_image(path, self.read_mode)

    def validation_level(self, task: TaskConfig, sigma: float | None, quality: int | None) -> float | None:
        """The fixed noise sigma / JPEG quality of validation: the one given, else the middle of the range."""
        if self.level == "sigma":
            return sigma if sigma is not None else float(sum(task.sigma) / 2)
        if self.level == "quality":
            return quality if quality is not None else round(sum(task.quality) / 2)
        return None

    def baseline(self, lq: np.ndarray, scale: int) -> np.ndarray:
        """What validation compares the network with: MATLAB bicubic upscaling (SR), the input itself otherwise."""
        lq8 = quantize(lq)
        return imresize(lq8, float(scale)) if self.is_sr else lq8

    def metric_border(self, scale: int) -> int:
        return scale if self.is_sr else 0

    @property
    def y_metrics(self) -> bool:
        """Score PSNR/SSIM on luma (the paper's SR tables); same-size tasks score their own channels."""
        return self.is_sr


TASK_BEHAVIOURS: dict[str, TaskBehaviour] = {
    b.name: b
    for b in (
        TaskBehaviour("classical_sr", 3, "color", bicubic_down, "l1", is_sr=True),
        TaskBehaviour("lightweight_sr", 3, "color", bicubic_down, "l1", is_sr=True),
        TaskBehaviour("real_sr", 3, "color", real_world, "l1", is_sr=True),
        TaskBehaviour("gray_dn", 1, "gray", gaussian_noise, "charbonnier", is_sr=False, level="sigma"),
        TaskBehaviour("color_dn", 3, "color", gaussian_noise, "charbonnier", is_sr=False, level="sigma"),
        TaskBehaviour("gray_car", 1, "y", jpeg, "charbonnier", is_sr=False, level="quality"),
        TaskBehaviour("color_car", 3, "color", jpeg, "charbonnier", is_sr=False, level="quality"),
    )
}


def task_behaviour(name: str) -> TaskBehaviour:
    return TASK_BEHAVIOURS[name]  # names are validated by the config's Literal type
