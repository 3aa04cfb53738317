"""The one table of SwinIR's tasks: what each one is, how the paper reads, degrades and scores its images.

Two vocabularies meet here. The paper's seven tasks (``classical_sr``, ``lightweight_sr``, ``real_sr``,
``gray_dn``, ``color_dn``, ``gray_car``, ``color_car``), and this package's ``photo_sr`` (x4 for photos as
people have them: a first-order real-world degradation, measured on bicubic-then-JPEG inputs), are what
evaluation and training speak; users type a *family* (``photo``, ``sr``, ``denoise``, ``jpeg``) or one of its
aliases. ``photo`` is what an image is restored for when nobody names a task.

Every other module looks facts up here instead of keeping its own copy: the channels a task's images have,
whether it upsamples, how the reference test script reads its ground truths, its degradation and the parameter
that sets its level (noise sigma, JPEG quality), the metrics the paper reports and the border they crop, the
baseline the model is compared with, and the pixel loss it trains with. This module imports nothing of the
package: it is the bottom of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from .errors import OptionRefused, SwinIRError

Family = Literal["photo", "sr", "denoise", "jpeg"]
ReadMode = Literal["color", "gray", "y"]
Degradation = Literal["bicubic", "real", "photo", "noise", "jpeg"]
Level = Literal["sigma", "quality"]
Baseline = Literal["bicubic", "identity"]
BASELINES: tuple[Baseline, ...] = get_args(Baseline)
BASELINE_LABELS: dict[Baseline, str] = {"bicubic": "bicubic", "identity": "degraded input"}  # how reports name them

FAMILIES: tuple[Family, ...] = ("photo", "sr", "denoise", "jpeg")
FAMILY_LABELS: dict[Family, str] = {"photo": "photo super-resolution", "sr": "super-resolution",
                                    "denoise": "denoising", "jpeg": "JPEG artifact reduction"}
UPSAMPLING_FAMILIES: frozenset[Family] = frozenset({"photo", "sr"})
DEFAULT_FAMILY: Family = "photo"  # what restore and the web page use when no task is named
FAMILY_ALIASES: dict[str, Family] = {
    "photo": "photo", "real": "photo", "real-world": "photo", "realsr": "photo",
    "sr": "sr", "super-resolution": "sr", "upscale": "sr", "bicubic": "sr",
    "denoise": "denoise", "dn": "denoise", "denoising": "denoise",
    "jpeg": "jpeg", "car": "jpeg", "dejpeg": "jpeg",
}


@dataclass(frozen=True)
class Task:
    """One of the paper's tasks.

    Attributes:
        name: the paper's name (``classical_sr``, ...).
        family: what users type (``photo``, ``sr``, ``denoise``, ``jpeg``).
        channels: 3 (RGB) or 1 (gray).
        upsamples: True for super-resolution (the network changes the size).
        read_mode: how the reference test script reads a ground-truth file: ``color`` (RGB; a gray file
            replicated, as OpenCV's ``IMREAD_COLOR``), ``gray`` (OpenCV's gray conversion) or ``y`` (gray files
            kept, RGB files turned into their rounded BT.601 luma, as the gray JPEG protocol does).
        degradation: what turns a ground truth into the network input: MATLAB ``bicubic`` downscaling, the
            second-order ``real`` pipeline, the first-order ``photo`` one (training; evaluation: bicubic, then
            JPEG at the quality), Gaussian ``noise`` or OpenCV ``jpeg``.
        level: the degradation's parameter (``sigma`` or ``quality``), None when it has none.
        metric_keys: the metrics reported, in table order (``_y``: on luma).
        y_metrics: whether the paper's headline PSNR/SSIM are on luma (the SR tables) or on the image's own
            channels (denoising and JPEG).
        baseline: what the model is compared with: MATLAB ``bicubic`` upscaling or the degraded input
            (``identity``). real_sr has no ground truth to score either on in evaluation; training, which
            degrades ground truths itself, compares with bicubic.
        loss: the default pixel loss of training (L1 for SR, Charbonnier for denoising and JPEG, as the paper).
    """

    name: str
    family: Family
    channels: int
    upsamples: bool
    read_mode: ReadMode
    degradation: Degradation
    level: Level | None
    metric_keys: tuple[str, ...]
    y_metrics: bool
    baseline: Baseline
    loss: Literal["l1", "charbonnier"]

    def metric_border(self, scale: int) -> int:
        """Pixels cropped from each side before the metrics: the scale for SR, 0 otherwise."""
        return scale if self.upsamples else 0

    @property
    def has_ground_truth(self) -> bool:
        return self.degradation != "real"

    @property
    def headline_metrics(self) -> tuple[str, str]:
        """The PSNR and SSIM keys the paper's tables lead with: on luma for SR, else on the image's channels."""
        return ("psnr_y", "ssim_y") if self.y_metrics else ("psnr", "ssim")


_SR_KEYS = ("psnr_y", "ssim_y", "psnr", "ssim")
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("classical_sr", "sr", 3, True, "color", "bicubic", None, _SR_KEYS, True, "bicubic", "l1"),
        Task("lightweight_sr", "sr", 3, True, "color", "bicubic", None, _SR_KEYS, True, "bicubic", "l1"),
        Task("real_sr", "photo", 3, True, "color", "real", None, (), True, "bicubic", "l1"),
        Task("photo_sr", "photo", 3, True, "color", "photo", "quality", _SR_KEYS, True, "bicubic", "l1"),
        Task("gray_dn", "denoise", 1, False, "gray", "noise", "sigma", ("psnr", "ssim"), False, "identity",
             "charbonnier"),
        Task("color_dn", "denoise", 3, False, "color", "noise", "sigma", ("psnr", "ssim", "psnr_y", "ssim_y"),
             False, "identity", "charbonnier"),
        Task("gray_car", "jpeg", 1, False, "y", "jpeg", "quality", ("psnr", "ssim", "psnrb"), False, "identity",
             "charbonnier"),
        Task("color_car", "jpeg", 3, False, "color", "jpeg", "quality",
             ("psnr", "ssim", "psnrb", "psnr_y", "ssim_y", "psnrb_y"), False, "identity", "charbonnier"),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name`` (the paper's names), or a one-line error listing them."""
    try:
        return TASKS[name]
    except KeyError:
        raise SwinIRError(f"unknown task {name!r}; use one of {', '.join(TASK_NAMES)}") from None


