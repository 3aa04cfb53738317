"""Evaluation as the SwinIR paper measures it: degraded inputs, metrics, tables (``swinir eval``).

The steps follow the reference test script (``shared/PROTOCOL.md``) so that numbers are comparable with
published ones:

- **SR** (``classical_sr``, ``lightweight_sr``): the LR file ``{lr_dir}/{name}x{scale}{ext}`` when an LR
  folder is given, else MATLAB bicubic of the modcropped HR; every image is read as 3-channel RGB (a
  gray file is replicated, as OpenCV's ``IMREAD_COLOR`` in the reference); ground truth cropped top-left
  to ``LR * scale``; border = scale; Y-channel PSNR/SSIM (the tables) plus RGB ones.
- **real_sr**: LR images only (from ``--lr``), no ground truth and no metrics; outputs can be saved.
- **Denoising**: ground truth as float32 in [0, 1], noise with seed 0 drawn anew for every image
  (:func:`~swinir.degradations.add_gaussian_noise`), neither clipped nor quantised; border 0.
- **JPEG** (``gray_car``, ``color_car``): OpenCV JPEG at the given quality; gray JPEG turns a 3-channel
  file into its rounded Y first; border 0; PSNR, SSIM and PSNR-B.

A :data:`Method` restores one degraded input; the runner quantises its output to 8 bits as the reference
does and scores it. Baselines: ``bicubic`` (MATLAB bicubic upscale, SR) and ``identity`` (the degraded
input itself, same-size tasks). ``--weights`` builds a method from a SwinIR checkpoint (imported lazily).

Results: one :class:`DatasetResult` per dataset, printed as a table and written as JSON/CSV::

    {"dataset": "Set5", "task": ..., "mean": {"psnr_y": .., "ssim_y": .., ...},
     "images": [{"name": "baby", "psnr_y": .., ...}, ...]}

With several datasets the JSON is a dict keyed by dataset name, each value of that shape. Metric keys:
``psnr``/``ssim``/``psnrb`` on the image's own channels (RGB or gray), ``_y`` suffix for luma.
Non-finite values (``inf`` for identical images) are written as ``null`` in JSON and ``inf`` in CSV.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from .degradations import add_gaussian_noise, imresize, jpeg_compress, modcrop, rgb_to_y_uint8
from .errors import SwinIRError
from .fileio import write_bytes_atomic
from .images import write_image
from .metrics import psnr, psnrb, quantize, rgb_to_y, ssim

TASKS = ("classical_sr", "lightweight_sr", "real_sr", "gray_dn", "color_dn", "gray_car", "color_car")
SR_TASKS = ("classical_sr", "lightweight_sr", "real_sr")
BASELINES = ("bicubic", "identity")
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
NOISE_SEED = 0  # the reference seeds numpy with 0 before every image

GrayLuma = Literal["replicate", "raw"]

Method = Callable[[np.ndarray], np.ndarray]
"""Restores one degraded input.

Input: the degraded image, HxW (gray) or HxWx3 (RGB):
  - SR and JPEG tasks: uint8;
  - denoising: float64 on the [0, 1] scale, unclipped (noise pushes values outside [0, 1]).
