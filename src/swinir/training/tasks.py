"""What training adds to the task table: drawing degradation levels and degrading patches with a seeded generator.

The facts of a task (channels, read mode, default loss, whether it upsamples, baseline, metric border, luma
metrics) are those of :data:`swinir.tasks.TASKS`; a :class:`TaskBehaviour` adds the training side to an entry:
reading a file per the task's read mode, drawing a level, degrading a patch.

A degradation takes an 8-bit ground-truth patch (HxW or HxWx3 RGB) and a :class:`numpy.random.Generator` and
returns the network input as float32 on the [0, 1] scale (noisy inputs are neither clipped nor rounded, as at
test time). The level (noise sigma, JPEG quality) is drawn per sample from the config's range (``task.sigma``,
``task.quality``: blind training) unless a fixed one is given (validation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..datasets import read_reference
from ..degradations import (
    PhotoDegradationConfig,
    RealDegradationConfig,
    imresize,
    jpeg_compress,
    photo_degrade,
    real_degrade,
)
from ..tasks import TASKS, Degradation, Task

if TYPE_CHECKING:  # annotations only: config imports this module to check a run's semantics
    from .config import TaskConfig

Degrade = Callable[[np.ndarray, np.random.Generator, int, "float | None"], np.ndarray]
"""``(hr, rng, scale, level) -> network input``; ``level`` is the drawn sigma or quality (None if the task has none)."""


def bicubic_down(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """MATLAB bicubic downscaling on the uint8 path (each pass rounded), as the benchmark LR files are made."""
    return imresize(hr, 1 / scale).astype(np.float32) / 255.0


def gaussian_noise(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """``hr / 255 + N(0, level / 255)``, float32 and unclipped."""
    clean = hr.astype(np.float32) / 255.0
    return clean + rng.normal(0.0, float(level) / 255.0, clean.shape).astype(np.float32)


def jpeg(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """OpenCV JPEG at quality ``level``."""
    return jpeg_compress(hr, int(level)).astype(np.float32) / 255.0


def real_world(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """The second-order real-world degradation (blur, resize, noise, JPEG twice; Real-ESRGAN's ranges)."""
    return real_degrade(hr.astype(np.float32) / 255.0, rng, RealDegradationConfig(scale=scale))


def photo(hr: np.ndarray, rng: np.random.Generator, scale: int, level: float | None) -> np.ndarray:
    """The first-order photo degradation (mild blur, antialiased downscale, mild noise), JPEG at quality ``level``."""
    return photo_degrade(hr.astype(np.float32) / 255.0, rng, int(level), PhotoDegradationConfig(scale=scale))


DEGRADATIONS: dict[Degradation, Degrade] = {"bicubic": bicubic_down, "real": real_world, "photo": photo,
                                            "noise": gaussian_noise, "jpeg": jpeg}


@dataclass(frozen=True)
class TaskBehaviour:
    """How one task's training and validation data are made: its table entry (``spec``) plus the degradation.

    Everything else about a task (loss, metrics, border, baseline) is read from ``spec`` by whoever needs it.
    """

    spec: Task

    @property
    def channels(self) -> int:
        """1 (gray) or 3 (RGB): the config checks ``model.in_chans`` against it."""
        return self.spec.channels

    @property
    def is_sr(self) -> bool:
        """Whether the task upsamples: the config checks ``task.scale`` and ``model.upscale`` against it."""
        return self.spec.upsamples

    def read(self, path: Path) -> np.ndarray:
        """The 8-bit ground truth of an image file for this task (raises SwinIRError when unreadable)."""
        return read_reference(path, self.spec.read_mode)

    def read_lr(self, path: Path) -> np.ndarray:
        """An 8-bit LR file, with the task's channels (OpenCV colour or gray reading)."""
        return read_reference(path, "color" if self.channels == 3 else "gray")

    def draw_level(self, task: TaskConfig, rng: np.random.Generator) -> float | None:
        """A level from the config's range: sigma uniform in ``task.sigma``, quality uniform in ``task.quality``
        (inclusive); None for tasks without a level."""
        if self.spec.level == "sigma":
            return float(rng.uniform(*task.sigma))
        if self.spec.level == "quality":
            return int(rng.integers(task.quality[0], task.quality[1] + 1))
        return None

    def degrade(self, hr: np.ndarray, rng: np.random.Generator, task: TaskConfig, level: float | None) -> np.ndarray:
        """The network input of the ground-truth patch ``hr``: at ``level``, else at one drawn from ``rng``."""
        if level is None:
            level = self.draw_level(task, rng)
        return DEGRADATIONS[self.spec.degradation](hr, rng, task.scale, level)

    def validation_level(self, task: TaskConfig, sigma: float | None, quality: int | None) -> float | None:
        """The fixed noise sigma / JPEG quality of validation: the one given, else the middle of the range."""
        if self.spec.level == "sigma":
            return sigma if sigma is not None else float(sum(task.sigma) / 2)
        if self.spec.level == "quality":
            return quality if quality is not None else round(sum(task.quality) / 2)
        return None


TASK_BEHAVIOURS: dict[str, TaskBehaviour] = {name: TaskBehaviour(spec) for name, spec in TASKS.items()}


def task_behaviour(name: str) -> TaskBehaviour:
    """The behaviour of a task (names are validated by the config's Literal type)."""
    return TASK_BEHAVIOURS[name]
