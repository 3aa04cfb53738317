"""One image through a network, image in and image out: the steps every caller shares.

The CLI (files and video frames), the web service (uploads) and the evaluation (benchmark inputs) all call
:func:`restore_image`, so a restore option or a step (say, keeping EXIF) is added in one place:

1. match the image's channels to the network's (a gray image into a colour model is replicated, and vice
   versa, with a notice);
2. plan the tiles once (:func:`swinir.engine.plan_restore`), so a progress display knows its total;
3. restore (:func:`swinir.engine.restore`: the reference's padding, tiles, ensemble, precision);
4. give a gray input its gray back, and resize the alpha channel (MATLAB bicubic) to reattach it.

Reading and writing stay with the callers (files, uploads, video streams, benchmark folders); what they
hand over is an :class:`swinir.images.Image` or a bare array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from .engine import Blend, TilePlan, plan_restore, restore
from .images import Image, match_channels
from .precision import PrecisionChoice

Progress = Callable[[int, int], None]  # (model calls done, total), first called with (0, total)


@dataclass(frozen=True)
class RestoreOptions:
    """How to run the network on one image (the ``swinir restore`` flags, the API's form fields).

    Attributes:
        tile: tile side in input pixels (a multiple of the window); None chooses one from ``max_memory``.
        tile_overlap: overlap between tiles in input pixels (default 32).
        precision: auto (bf16 where native, else fp32), fp32, bf16 or fp16 (CUDA).
        ensemble: x8 self-ensemble (flips and rotations), 8 times the work.
        max_memory: activation budget in bytes for the automatic tile (default: half the free RAM).
        blend: how overlapping tiles are merged: ``feather`` (seam-free) or ``average`` (the reference's).
    """

    tile: int | None = None
    tile_overlap: int | None = None
    precision: PrecisionChoice = "auto"
    ensemble: bool = False
    max_memory: int | None = None
    blend: Blend = "feather"


@dataclass
class Restored:
    """The result of :func:`restore_image`: pixels (the input's dtype and channels), alpha, what was noticed."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    notices: list[str] = field(default_factory=list)
    plan: TilePlan | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def restore_image(model: nn.Module, image: Image | np.ndarray, options: RestoreOptions = RestoreOptions(), *,
                  progress: Progress | None = None) -> Restored:
    """Restore one image with ``model`` (see the module docstring for the steps).

    ``image`` is a decoded :class:`~swinir.images.Image` (8/16-bit, gray or colour, with its alpha) or an
    HxW[xC] array: uint8/uint16, or float on the [0, 1] scale (a noisy input, unclipped), which comes back as
    float32 in [0, 1].
    """
    pixels = image.pixels if isinstance(image, Image) else image
    alpha = image.alpha if isinstance(image, Image) else None
    gray_input = pixels.ndim == 2 or pixels.shape[2] == 1
    matched, notice = match_channels(pixels, int(model.in_chans))
    plan = plan_restore(model, matched.shape[0], matched.shape[1], tile=options.tile,
                        tile_overlap=options.tile_overlap, max_memory=options.max_memory,
                        precision=options.precision, ensemble=options.ensemble)
    if progress is not None:
        progress(0, plan.calls)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, plan.calls)

    out = restore(model, matched, precision=options.precision, ensemble=options.ensemble, blend=options.blend,
                  progress=step, plan=plan)
    if gray_input and out.ndim == 3:  # gray input through a colour model: back to gray
        out, _ = match_channels(out, 1)
    scale = int(model.upscale)
    return Restored(out, resize_alpha(alpha, scale) if alpha is not None else None,
                    [notice] if notice else [], plan)


def resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Alpha is not a colour: it is resized with MATLAB bicubic (same-size tasks keep it unchanged)."""
    if scale == 1:
        return alpha
    from .degradations import imresize

    peak = np.iinfo(alpha.dtype).max
    up = imresize(alpha.astype(np.float64) / peak, scale)
    return (np.clip(up, 0, 1) * peak).round().astype(alpha.dtype)