Output: the restored image at ``(H * scale, W * scale)`` with the input's channels (HxW or HxWx1 for
gray), either uint8 or float in [0, 1] (the runner clips, scales by 255 and rounds, as the reference).
"""


# --------------------------------------------------------------------------------------------------
# Settings and inputs
# --------------------------------------------------------------------------------------------------


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
        if self.task not in TASKS:
            raise SwinIRError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if self.is_sr and self.scale < 1:
            raise SwinIRError(f"--scale must be a positive integer for {self.task}, got {self.scale}")
        if not self.is_sr and self.scale != 1:
            raise SwinIRError(f"{self.task} keeps the image size; --scale must be 1 (got {self.scale})")
        if self.task.endswith("_dn") and (self.sigma is None or self.sigma < 0):
            raise SwinIRError(f"{self.task} needs --sigma (noise level on the 0-255 scale, e.g. 15, 25, 50)")
        if self.task.endswith("_car") and (self.quality is None or not 1 <= self.quality <= 100):
            raise SwinIRError(f"{self.task} needs --quality (JPEG quality 1-100, e.g. 10, 20, 30, 40)")
        if self.gray_luma not in ("replicate", "raw"):
            raise SwinIRError(f"gray_luma must be 'replicate' or 'raw', got {self.gray_luma!r}")

    @property
    def is_sr(self) -> bool:
        return self.task in SR_TASKS

    @property
    def border(self) -> int:
        """Pixels cropped from each side before metrics: the scale for SR, 0 otherwise."""
        return self.scale if self.is_sr else 0

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """The metrics reported for this task, in table order."""
        if self.task == "real_sr":
            return ()
        if self.is_sr:
            return ("psnr_y", "ssim_y", "psnr", "ssim")
        if self.task == "gray_dn":
            return ("psnr", "ssim")
        if self.task == "color_dn":
            return ("psnr", "ssim", "psnr_y", "ssim_y")
        if self.task == "gray_car":
            return ("psnr", "ssim", "psnrb")
        return ("psnr", "ssim", "psnrb", "psnr_y", "ssim_y", "psnrb_y")


@dataclass
class Sample:
    """One test image: its name, the 8-bit ground truth (None for real_sr) and the degraded input."""

    name: str
    gt: np.ndarray | None
    lq: np.ndarray
    gt_stored_gray: bool = False  # the ground-truth file is 1-channel (matters for gray_luma="raw")


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (as the reference's ``glob``)."""
    if not folder.is_dir():
        raise SwinIRError(f"{folder}: dataset folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SwinIRError(f"{folder}: no images in the folder ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: Path, mode: Literal["color", "gray", "unchanged"]) -> np.ndarray:
    """Read an 8-bit image as OpenCV does in the reference, returned as RGB (or gray) uint8.

    ``color``: always HxWx3 (gray replicated, alpha dropped); ``gray``: always HxW (color converted by
    OpenCV's ``IMREAD_GRAYSCALE``); ``unchanged``: HxW for 1-channel files, HxWx3 RGB otherwise (alpha dropped).
    """
    flags = {"color": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE, "unchanged": cv2.IMREAD_UNCHANGED}[mode]
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise SwinIRError(f"{path}: cannot read the file ({err.strerror})") from err
    img = cv2.imdecode(data, flags)
    if img is None:
        raise SwinIRError(f"{path}: not an image OpenCV can decode")
    if img.dtype != np.uint8:
        raise SwinIRError(f"{path}: {img.dtype} images are not supported; the benchmarks are 8-bit")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB
    return img


def find_lr(lr_dir: Path, hr_path: Path, scale: int) -> Path:
    """The LR file of ``hr_path``: ``{lr_dir}/{stem}x{scale}{ext}`` (any image extension if that is absent)."""
    exact = lr_dir / f"{hr_path.stem}x{scale}{hr_path.suffix}"
    if exact.is_file():
        return exact
    for suffix in IMAGE_SUFFIXES:
        candidate = lr_dir / f"{hr_path.stem}x{scale}{suffix}"
        if candidate.is_file():
            return candidate
    raise SwinIRError(f"{exact}: LR file missing for {hr_path.name} (expected {{name}}x{scale}{{ext}} in {lr_dir})")


