"""Validation during training, measured as ``swinir eval`` measures.

The EMA weights restore every validation input through :func:`swinir.engine.restore` in fp32, the engine of
``swinir restore`` and ``swinir eval``: the reference test script's mirror padding (which always adds up to one
window, :func:`swinir.engine.pad_reference`), tiles only where the image does not fit the memory budget (blended
by the reference's plain average, as eval does), the output clipped to [0, 1] and quantised to 8 bits. Scores
are ``swinir eval``'s (:func:`swinir.taskops.score`, the task's headline PSNR/SSIM: on luma with a
``scale``-pixel border for SR, on the image's own channels with no border for denoising and JPEG), plus the
mean absolute error (0-1 scale) over the same pixels. So a run's ``val_psnr`` is the number ``swinir eval``
gives for the same weights and inputs.

The baseline is the task's (:attr:`swinir.tasks.Task.baseline`, :func:`swinir.taskops.run_baseline`), scored
the same way: MATLAB bicubic upscaling of the 8-bit input for SR, the (8-bit) degraded input itself otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch import nn

from .. import taskops
from ..engine import restore
from ..metrics import quantize
from ..tasks import BASELINE_LABELS, get_task
from .config import RunConfig
from .data import ValImage

Scores = dict[str, float]


def _as_image(chw: np.ndarray, gray: bool) -> np.ndarray:
    """(C, H, W) -> HxW (gray) or HxWxC, the layout of the ground truths."""
    hwc = chw.transpose(1, 2, 0)
    return hwc[..., 0] if gray else hwc


def restore_for_validation(model: nn.Module, image: ValImage) -> np.ndarray:
    """``model``'s 8-bit output for one validation image, restored as ``swinir eval`` restores it (fp32)."""
    out = restore(model, image.lq[None], precision="fp32", blend="average")
    return quantize(_as_image(out[0].cpu().numpy(), image.gt.ndim == 2))


class Validation:
    """Scores on a fixed validation set (empty on ranks other than 0, or without ``val.folder``)."""

    def __init__(self, config: RunConfig, images: Sequence[ValImage]) -> None:
        task = self.task = get_task(config.task.name)
        self.images = list(images)
        self.scale = config.task.scale
        self.border = task.metric_border(self.scale)
        self.y_channel = task.y_metrics

    def __bool__(self) -> bool:
        return bool(self.images)

    @property
    def baseline_name(self) -> str:
        return BASELINE_LABELS[self.task.baseline]

    def score(self, outputs: Callable[[ValImage], np.ndarray]) -> Scores:
        """Mean ``psnr``, ``ssim`` (the task's headline metrics) and ``l1`` of the 8-bit ``outputs(image)`` over
        the set; {} without images."""
        if not self.images:
            return {}
        keys = self.task.headline_metrics
        b, rows = self.border, []
        for image in self.images:
            out, gt = outputs(image), image.gt
            scores = taskops.score(self.task, out, gt, self.scale, keys)
            crop = (slice(b, gt.shape[0] - b or None), slice(b, gt.shape[1] - b or None))
            l1 = float(np.abs(out[crop].astype(np.float64) - gt[crop]).mean() / 255.0)
            rows.append((scores[keys[0]], scores[keys[1]], l1))
        psnrs, ssims, l1s = zip(*rows, strict=True)
        return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "l1": float(np.mean(l1s))}

    def model_scores(self, model: nn.Module) -> Scores:
        """The scores of ``model`` (the EMA weights, in eval mode) restored through the engine."""
        return self.score(lambda image: restore_for_validation(model, image))

    def baseline_scores(self) -> Scores:
        """The scores of the baseline (module docstring)."""
        return self.score(self._baseline)

    def _baseline(self, image: ValImage) -> np.ndarray:
        lq8 = quantize(_as_image(image.lq.numpy(), image.gt.ndim == 2))
        return taskops.run_baseline(self.task.baseline, lq8, self.scale)