def family_of(name: str) -> Family:
    """The family a user-typed task name means: a family, an alias or one of the paper's task names."""
    key = name.strip().lower()
    if key in FAMILY_ALIASES:
        return FAMILY_ALIASES[key]
    if key in TASKS:
        return TASKS[key].family
    raise SwinIRError(f"unknown task {name!r}: use {', '.join(FAMILIES)} (or one of {', '.join(TASK_NAMES)})")


_EVALUATED_AS: dict[tuple[Family, int], str] = {  # the protocol a family is measured with, by channels
    ("photo", 3): "photo_sr", ("sr", 3): "classical_sr", ("denoise", 3): "color_dn", ("denoise", 1): "gray_dn",
    ("jpeg", 3): "color_car", ("jpeg", 1): "gray_car",
}


def evaluation_task(name: str, channels: int | None = None, trained_as: str | None = None) -> str:
    """The paper's task ``swinir eval`` runs for a user's word (what ``restore --task`` takes, or a paper name).

    A paper name is itself. A family becomes the task the model was trained as (``trained_as``, its
    ``swinir.task`` metadata) when that is of the family, else its protocol for the model's ``channels``:
    photo -> photo_sr, sr -> classical_sr (lightweight_sr is the same protocol), denoise -> color_dn or gray_dn,
    jpeg -> color_car or gray_car. Without channels, denoise and jpeg are ambiguous and refused in one line.
    """
    key = name.strip().lower()
    if key in TASKS:
        return key
    family = family_of(key)
    if trained_as in TASKS and TASKS[trained_as].family == family:
        return trained_as
    options = [task for (fam, chans), task in _EVALUATED_AS.items() if fam == family and channels in (None, chans)]
    if not options:
        raise SwinIRError(f"--task {name}: no {FAMILY_LABELS[family]} task takes {channels}-channel images")
    if len(options) > 1:
        raise SwinIRError(f"--task {name} is {' or '.join(options)} (colour or gray): name one of them")
    return options[0]


LEVEL_RANGES: dict[Level, tuple[int, int]] = {"sigma": (0, 255), "quality": (1, 100)}  # noise on 0-255; JPEG
LEVEL_LABELS: dict[Level, str] = {"sigma": "noise level on the 0-255 scale", "quality": "JPEG quality"}
# The level a family's models may be told when they restore (the one their degradation is set by): a model
# trained for one level checks it, a blind one refuses it, the other families take neither.
RESTORE_LEVELS: dict[Family, Level] = {"denoise": "sigma", "jpeg": "quality"}


def level_family(level: Level) -> Family:
    """The family whose models take ``level`` when they restore (sigma: denoise; quality: jpeg)."""
    return next(family for family, name in RESTORE_LEVELS.items() if name == level)


def check_level(name: Level, value: float | None) -> None:
    """Refuse a noise sigma or JPEG quality outside what the degradation can mean (:data:`LEVEL_RANGES`),
    whatever the model; None (not given) passes."""
    if value is None:
        return
    low, high = LEVEL_RANGES[name]
    if not low <= value <= high:
        raise OptionRefused(name, value, problem="is out of range",
                            reason=f"the {LEVEL_LABELS[name]} lies in {low}-{high}")


def upsamples(family: Family) -> bool:
    """Whether a family's models change the image size (then a scale applies to them)."""
    return family in UPSAMPLING_FAMILIES


def family_label(family: Family, scale: int) -> str:
    """``photo x4``, ``sr x2``, ``denoise``: how a model's task is shown and typed (with ``--scale``)."""
    return f"{family} x{scale}" if upsamples(family) else family


def is_family_name(name: str) -> bool:
    """Whether ``name`` means a task family (so that, e.g., a model file called ``jpeg.safetensors`` tells its task)."""
    key = name.strip().lower()
    return key in FAMILY_ALIASES or key in TASKS

