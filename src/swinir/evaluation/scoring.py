"""Scoring one output as the reference does: quantised to 8 bits first, then the task's metrics on it.

Metric keys: ``psnr``/``ssim``/``psnrb`` on the image's own channels (RGB or gray), ``_y`` suffix for luma
(MATLAB ``rgb2ycbcr`` Y, not rounded); the border (the scale for SR) is cropped first.
"""

from __future__ import annotations

import numpy as np

from ..errors import SwinIRError
from ..metrics import psnr, psnrb, quantize, rgb_to_y, ssim
from .protocol import EvalSettings, Sample

_METRICS = {"psnr": psnr, "ssim": ssim, "psnrb": psnrb}


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
        if key not in out:
            out[key] = _METRICS[key.removesuffix("_y")](output, gt, border=b, y_channel=key.endswith("_y"))
    return {k: out[k] for k in settings.metric_keys}
