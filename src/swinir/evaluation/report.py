"""The results of an evaluation and how they are shown: per-image and mean tables, JSON, CSV, comparison pictures.

JSON, one dataset::

    {"dataset": "Set5", "task": ..., "mean": {"psnr_y": .., "ssim_y": .., ...},
     "images": [{"name": "baby", "psnr_y": .., ...}, ...]}

With several datasets the JSON is a dict keyed by dataset name, each value of that shape. Non-finite values
(``inf`` for identical images) are written as ``null`` in JSON and ``inf`` in CSV.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..degradations import imresize
from ..images import write_image
from ..metrics import quantize
from .protocol import EvalSettings, Sample


@dataclass
class ImageResult:
    """The metrics of one image."""

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
        """The JSON object of this dataset (module docstring); non-finite values become None."""
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


def _metric_columns(results: Sequence[DatasetResult]) -> list[str]:
    return list(dict.fromkeys(k for r in results for k in r.settings.metric_keys))


def format_table(results: Sequence[DatasetResult], per_image: bool = True) -> str:
    """A plain-text table: one row per image (optional) and a ``mean`` row per dataset."""
    keys = _metric_columns(results)

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
    keys = _metric_columns(results)
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
