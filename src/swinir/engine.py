"""Inference on arrays and tensors: padding as the paper's test script, tiling with a bounded memory
footprint, self-ensemble, fp32 or bf16.

:func:`restore` is the numeric core under :func:`swinir.pipeline.restore_image` (what the CLI, the evaluation
and the web service call). Images are padded exactly as the reference test script pads them (a mirror pad that
always adds up to one window, see :func:`pad_reference`), restored whole or in overlapping tiles
(:func:`plan_restore` decides, once per image), and cropped back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from .descriptor import describe
from .errors import SwinIRError
from .precision import Precision, autocast, resolve_precision

Blend = Literal["feather", "average"]
DEFAULT_TILE_OVERLAP = 32
MIN_TILE_WINDOWS = 4  # smallest automatic tile: 4 windows per side
MIN_TILE = 16  # smallest tile a user may ask for: two windows of every published model (window 8, or 7)


def pad_reference(x: Tensor, window_size: int) -> Tensor:
    """The padding of the reference test script: mirror the bottom/right edge (edge row repeated).

    It adds ``(h // ws + 1) * ws - h`` rows, i.e. 1 to ws rows: a whole window even when ``h`` already is a
    multiple. Published numbers were made this way, so it is kept for exact reproduction.
    """
    h, w = x.shape[-2:]
    ws = window_size
    h_pad, w_pad = (h // ws + 1) * ws - h, (w // ws + 1) * ws - w
    x = torch.cat([x, torch.flip(x, [-2])], -2)[..., : h + h_pad, :]
    return torch.cat([x, torch.flip(x, [-1])], -1)[..., : w + w_pad]


def tile_origins(size: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis, as the reference: every ``stride`` and one flush with the end."""
    return [*range(0, size - tile, stride), size - tile]


def _feather(length: int, overlap: int, at_start: bool, at_end: bool) -> Tensor:
    """1-D blending weights of one tile: 1 inside, ramping to 0 towards sides shared with another tile.

    Tile outputs are least trustworthy at their edges (zero-padded convs, windows cut off), and that error
    decays inwards. The ramp spans only the middle half of the overlap, so the outer quarter, the worst
    part, gets no weight, and neighbouring ramps still sum to a smooth, seam-free transition.
    """
    ramp = torch.ones(length, dtype=torch.float64)
    n = min(overlap, length)
    if n > 0:
        pos = torch.arange(n, dtype=torch.float64) + 0.5
        steps = ((pos - n / 4) / (n / 2)).clamp(0, 1)
        if not at_start:
            ramp[:n] = torch.minimum(ramp[:n], steps)
        if not at_end:
            ramp[-n:] = torch.minimum(ramp[-n:], steps.flip(0))
    return ramp


def bytes_per_pixel(model: object, precision: Precision = "fp32") -> float | None:
    """Rough peak activation bytes per LR pixel of one forward pass, as the model's descriptor estimates it
    for its backend (:meth:`swinir.descriptor.ModelDescriptor.activation_bytes_per_pixel`). Used only to
    choose a tile size from a memory budget; None for a stand-in network that is not a SwinIR."""
    described = describe(model)
    return None if described is None else described.activation_bytes_per_pixel(precision)


def available_memory() -> int:
    """Bytes the system can still give (MemAvailable), or 4 GiB where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def auto_tile(model: nn.Module, h: int, w: int, max_memory: int | None, precision: Precision = "fp32") -> int | None:
    """The largest tile (multiple of the window) whose activations fit ``max_memory``; None = no tiling needed
    (or no estimate: a stand-in network runs whole unless given a tile).

    The default budget is half the available memory, or less where the model's backend caps it
    (:attr:`~swinir.descriptor.ModelDescriptor.default_memory_cap`: onnxruntime, whose whole-image pass is
    not chunked)."""
    described = describe(model)
    if described is None:
        return None
    budget = max_memory if max_memory is not None else available_memory() // 2
    if max_memory is None and described.default_memory_cap:
        budget = min(budget, described.default_memory_cap)
    ws = model.window_size
    side = int(math.sqrt(max(budget, 1) / described.activation_bytes_per_pixel(precision)))
    if side >= max(h, w):
        return None
    tile = max(ws * MIN_TILE_WINDOWS, side // ws * ws)
    if tile > min(h, w) and side * side >= h * w:
        return None
    return tile


def _forward_tiled(model: nn.Module, x: Tensor, tile: int | None, overlap: int, blend: Blend,
                   progress: Callable[[int], None] | None) -> Tensor:
    """Run the model on ``x`` (already window-padded) whole or in tiles, blended into one output."""
    b, c, h, w = x.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32  # bf16 outputs accumulate in fp32
    if tile is None or tile >= max(h, w):
        out = model(x).to(acc)
        if progress:
            progress(1)
        return out
    ws = model.window_size
    tile = min(tile, h, w)
    if tile % ws:
        raise SwinIRError(f"tile {tile} must be a multiple of the window size {ws}")
    if not 0 <= overlap < tile:
        raise SwinIRError(f"tile overlap {overlap} must lie in [0, tile {tile})")
    s = model.upscale
    stride = tile - overlap
    hs, wss = tile_origins(h, tile, stride), tile_origins(w, tile, stride)
    out = torch.zeros(b, c, h * s, w * s, dtype=acc, device=x.device)
    weight = torch.zeros(1, 1, h * s, w * s, dtype=acc, device=x.device)
    for i in hs:
        for j in wss:
            patch = model(x[..., i : i + tile, j : j + tile]).to(acc)
            wt = tile_weight(tile, overlap, s, (i == 0, i + tile == h), (j == 0, j + tile == w), blend
                             ).to(device=x.device, dtype=acc)
            out[..., i * s : (i + tile) * s, j * s : (j + tile) * s] += patch * wt
            weight[..., i * s : (i + tile) * s, j * s : (j + tile) * s] += wt
            if progress:
                progress(1)
    return out / weight


def tile_weight(tile: int, overlap: int, scale: int, rows_edge: tuple[bool, bool], cols_edge: tuple[bool, bool],
                blend: Blend = "feather") -> Tensor:
    """The (1, 1, tile*scale, tile*scale) blending weight of one output tile; ``rows_edge`` / ``cols_edge``
    say whether the tile touches the image's (top, bottom) / (left, right) sides, where it shares nothing.
    The in-memory tiling and the band streaming of :mod:`swinir.streaming` both blend with it."""
    n = tile * scale
    if blend == "average":
        return torch.ones(1, 1, n, n, dtype=torch.float64)
    wy = _feather(n, overlap * scale, *rows_edge)
    wx = _feather(n, overlap * scale, *cols_edge)
    return (wy[:, None] * wx[None, :])[None, None]


def check_tiling(tile: int | None, tile_overlap: int | None = None) -> None:
    """Refuse a tile below :data:`MIN_TILE` or a negative overlap, whatever the model (callers check this
    before any work; :func:`plan_tiling` checks again for library users)."""
    if tile is not None and tile < MIN_TILE:
        raise SwinIRError(f"tile {tile} is too small: use at least {MIN_TILE} pixels (a few hundred is usual), or "
                          "no tile to choose one from the memory budget")
    if tile_overlap is not None and tile_overlap < 0:
        raise SwinIRError(f"tile overlap must be >= 0, got {tile_overlap}")


def round_tile(tile: int, window_size: int) -> int:
    """A requested tile as the network runs it: rounded down to a multiple of the window."""
    return max(tile // window_size * window_size, window_size)


def tiling_notice(model: nn.Module, tile: int | None, tile_overlap: int | None = None) -> str | None:
    """One line for a user whose tile or overlap :func:`plan_tiling` will change on this model, else None."""
    if tile is None:
        return None
    ws = model.window_size
    tile_run = round_tile(tile, ws)
    changes = [f"tile {tile} runs as {tile_run} (a multiple of the window, {ws})"] if tile_run != tile else []
    if tile_overlap is not None and tile_overlap > tile_run - ws:
        changes.append(f"overlap {tile_overlap} as {tile_run - ws} (at most the tile less one window)")
    return "; ".join(changes) or None


def plan_tiling(model: nn.Module, h: int, w: int, *, tile: int | None = None, tile_overlap: int | None = None,
                max_memory: int | None = None, precision: Precision = "fp32") -> tuple[int | None, int]:
    """The (tile, overlap) :func:`restore` uses for an (h, w) image: the given tile rounded down to a
    window multiple (:func:`round_tile`), or one chosen from the memory budget (None: the whole image at once)."""
    check_tiling(tile, tile_overlap)
    ws = model.window_size
    overlap = DEFAULT_TILE_OVERLAP if tile_overlap is None else tile_overlap
    tile = auto_tile(model, h + ws, w + ws, max_memory, precision) if tile is None else round_tile(tile, ws)
    if tile is not None:
        overlap = min(overlap, tile - ws)
    return tile, overlap


@dataclass(frozen=True)
class TilePlan:
    """How :func:`restore` runs one (h, w) image: whole (``tile`` None) or in tiles, and how many model calls
    that takes (tiles x ensemble transforms), so a progress bar knows its total before the first call."""

    tile: int | None
    overlap: int
    calls: int


def plan_restore(model: nn.Module, h: int, w: int, *, tile: int | None = None, tile_overlap: int | None = None,
                 max_memory: int | None = None, precision: str = "fp32", ensemble: bool = False) -> TilePlan:
    """The :class:`TilePlan` of an (h, w) image (see :func:`plan_tiling` for the tile choice)."""
    concrete = resolve_precision(precision, model_device_dtype(model)[0])
    tile, overlap = plan_tiling(model, h, w, tile=tile, tile_overlap=tile_overlap, max_memory=max_memory,
                                precision=concrete)
    calls = count_tiles(h, w, model.window_size, tile, overlap) * (len(_ENSEMBLE) if ensemble else 1)
    return TilePlan(tile, overlap, calls)


def count_tiles(h: int, w: int, window_size: int, tile: int | None, overlap: int) -> int:
    """How many model calls :func:`restore` makes for an (h, w) image with a planned tile (no ensemble)."""
    ws = window_size
    hp, wp = (h // ws + 1) * ws, (w // ws + 1) * ws
    if tile is None or tile >= max(hp, wp):
        return 1
    tile = min(tile, hp, wp)
    return len(tile_origins(hp, tile, tile - overlap)) * len(tile_origins(wp, tile, tile - overlap))


_ENSEMBLE = [(k, flip) for flip in (False, True) for k in range(4)]


def _restore_tensor(model: nn.Module, x: Tensor, tile: int | None, overlap: int, ensemble: bool, blend: Blend,
                    progress: Callable[[int], None] | None) -> Tensor:
    h, w = x.shape[-2:]
    s = model.upscale
    ws = model.window_size
    transforms = _ENSEMBLE if ensemble else _ENSEMBLE[:1]
    acc = None
    for k, flip in transforms:
        t = torch.rot90(x, k, (-2, -1))
        if flip:
            t = t.flip(-1)
        th, tw = t.shape[-2:]
        y = _forward_tiled(model, pad_reference(t, ws), tile, overlap, blend, progress)[..., : th * s, : tw * s]
        if flip:
            y = y.flip(-1)
        y = torch.rot90(y, -k, (-2, -1))
        acc = y if acc is None else acc + y
    out = acc / len(transforms)
    return out[..., : h * s, : w * s]


def restore(
    model: nn.Module,
    image: Tensor | np.ndarray,
    *,
    tile: int | None = None,
    tile_overlap: int | None = None,
    precision: str = "fp32",
    ensemble: bool = False,
    max_memory: int | None = None,
    blend: Blend = "feather",
    clamp: bool = True,
    progress: Callable[[int], None] | None = None,
    plan: TilePlan | None = None,
) -> Tensor | np.ndarray:
    """Restore an image or a batch with a SwinIR network.

    Args:
        model: a SwinIR network (``upscale``, ``in_chans``, ``window_size`` attributes), in eval mode.
        image: float tensor (B, C, H, W) with values in [0, 1] (returned as float32 in [0, 1] unless
            ``clamp=False``), or a numpy array HxW or HxWxC: uint8/uint16 (returned in the same dtype) or
            float on the [0, 1] scale, unclipped (a noisy input; returned as float32 in [0, 1]).
        tile: tile side in input pixels (a multiple of the window), or None to choose one from
            ``max_memory`` (no tiling when the whole image fits).
        tile_overlap: overlap between tiles in input pixels (default 32, at least one window is advised).
        precision: "fp32" (the default here: exact), "bf16" (CPU AVX512-BF16/AMX, CUDA), "fp16" (CUDA) or
            "auto" (bf16 where the hardware computes it natively, see :mod:`swinir.precision`).
        ensemble: average the 8 flips/rotations (x8 self-ensemble), 8 times the work.
        max_memory: activation budget in bytes for the automatic tile (default: half the available RAM).
        blend: "feather" (ramps across the middle of overlaps, seam-free) or "average" (the reference's mean).
        clamp: clip the output to [0, 1] (as the reference test script does).
        progress: called with 1 after every model call (tiles x ensemble), e.g. ``tqdm.update``.
        plan: a :func:`plan_restore` made beforehand for this image (then ``tile``, ``tile_overlap`` and
            ``max_memory`` are not looked at); None plans here.
    """
    if isinstance(image, np.ndarray):
        return _restore_array(model, image, tile=tile, tile_overlap=tile_overlap, precision=precision,
                              ensemble=ensemble, max_memory=max_memory, blend=blend, progress=progress, plan=plan)
    if not isinstance(image, Tensor) or image.ndim != 4 or not image.is_floating_point():
        raise SwinIRError("restore() takes a float tensor (B, C, H, W) in [0, 1] or a uint8/uint16 numpy image")
    if image.shape[1] != model.in_chans:
        raise SwinIRError(
            f"the image has {image.shape[1]} channels but the model expects {model.in_chans}; "
            "convert it (gray <-> RGB) first"
        )
    device, dtype = model_device_dtype(model)
    concrete = resolve_precision(precision, device)
    if plan is None:
        plan = plan_restore(model, *image.shape[-2:], tile=tile, tile_overlap=tile_overlap, max_memory=max_memory,
                            precision=concrete, ensemble=ensemble)
    x = image.to(device=device, dtype=dtype)
    with torch.no_grad(), autocast(concrete, device):  # not inference_mode: users may edit the result
        out = _restore_tensor(model, x, plan.tile, plan.overlap, ensemble, blend, progress)
    out = out if out.dtype == torch.float64 else out.float()
    return out.clamp_(0, 1) if clamp else out


def model_device_dtype(model: object) -> tuple[torch.device, torch.dtype]:
    """Where inputs go: a module's first parameter, or a descriptor's ``device``/``dtype``."""
    if isinstance(model, nn.Module):
        param = next(model.parameters())
        return param.device, param.dtype
    return torch.device(getattr(model, "device", "cpu")), getattr(model, "dtype", torch.float32)


def _restore_array(model: nn.Module, image: np.ndarray, **kwargs: object) -> np.ndarray:
    """numpy HxW[xC] uint8/uint16 -> same dtype, float -> float32, through the tensor path."""
    integer = image.dtype in (np.uint8, np.uint16)
    if not integer and not np.issubdtype(image.dtype, np.floating):
        raise SwinIRError(f"numpy images must be uint8, uint16 or float, got {image.dtype}")
    if image.ndim not in (2, 3):
        raise SwinIRError(f"numpy images must be HxW or HxWxC, got shape {image.shape}")
    peak = 255.0 if image.dtype == np.uint8 else 65535.0 if integer else 1.0
    arr = image[..., None] if image.ndim == 2 else image
    x = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32) / peak).permute(2, 0, 1)[None]
    y = restore(model, x, **kwargs)  # type: ignore[arg-type]
    out = y[0].permute(1, 2, 0).cpu().numpy()
    out = (out * peak).round().astype(image.dtype) if integer else out.astype(np.float32)
    return out[..., 0] if image.ndim == 2 else out


def set_threads(threads: int | None = None) -> int:
    """Use every core for intra-op parallelism (PyTorch defaults to physical cores; this machine has 2)."""
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n