def degrade(hr: np.ndarray, settings: EvalSettings, *, lr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's ``(ground truth, degraded input)`` for one image ``hr`` (uint8, read per the task).

    SR: ``lr`` (the LR file) if given, else MATLAB bicubic of ``modcrop(hr, scale)``; the ground truth is
    ``hr`` cropped top-left to ``lr * scale``. Denoising: float64 noisy input (seed 0). JPEG: OpenCV JPEG
    (gray JPEG of a 3-channel image is done on its rounded Y, which also becomes the ground truth).
    """
    task = settings.task
    if settings.is_sr:
        s = settings.scale
        if lr is None:
            lr = imresize(modcrop(hr, s), 1 / s)
        h, w = lr.shape[:2]
        if h * s > hr.shape[0] or w * s > hr.shape[1]:
            raise SwinIRError(f"LR {w}x{h} times {s} is larger than the HR image {hr.shape[1]}x{hr.shape[0]}")
        return hr[: h * s, : w * s], lr
    if task.endswith("_dn"):
        return hr, add_gaussian_noise(hr.astype(np.float32) / 255.0, float(settings.sigma), seed=NOISE_SEED)
    if task == "gray_car" and hr.ndim == 3:
        hr = rgb_to_y_uint8(hr)
    return hr, jpeg_compress(hr, int(settings.quality))


def load_sample(hr_path: Path, settings: EvalSettings, lr_dir: Path | None = None) -> Sample:
    """Read one ground-truth file (as the reference reads it for the task) and build its degraded input."""
    name = hr_path.stem
    if settings.task == "real_sr":
        return Sample(name, None, read_image(hr_path, "color"))
    mode = {"gray_dn": "gray", "gray_car": "unchanged", "color_dn": "color", "color_car": "color"}
    hr = read_image(hr_path, mode.get(settings.task, "unchanged"))
    lr = None
    stored_gray = hr.ndim == 2
    if settings.is_sr:
        hr = np.repeat(hr[..., None], 3, axis=2) if stored_gray else hr  # as IMREAD_COLOR
        if lr_dir is not None:
            lr = read_image(find_lr(lr_dir, hr_path, settings.scale), "color")
    gt, lq = degrade(hr, settings, lr=lr)
    return Sample(name, gt, lq, stored_gray)


# --------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------


def bicubic_method(scale: int) -> Method:
    """MATLAB bicubic upscaling by ``scale`` (uint8 in, uint8 out, MATLAB's uint8 path)."""

    def method(lq: np.ndarray) -> np.ndarray:
        return imresize(lq, float(scale))

    return method


def identity_method(lq: np.ndarray) -> np.ndarray:
    """The degraded input itself (a float denoising input is quantised by the runner)."""
    return lq


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
                 precision: str = "fp32", ensemble: bool = False) -> Method:
    """A method that runs a SwinIR checkpoint through :func:`swinir.restore` (imported here, lazily).

    uint8 inputs (SR, JPEG) go through the numpy path (float32 / 255 in, rounded uint8 out, as the
    reference); float denoising inputs go in as a float32 tensor, unclipped, as the reference feeds them.
    Tiles are blended by the reference's uniform average (``blend="average"``), not the engine's feathering.
    """
    import torch

    from . import load, restore

    model = load(weights, preset, device=device)
    want = settings.scale if settings.is_sr else 1
    if int(model.upscale) != want:
        raise SwinIRError(f"{weights}: the model upscales x{model.upscale} but the task needs x{want}")
    kwargs: dict[str, Any] = {"tile": tile, "tile_overlap": tile_overlap, "precision": precision,
                              "ensemble": ensemble, "blend": "average"}

    def method(lq: np.ndarray) -> np.ndarray:
        if lq.dtype == np.uint8:
            return restore(model, lq, **kwargs)
        arr = lq[..., None] if lq.ndim == 2 else lq
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()[None]
        y = restore(model, x, **kwargs)
        return y[0].permute(1, 2, 0).cpu().numpy()

    return method


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def output_to_uint8(out: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    """Check a method's output against the expected HxW[xC] shape and quantise it to uint8 as the reference."""
    out = np.asarray(out)
    if out.ndim == 3 and out.shape[2] == 1 and len(expected) == 2:
        out = out[..., 0]
    if out.shape != expected:
        raise SwinIRError(f"the method returned shape {out.shape}, expected {expected}")
    if out.dtype == np.uint8:
        return out
    if np.issubdtype(out.dtype, np.floating):
        return quantize(out)
    raise SwinIRError(f"the method returned {out.dtype}; return uint8 or float in [0, 1]")


def _full_range_luma(img: np.ndarray) -> np.ndarray:
    """Luma rescaled to 0-255 (``(Y - 16) * 255 / 219``): the gray values themselves for a replicated gray image."""
    return (rgb_to_y(img) - 16.0) * (255.0 / 219.0)


def score(output: np.ndarray, sample: Sample, settings: EvalSettings) -> dict[str, float]:
    """The task's metrics (:attr:`EvalSettings.metric_keys`) of a uint8 output against the sample's ground truth."""
    gt = sample.gt
    if gt is None:
        return {}
    b = settings.border
    out: dict[str, float] = {}
    if settings.is_sr and settings.gray_luma == "raw" and sample.gt_stored_gray:
        luma_out, luma_gt = _full_range_luma(output), gt[..., 0].astype(np.float64)
        out["psnr_y"] = psnr(luma_out, luma_gt, border=b)
        out["ssim_y"] = ssim(luma_out, luma_gt, border=b)
    for key in settings.metric_keys:
        if key in out:
            continue
        y_channel = key.endswith("_y")
        fn = {"psnr": psnr, "ssim": ssim, "psnrb": psnrb}[key.removesuffix("_y")]
        out[key] = fn(output, gt, border=b, y_channel=y_channel)
    return {k: out[k] for k in settings.metric_keys}


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class ImageResult:
    name: str
    metrics: dict[str, float]


@dataclass
class DatasetResult:
    """Per-image metrics of one dataset, with the settings that produced them."""

    dataset: str
    settings: EvalSettings
    method: str
    images: list[ImageResult] = field(default_factory=list)

    @property
    def mean(self) -> dict[str, float]:
        """Mean of each metric over the images (the paper's per-set number)."""
        if not self.images:
            return {}
        return {k: float(np.mean([r.metrics[k] for r in self.images])) for k in self.settings.metric_keys}

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        info: dict[str, Any] = {"dataset": self.dataset, "task": s.task, "method": self.method}
        if s.is_sr:
            info["scale"] = s.scale
        if s.sigma is not None:
            info["sigma"] = s.sigma
        if s.quality is not None:
            info["quality"] = s.quality
        info["border"] = s.border
        info["mean"] = _finite_or_none(self.mean)
        info["images"] = [{"name": r.name, **_finite_or_none(r.metrics)} for r in self.images]
        return info


def _finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def _fmt(key: str, value: float) -> str:
    if not math.isfinite(value):
        return "inf"
    return f"{value:.4f}" if key.startswith("ssim") else f"{value:.2f}"


def format_table(results: Sequence[DatasetResult], per_image: bool = True) -> str:
    """A plain-text table: one row per image (optional) and a ``mean`` row per dataset."""
    keys = list(dict.fromkeys(k for r in results for k in r.settings.metric_keys))

    def row(dataset: str, name: str, metrics: dict[str, float]) -> list[str]:
        return [dataset, name, *(_fmt(k, metrics[k]) if k in metrics else "" for k in keys)]

    rows: list[list[str]] = []
    for res in results:
        if per_image:
            rows += [row(res.dataset, img.name, img.metrics) for img in res.images]
        rows.append(row(res.dataset, "mean", res.mean))
    header = ["dataset", "image", *keys]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    return "\n".join(lines)


def results_to_json(results: Sequence[DatasetResult]) -> dict[str, Any]:
    """One dataset: its dict; several: a dict keyed by dataset name (see the module docstring)."""
    if len(results) == 1:
        return results[0].to_dict()
    return {r.dataset: r.to_dict() for r in results}


def results_to_csv(results: Sequence[DatasetResult]) -> str:
    """CSV text: ``dataset,name,<metrics>``; per image, plus a row named ``mean`` per dataset."""
    keys = list(dict.fromkeys(k for r in results for k in r.settings.metric_keys))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "name", *keys])
    for res in results:
        for name, metrics in [*((r.name, r.metrics) for r in res.images), ("mean", res.mean)]:
            writer.writerow([res.dataset, name, *(repr(float(metrics[k])) if k in metrics else "" for k in keys)])
    return buf.getvalue()


