"""What ``swinir eval`` measures and how it builds its inputs: the settings and the samples.

The task facts (its read mode, degradation, metric keys and border, whether it upsamples) come from the one task
table, :data:`swinir.tasks.TASKS`, and the protocol's degradations (``shared/PROTOCOL.md``: the LR file or MATLAB
bicubic for SR, seed-0 Gaussian noise drawn anew for every image, OpenCV JPEG) from :mod:`swinir.taskops`, which
training's validation shares; this module reads the files and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..datasets import find_lr_partner, is_stored_gray, list_images, read_reference
from ..errors import SwinIRError
from ..taskops import paper_degradation
from ..tasks import LEVEL_LABELS, Task, get_task

GrayLuma = Literal["replicate", "raw"]


@dataclass(frozen=True)
class EvalSettings:
    """What is measured: the task, its degradation parameter, and how gray SR images are scored.

    ``gray_luma`` only matters for SR ground truths stored as 1-channel files (Set14 ``bridge``):
    ``"replicate"`` (default) scores them as the reference script does (read as RGB, so luma is
    ``16 + 219 * v / 255``); ``"raw"`` scores the gray values themselves, as the MATLAB scripts behind the
    published *bicubic* tables do (those tables are 0.09 dB lower on Set14 for that reason).
    """

    task: str
    scale: int = 1
    sigma: float | None = None
    quality: int | None = None
    gray_luma: GrayLuma = "replicate"

    def __post_init__(self) -> None:
        spec = get_task(self.task)  # unknown names: a one-line error listing the tasks
        if spec.upsamples and self.scale < 1:
            raise SwinIRError(f"--scale must be a positive integer for {self.task}, got {self.scale}")
        if not spec.upsamples and self.scale != 1:
            raise SwinIRError(f"{self.task} keeps the image size; --scale must be 1 (got {self.scale})")
        if spec.level == "sigma" and (self.sigma is None or self.sigma < 0):
            raise SwinIRError(f"{self.task} needs --sigma ({LEVEL_LABELS['sigma']}, e.g. 15, 25, 50)")
        if spec.level == "quality" and (self.quality is None or not 1 <= self.quality <= 100):
            raise SwinIRError(f"{self.task} needs --quality ({LEVEL_LABELS['quality']} 1-100, e.g. 10, 20, 30, 40)")
        if self.gray_luma not in ("replicate", "raw"):
            raise SwinIRError(f"gray_luma must be 'replicate' or 'raw', got {self.gray_luma!r}")

    @property
    def spec(self) -> Task:
        """The task's entry in :data:`swinir.tasks.TASKS`."""
        return get_task(self.task)

    @property
    def is_sr(self) -> bool:
        return self.spec.upsamples

    @property
    def border(self) -> int:
        """Pixels cropped from each side before metrics: the scale for SR, 0 otherwise."""
        return self.spec.metric_border(self.scale)

    @property
    def level(self) -> float | None:
        """The degradation's level: the sigma or the quality, as the task's ``level`` names; None without one."""
        return {"sigma": self.sigma, "quality": self.quality}.get(self.spec.level or "")

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """The metrics reported for this task, in table order (none for real_sr, which has no ground truth)."""
        return self.spec.metric_keys


@dataclass
class Sample:
    """One test image: its name, the 8-bit ground truth (None for real_sr) and the degraded input."""

    name: str
    gt: np.ndarray | None
    lq: np.ndarray
    gt_stored_gray: bool = False  # the ground-truth file is 1-channel (matters for gray_luma="raw")


def sample_files(settings: EvalSettings, hr_dir: Path | None, lr_dir: Path | None) -> tuple[list[Path], Path]:
    """The files a dataset is evaluated on and the folder that names it.

    The ground truths in ``hr_dir``; for real_sr, which has none, the LR images in ``lr_dir``.
    """
    if not settings.spec.has_ground_truth:
        if lr_dir is None:
            raise SwinIRError(f"{settings.task} evaluates LR images only: give their folder with --lr")
        return list_images(lr_dir, label="--lr"), lr_dir
    if hr_dir is None:
        raise SwinIRError(f"{settings.task} needs the ground-truth folder (--hr)")
    if lr_dir is not None and not lr_dir.is_dir():
        raise SwinIRError(f"--lr: folder {lr_dir} not found")
    return list_images(hr_dir, label="--hr"), hr_dir


def degrade(hr: np.ndarray, settings: EvalSettings, *, lr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's ``(ground truth, degraded input)`` for one image ``hr`` (uint8, read per the task), with
    the settings' scale and level (:func:`swinir.taskops.paper_degradation`; ``lr``: the LR file, for SR)."""
    return paper_degradation(settings.spec, hr, settings.scale, settings.level, lr=lr)


def load_sample(path: Path, settings: EvalSettings, lr_dir: Path | None = None) -> Sample:
    """Read one file as the reference reads it for the task and build its degraded input.

    ``path`` is a ground truth, or for real_sr an LR input (no ground truth). For SR with ``lr_dir``, the
    input is the LR file ``{lr_dir}/{name}x{scale}{ext}`` instead of the bicubic of the ground truth.
    """
    spec = settings.spec
    if not spec.has_ground_truth:
        return Sample(path.stem, None, read_reference(path, "color"))
    hr = read_reference(path, spec.read_mode)
    stored_gray = is_stored_gray(path) if spec.upsamples else hr.ndim == 2
    lr = None
    if spec.upsamples and lr_dir is not None:
        lr_path = find_lr_partner(lr_dir, path, settings.scale)
        if lr_path is None:
            raise SwinIRError(f"{lr_dir / f'{path.stem}x{settings.scale}{path.suffix}'}: LR file missing for "
                              f"{path.name} (expected {{name}}x{settings.scale}{{ext}} in {lr_dir})")
        lr = read_reference(lr_path, "color")
    gt, lq = degrade(hr, settings, lr=lr)
    return Sample(path.stem, gt, lq, stored_gray)
