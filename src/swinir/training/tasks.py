"""What training adds to the task table: drawing degradation levels and degrading patches with a seeded generator.

The facts of a task (channels, read mode, default loss, whether it upsamples, baseline, metric border, luma
metrics) are those of :data:`swinir.tasks.TASKS`; a :class:`TaskBehaviour` adds the training side to an entry:
reading a file per the task's read mode, drawing a level, degrading a patch.

A degradation takes a ground-truth patch (HxW or HxWx3 RGB; uint8 from 8-bit files, float32 on [0, 1] from 16-bit
and float TIFFs, see :func:`swinir.datasets.read_training_image`) and a :class:`numpy.random.Generator` and
returns the network input as float32 on the [0, 1] scale (noisy inputs are neither clipped nor rounded, as at
test time): the training side of :data:`swinir.taskops.DEGRADATIONS`, beside the paper's test protocol. The
level (noise sigma, JPEG quality) is drawn per sample from the config's range (``task.sigma``, ``task.quality``:
blind training) unless a fixed one is given (validation). Denoising with ``task.shot_noise`` set adds
Poisson-Gaussian noise instead of Gaussian: photon shot noise of a gain drawn from that range (:func:`draw_gain`:
log-uniform when it spans more than a decade; validation takes the draw's median, :func:`fixed_gain`), and read
noise of the drawn sigma (:meth:`TaskBehaviour.degrade` is where the choice is made).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..datasets import read_reference, read_training_image
from ..degradations import add_poisson_gaussian_noise
from ..errors import SwinIRError
from ..taskops import as_unit, training_degradation
from ..tasks import TASKS, Task

if TYPE_CHECKING:  # annotations only: config imports this module to check a run's semantics
    from .config import TaskConfig


def poisson_gaussian_noise(hr: np.ndarray, rng: np.random.Generator, gain: float, sigma: float) -> np.ndarray:
    """Photon shot noise of ``gain`` plus read noise of ``sigma`` (0-255 scale) on the [0, 1] scale: variance
    ``gain * hr + (sigma / 255) ** 2`` (:func:`swinir.degradations.add_poisson_gaussian_noise`)."""
    return add_poisson_gaussian_noise(as_unit(hr), gain, sigma / 255.0, rng)


LOG_UNIFORM_SPAN = 10.0  # a gain range whose ends differ by more than this factor is drawn log-uniformly


def gain_is_log_uniform(low: float, high: float) -> bool:
    """Whether the gain range ``[low, high]`` is drawn log-uniformly: ``low > 0`` and ``high > 10 * low``. The
    one place of the rule, which :func:`draw_gain` and :func:`fixed_gain` both follow."""
    return low > 0 and high > LOG_UNIFORM_SPAN * low


def draw_gain(rng: np.random.Generator, low: float, high: float) -> float:
    """A shot-noise gain from ``task.shot_noise``: log-uniform when :func:`gain_is_log_uniform`, else uniform.
    Over [0.001, 0.1] a uniform draw is below 0.01 one time in eleven, so a blind denoiser would hardly train
    on the low noise of bright images; log-uniformly each decade gets half of the draws (the median is the
    geometric mean, 0.01)."""
    if gain_is_log_uniform(low, high):
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def fixed_gain(low: float, high: float) -> float:
    """The fixed gain of validation (and of any fixed level taken from ``task.shot_noise``): the median of
    :func:`draw_gain`'s draw, so that validation scores the noise training sees most: the geometric mean
    ``sqrt(low * high)`` when the draw is log-uniform (0.01 over [0.001, 0.1], where the arithmetic middle,
    0.0505, would be noisier than three draws in four), else the arithmetic middle."""
    if gain_is_log_uniform(low, high):
        return float(np.sqrt(low * high))
    return (low + high) / 2


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
        """The ground truth of an image file for this task: uint8, or float32 on [0, 1] for 16-bit and float
        TIFFs (raises SwinIRError when unreadable, and for those when the task's JPEG needs 8 bits)."""
        image = read_training_image(path, self.spec.read_mode)
        if self.spec.degradation == "jpeg" and image.dtype != np.uint8:
            raise SwinIRError(f"{path}: JPEG artifact reduction trains on 8-bit images; convert it to 8 bits")
        return image

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
        """The network input of the ground-truth patch ``hr``: at ``level``, else at one drawn from ``rng``.

        Denoising with ``task.shot_noise`` takes Poisson-Gaussian noise: read noise of sigma ``level`` and a
        shot-noise gain drawn from that range by :func:`draw_gain` (:func:`fixed_gain`, the draw's median,
        when ``level`` is given: validation)."""
        fixed = level is not None
        if level is None:
            level = self.draw_level(task, rng)
        if self.spec.degradation == "noise" and task.shot_noise is not None:
            low, high = task.shot_noise
            gain = fixed_gain(low, high) if fixed else draw_gain(rng, low, high)
            return poisson_gaussian_noise(hr, rng, gain, float(level))  # type: ignore[arg-type]
        return training_degradation(self.spec, hr, rng, task.scale, level)

    def validation_level(self, task: TaskConfig, sigma: float | None, quality: int | None) -> float | None:
        """The fixed noise sigma / JPEG quality of validation: the one given, else the middle of the range."""
        if self.spec.level == "sigma":
            return sigma if sigma is not None else float(sum(task.sigma) / 2)
        if self.spec.level == "quality":
            return quality if quality is not None else round(sum(task.quality) / 2)
        return None


TASK_BEHAVIOURS: dict[str, TaskBehaviour] = {name: TaskBehaviour(spec) for name, spec in TASKS.items()}


def task_behaviour(name: str) -> TaskBehaviour:
    """The behaviour of a task (a config's task name is one of :data:`swinir.tasks.TASKS`, checked on load)."""
    return TASK_BEHAVIOURS[name]