def write_png(path: Path, img: np.ndarray) -> None:
    """Write a uint8 RGB or gray image as PNG, atomically."""
    write_image(path, img)


# --------------------------------------------------------------------------------------------------
# Side-by-side comparisons
# --------------------------------------------------------------------------------------------------

COMPARE_CROP = 96
COMPARE_ZOOM = 3
COMPARE_LABEL_HEIGHT = 18
COMPARE_GAP = 4


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def choose_crop(reference: np.ndarray | None, output: np.ndarray, baseline: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left of the ``size`` square where the method's error differs most from the baseline's.

    Score per pixel: ``| |output - ref| - |baseline - ref| |`` (channel mean), summed over the square; without
    a reference (real_sr), ``|output - baseline|``. Ties (e.g. a method equal to the baseline) go to the
    first position in raster order.
    """
    out = _as_rgb(output).astype(np.float64)
    base = _as_rgb(baseline).astype(np.float64)
    if reference is None:
        diff = np.abs(out - base).mean(axis=2)
    else:
        ref = _as_rgb(reference).astype(np.float64)
        diff = np.abs(np.abs(out - ref) - np.abs(base - ref)).mean(axis=2)
    integral = cv2.integral(diff)  # (H+1, W+1)
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def comparison_panel(panels: Sequence[tuple[str, np.ndarray]], top_left: tuple[int, int], size: int,
                     zoom: int = COMPARE_ZOOM) -> np.ndarray:
    """Crops of same-sized images side by side, each enlarged ``zoom`` times (nearest) under a text label.

    Size: ``(size * zoom + COMPARE_LABEL_HEIGHT) x (n * size * zoom + (n - 1) * COMPARE_GAP)``, RGB uint8.
    """
    from PIL import Image, ImageDraw

    y, x = top_left
    tile = size * zoom
    width = len(panels) * tile + (len(panels) - 1) * COMPARE_GAP
    canvas = Image.new("RGB", (width, tile + COMPARE_LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (label, img) in enumerate(panels):
        crop = _as_rgb(img)[y : y + size, x : x + size]
        big = np.repeat(np.repeat(crop, zoom, axis=0), zoom, axis=1)
        left = i * (tile + COMPARE_GAP)
        canvas.paste(Image.fromarray(np.ascontiguousarray(big)), (left, COMPARE_LABEL_HEIGHT))
        draw.text((left + 2, 3), label, fill=(0, 0, 0))
    return np.asarray(canvas)


def _display_input(sample: Sample, settings: EvalSettings) -> np.ndarray:
    """The degraded input as 8 bits at the output size (nearest-neighbour enlarged for SR)."""
    lq = sample.lq if sample.lq.dtype == np.uint8 else quantize(sample.lq)
    s = settings.scale
    return np.repeat(np.repeat(lq, s, axis=0), s, axis=1) if s > 1 else lq


def save_comparison(path: Path, sample: Sample, output: np.ndarray, settings: EvalSettings, method_name: str) -> None:
    """Write the side-by-side PNG of one image: ground truth, input, bicubic (SR), method output."""
    shown_input = _display_input(sample, settings)
    baseline = imresize(sample.lq, float(settings.scale)) if settings.is_sr else shown_input
    panels: list[tuple[str, np.ndarray]] = []
    if sample.gt is not None:
        panels.append(("ground truth", sample.gt))
    panels.append(("input", shown_input))
    if settings.is_sr:
        panels.append(("bicubic", baseline))
    panels.append((method_name, output))
    size = min(COMPARE_CROP, *output.shape[:2])
    top_left = choose_crop(sample.gt, output, baseline, size)
    write_png(path, comparison_panel(panels, top_left, size))


# --------------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------------


_CONTAINER_FOLDER = re.compile(r"(hr|gt|lq|lr(_\w+)?|x\d+)", re.IGNORECASE)


def dataset_name(folder: Path) -> str:
    """The dataset a folder belongs to: ``Set5`` for ``Set5``, ``Set5/HR`` and ``Set5/LR_bicubic/X2``.

    Folders named like HR, GT, LQ, LR, LR_<kind> or X<scale> are skipped in favour of their parent.
    """
    folder = folder.resolve()
    while _CONTAINER_FOLDER.fullmatch(folder.name) and folder.parent != folder:
        folder = folder.parent
    return folder.name or "dataset"


def evaluate_dataset(method: Method, settings: EvalSettings, *, hr_dir: Path | None = None, lr_dir: Path | None = None,
                     name: str | None = None, method_name: str = "method", save_dir: Path | None = None,
                     progress: bool = True) -> DatasetResult:
    """Run ``method`` over one dataset and score it.

    ``hr_dir`` holds the ground truths (not used by ``real_sr``, whose inputs are the files in ``lr_dir``).
    With ``save_dir``, every output is written to ``save_dir/<dataset>/<name>.png`` and a side-by-side crop
    to ``save_dir/<dataset>/compare/<name>.png``.
    """
    from tqdm import tqdm

    if settings.task == "real_sr":
        if lr_dir is None:
            raise SwinIRError("real_sr evaluates LR images only: give their folder with --lr")
        files, folder = list_images(lr_dir), lr_dir
    else:
        if hr_dir is None:
            raise SwinIRError(f"{settings.task} needs the ground-truth folder (--hr)")
        if lr_dir is not None and not lr_dir.is_dir():
            raise SwinIRError(f"{lr_dir}: LR folder not found")
        files, folder = list_images(hr_dir), hr_dir
    result = DatasetResult(name or dataset_name(folder), settings, method_name)
    for path in tqdm(files, desc=result.dataset, unit="img", disable=not progress, leave=False):
        sample = load_sample(path, settings, None if settings.task == "real_sr" else lr_dir)
        h, w = sample.lq.shape[:2]
        expected = (h * settings.scale, w * settings.scale, *sample.lq.shape[2:])
        output = output_to_uint8(method(sample.lq), expected)
        result.images.append(ImageResult(sample.name, score(output, sample, settings)))
        if save_dir is not None:
            folder_out = save_dir / result.dataset
            write_png(folder_out / f"{sample.name}.png", output)
            save_comparison(folder_out / "compare" / f"{sample.name}.png", sample, output, settings, method_name)
    return result


def evaluate(method: Method, settings: EvalSettings, datasets: Sequence[tuple[Path | None, Path | None]], *,
             method_name: str = "method", save_dir: Path | None = None, progress: bool = True) -> list[DatasetResult]:
    """:func:`evaluate_dataset` over several ``(hr_dir, lr_dir)`` pairs; duplicate names get a ``-2`` suffix."""
    results: list[DatasetResult] = []
    seen: set[str] = set()
    for hr_dir, lr_dir in datasets:
        folder = lr_dir if settings.task == "real_sr" else hr_dir
        base = dataset_name(folder) if folder is not None else "dataset"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        results.append(evaluate_dataset(method, settings, hr_dir=hr_dir, lr_dir=lr_dir, name=name,
                                        method_name=method_name, save_dir=save_dir, progress=progress))
    return results


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``swinir eval`` options."""
    parser.add_argument("--task", required=True, choices=TASKS, help="what is evaluated (the paper's protocol for it)")
    parser.add_argument("--scale", type=int, default=None, help="SR factor (SR tasks; default 1 otherwise)")
    parser.add_argument("--hr", type=Path, action="append", default=[], metavar="DIR",
                        help="ground-truth folder; repeat for several datasets (e.g. --hr Set5/HR --hr Set14/HR)")
    parser.add_argument("--lr", type=Path, action="append", default=[], metavar="DIR",
                        help="LR folder with {name}x{scale}{ext} files, one per --hr in the same order "
                             "(default: MATLAB bicubic of the HR); for real_sr, the input folder(s)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--weights", "-w",
                       help="a SwinIR checkpoint (.pth or .safetensors) to evaluate; default: the bundled model")
    which.add_argument("--method", choices=BASELINES, help="a baseline instead of a model")
    parser.add_argument("--preset", help="read --weights as this preset instead of inferring the architecture")
    parser.add_argument("--sigma", type=float, default=None, help="noise level for denoising (0-255 scale)")
    parser.add_argument("--quality", type=int, default=None, help="JPEG quality for artifact reduction")
    parser.add_argument("--gray-luma", choices=("replicate", "raw"), default="replicate",
                        help="SR luma of gray-stored ground truths: replicate (reference script, default) or raw "
                             "(the gray values, as the MATLAB scripts behind the published bicubic tables)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--csv", type=Path, help="write the per-image results as CSV here")
    parser.add_argument("--save", type=Path, metavar="DIR", help="save outputs and side-by-side crops here")
    parser.add_argument("--tile", type=int, default=None, help="tile side in input pixels (model only)")
    parser.add_argument("--tile-overlap", type=int, default=None, help="overlap between tiles (default 32)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--ensemble", action="store_true", help="x8 self-ensemble")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, means only")


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    """The :class:`EvalSettings` of parsed ``swinir eval`` arguments."""
    if args.task in SR_TASKS and args.scale is None:
        raise SwinIRError(f"{args.task} needs --scale")
    return EvalSettings(task=args.task, scale=args.scale or 1, sigma=args.sigma, quality=args.quality,
                        gray_luma=args.gray_luma)


def weights_method_from_args(args: argparse.Namespace, settings: EvalSettings) -> Method:
    """The default ``restore_factory``: :func:`model_method` for ``--weights``."""
    return model_method(args.weights, settings, preset=args.preset, device=args.device, tile=args.tile,
                        tile_overlap=args.tile_overlap, precision=args.precision, ensemble=args.ensemble)


BUNDLED_TASKS = {"classical_sr": "sr", "lightweight_sr": "sr", "color_dn": "denoise", "color_car": "jpeg"}


def bundled_weights_for(settings: EvalSettings) -> Path:
    """The bundled model that fits an evaluation task (its scale for SR)."""
    from .bundled import bundled_weights

    task = BUNDLED_TASKS.get(settings.task)
    if task is None:
        raise SwinIRError(f"no bundled model for {settings.task}; pass --weights W or --method bicubic|identity")
    return bundled_weights(task, settings.scale if task == "sr" else None)


def dataset_pairs(args: argparse.Namespace, settings: EvalSettings) -> list[tuple[Path | None, Path | None]]:
    """``(hr_dir, lr_dir)`` per dataset from the repeated ``--hr``/``--lr`` options."""
    if settings.task == "real_sr":
        if not args.lr:
            raise SwinIRError("real_sr evaluates LR images only: give their folder with --lr")
        return [(None, lr) for lr in args.lr]
    if not args.hr:
        raise SwinIRError(f"{settings.task} needs the ground-truth folder (--hr)")
    if args.lr and not settings.is_sr:
        raise SwinIRError(f"--lr is for SR tasks; {settings.task} builds its inputs from --hr")
    if args.lr and len(args.lr) != len(args.hr):
        raise SwinIRError(f"give one --lr per --hr (got {len(args.hr)} --hr and {len(args.lr)} --lr)")
    lrs: list[Path | None] = list(args.lr) if args.lr else [None] * len(args.hr)
    return list(zip(args.hr, lrs, strict=True))


def run_eval_command(args: argparse.Namespace, *,
                     restore_factory: Callable[[argparse.Namespace, EvalSettings], Method] | None = None) -> int:
    """``swinir eval``: evaluate, print the table, write JSON/CSV/images. Returns the exit code (0).

    ``restore_factory(args, settings)`` builds the method for ``--weights`` (default
    :func:`weights_method_from_args`, which imports the model code only then).
    """
    settings = settings_from_args(args)
    pairs = dataset_pairs(args, settings)
    if args.method:
        method, method_name = baseline_method(args.method, settings), args.method
    else:
        if not args.weights:
            args.weights = str(bundled_weights_for(settings))
        method = (restore_factory or weights_method_from_args)(args, settings)
        method_name = Path(args.weights).stem
    results = evaluate(method, settings, pairs, method_name=method_name, save_dir=args.save, progress=not args.quiet)
    what = f"{settings.task}" + (f" x{settings.scale}" if settings.is_sr else "")
    what += f" sigma {settings.sigma:g}" if settings.sigma is not None else ""
    what += f" quality {settings.quality}" if settings.quality is not None else ""
    if settings.metric_keys:
        print(f"{method_name} on {what} (border {settings.border})")
        print(format_table(results, per_image=not args.quiet))
    else:  # real_sr: no ground truth
        print(f"{method_name} on {what}: " + ", ".join(f"{len(r.images)} images of {r.dataset}" for r in results)
              + " (no ground truth, no metrics)")
    if args.json:
        write_bytes_atomic(args.json, (json.dumps(results_to_json(results), indent=2, allow_nan=False) + "\n").encode())
    if args.csv:
        write_bytes_atomic(args.csv, results_to_csv(results).encode())
    if args.save:
        print(f"outputs and comparisons in {args.save}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
