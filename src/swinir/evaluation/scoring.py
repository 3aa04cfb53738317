"""Scoring one output as the reference does: quantised to 8 bits first, then the task's metrics on it
(:func:`swinir.taskops.score`, which training's validation shares).

Metric keys: ``psnr``/``ssim``/``psnrb`` on the image's own channels (RGB or gray), ``_y`` suffix for luma
(MATLAB ``rgb2ycbcr`` Y, not rounded); the border (the scale for SR) is cropped first.
"""

from __future__ import annotations

import numpy as np

from .. import taskops
from ..errors import SwinIRError
from ..metrics import quantize
from .protocol import EvalSettings, Sample


def output_to_uint8(out: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    """Check a method's output against the expected HxW[xC] shape and quantise it to uint8 as the reference.

    Float outputs are clipped to [0, 1], scaled by 255 and rounded (:func:`swinir.metrics.quantize`).
    """
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


def score(output: np.ndarray, sample: Sample, settings: EvalSettings) -> dict[str, float]:
    """The task's metrics (:attr:`EvalSettings.metric_keys`) of a uint8 output against the sample's ground truth."""
    if sample.gt is None:
        return {}
    raw = settings.gray_luma == "raw" and sample.gt_stored_gray
    return taskops.score(settings.spec, output, sample.gt, settings.scale, settings.metric_keys, raw_gray_luma=raw)
