"""TIFF in, TIFF out for science: images larger than memory, stacks, 16-bit and float data, metadata kept.

``swinir restore`` hands every TIFF-to-TIFF job here (:func:`restore_tiff`); other formats, and single TIFF
images with alpha or a palette (:func:`swinir.tiffs.open_tiff` declines them), keep the ordinary path of
:mod:`swinir.pipeline`. The design, in the order a file goes through it:

1. **Planes.** The file's first series is a stack of planes (``ZCYX``, ``TYXS``...): each plane is restored on
   its own, in file order, and written with the same axes (``--pages`` picks some; then they are written as a
   plain page sequence). A gray model takes every channel (axis C, or the three RGB samples) one by one, as a
   batch; a colour model takes RGB planes, and gray planes replicated (as any gray image), and refuses a C axis.
2. **Levels.** Samples go to the model's [0, 1] scale and back through :mod:`swinir.levels` (the type's
   range, or ``--normalize percentile``; integers clipped only where they must be, and the user is told how
   many). Levels that depend on the data (uint16 without declared bits, float, percentiles; one set per
   channel of a C axis) come from a first pass over the selected planes, band by band.
3. **In memory or streamed.** A plane whose in-memory restore (input, output and blending weights in float32)
   fits half the memory budget (``--max-memory``, default half the free RAM) is restored by
   :func:`swinir.engine.restore`, its tiles planned from the rest of the budget. A larger one is streamed:
   the tile grid is the one the engine would use on the whole (reference-padded) plane, and the tiles are run
   one row of tiles at a time, so only the input rows of that tile row and the output rows it still adds to
   are in memory (:func:`stream_rows`). Rows
   below the next tile row's top receive no more tiles, so they are divided by their blending weight
   (:func:`swinir.engine.tile_weight`, the engine's own feather ramps) and written out. Every output pixel
   is therefore the same sum, in the same order, as the in-memory tiled restore with the same tile: the
   result equals it, not merely within a tolerance. The budget sets the band height (the tile side):
   the largest tile whose activations and band buffers both fit.
4. **Writing.** Output rows are cut into 256 x 256 tiles and handed to ``tifffile`` as an iterator, so the
   file is written band by band as well: tiled, deflate-compressed, BigTIFF (ImageJ stacks stay classic TIFF
   below 4 GB, which ImageJ needs), through :func:`swinir.fileio.atomic_path`, so an interrupted or failed run
   (disk full) leaves no output and the same command continues where the batch stopped. A ``.zarr`` output
   takes the same tiles, one chunk each (:mod:`swinir.zarrs`: OME-Zarr where the axes allow), and a ``.zarr``
   input is read like a TIFF, band by band. A grayscale DICOM (a multi-frame one as a stack of frames) comes in
   as its modality values and goes out as a derived DICOM (:mod:`swinir.dicoms`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dicoms import is_dicom, open_dicom, write_dicom
from .engine import (
    MIN_TILE_WINDOWS,
    Blend,
    available_memory,
    count_tiles,
    model_device_dtype,
    plan_restore,
    plan_tiling,
    restore,
    tile_origins,
    tile_weight,
)
from .errors import SwinIRError
from .fileio import atomic_folder, atomic_path
from .images import match_channels
from .levels import DEFAULT_PERCENTILES, Levels, from_unit, full_range, parse_normalize, percentile_range, to_unit
from .pipeline import Progress, RestoreOptions
from .precision import autocast, resolve_precision
from .tiffs import OUTPUT_TILE, TiffSource, is_tiff, open_tiff, output_metadata, parse_pages, write_tiff
from .zarrs import is_zarr, open_zarr, write_zarr

__all__ = ["TiffOptions", "add_tiff_arguments", "restore_tiff", "stream_rows", "tiff_options"]

_SAMPLE_VALUES = 4_000_000  # values per channel kept for percentiles (every k-th of a larger image)
_SCAN_BYTES = 32 << 20  # rows read at a time by the levels pass


@dataclass(frozen=True)
class TiffOptions:
    """The TIFF-only flags: ``--normalize``, ``--pages``, and the model named in the processing note."""

    normalize: str = "full"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    pages: str | None = None
    model_name: str = "a SwinIR model"


def add_tiff_arguments(p: Any) -> None:
    """``swinir restore``'s flags for scientific TIFF files."""
    group = p.add_argument_group("scientific TIFF (TIFF in, TIFF out)")
    group.add_argument("--normalize", default="full",
                       help="how samples map to the model's 0..1: full (default: the type's range; uint16 by its "
                            "declared or used bits, e.g. 12-bit data as 0..4095), percentile (0.1 and 99.9 "
                            "percentiles to 0 and 1, mapped back exactly), or percentile:LOW,HIGH")
    group.add_argument("--pages", default=None,
                       help="planes of a stack to restore, 0-based in file order, e.g. 0,2,5-7 (default: all)")


def tiff_options(args: Any, model_name: str) -> TiffOptions:
    """The :class:`TiffOptions` of parsed flags (``--normalize`` checked here, before any work)."""
    mode, percentiles = parse_normalize(args.normalize)
    return TiffOptions(mode, percentiles, args.pages, model_name)


def restore_tiff(model: Any, src: Path, dst: Path, options: RestoreOptions, tiff: TiffOptions, *,
                 progress: Progress | None = None, notify: Callable[[str], None] = print) -> bool:
    """Restore the TIFF, Zarr or DICOM ``src`` into a TIFF, Zarr or (from DICOM) DICOM ``dst`` (see the module
    docstring); False when this is not such a job, or ``src`` is a single image for the ordinary path (nothing
    done then)."""
    kind_in, kind_out = _format(src), _format(dst)
    if kind_in is None or kind_out is None or (kind_out == "dicom" and kind_in != "dicom"):
        if {kind_in, kind_out} & {"zarr", "dicom"}:  # nothing else reads or writes these
            raise SwinIRError(_refusal(src, dst, kind_in, kind_out))
        return False
    with _READERS[kind_in](src) as source:
        if source is None:
            if kind_out != "tiff":
                raise SwinIRError(f"{src}: has alpha, a palette or an orientation, which {dst.suffix} output does "
                                  "not keep; write a .tif or .png output instead")
            return False
        run = _Run.plan(model, source, options, tiff)
        for line in [*source.notes, *run.meta.notes, *run.notices()]:
            notify(line)
        if kind_out == "zarr":
            with atomic_folder(dst) as tmp:
                write_zarr(tmp, run.tiles(progress), run.meta)
        elif kind_out == "dicom":
            with atomic_path(dst) as tmp:
                clipped = write_dicom(tmp, run.tiles(progress), run.meta, source, int(model.upscale))
            if clipped:
                low, high = source.stored_range
                notify(f"clipped {clipped:,} of {int(np.prod(run.meta.shape)):,} output values to {low}..{high}, "
                       "the stored range of the DICOM's BitsStored")
        else:
            with atomic_path(dst) as tmp:
                write_tiff(tmp, run.tiles(progress), run.meta)
        if run.clipped:
            total = int(np.prod(run.meta.shape))
            ranges = ", ".join(sorted({f"0..{levels.ceiling:g}" for levels in run.levels.values()}))
            notify(f"clipped {run.clipped:,} of {total:,} output values ({100 * run.clipped / total:.3g}%) to "
                   f"{ranges}, the range the {run.meta.dtype} data holds")
    return True


_READERS = {"tiff": open_tiff, "zarr": open_zarr, "dicom": open_dicom}


def _refusal(src: Path, dst: Path, kind_in: str | None, kind_out: str | None) -> str:
    """The one line for a Zarr or DICOM job this module cannot do."""
    if kind_out == "dicom" and kind_in is not None:
        return f"{dst}: a DICOM output is derived from a DICOM input, not from {src.suffix}; write .tif or .zarr"
    if kind_out is None:
        return f"{src}: a {kind_in.upper() if kind_in == 'dicom' else 'Zarr'} input is written as .tif or .zarr" + (
            " (or .dcm)" if kind_in == "dicom" else "") + f", not {dst.suffix or 'a folder'}"
    return f"{src}: {dst.suffix} output is made from TIFF, Zarr or DICOM inputs only; write .png or .tif instead"


def _format(path: Path) -> str | None:
    """Which reader or writer of this module a path takes, by its suffix; None for the ordinary path's."""
    return "tiff" if is_tiff(path) else "zarr" if is_zarr(path) else "dicom" if is_dicom(path) else None


@dataclass
class _Run:
    """One file's plan: planes, channel handling, levels, in memory or streamed, output metadata."""

    model: Any
    source: TiffSource
    options: RestoreOptions
    planes: list[tuple[int, ...]]
    layout: str  # "colour", "per-sample", "gray" or "replicate" (see _layout)
    levels: dict[int, Levels]
    tile: int | None  # the band's tile side when streamed; None: in memory
    overlap: int
    calls: int
    meta: Any
    clipped: int = 0

    @classmethod
    def plan(cls, model: Any, source: TiffSource, options: RestoreOptions, tiff: TiffOptions) -> _Run:
        every = source.planes()
        selected = parse_pages(tiff.pages, len(every))
        planes = every if selected is None else [every[i] for i in selected]
        layout = _layout(model, source)
        levels = _levels(source, planes, tiff)
        scale = int(model.upscale)
        from . import __version__

        note = f"swinir {__version__}: restored with {tiff.model_name}, x{scale}"
        meta = output_metadata(source, scale, note, selected)
        tile, overlap, calls = _tiling(model, source, options, layout)
        return cls(model, source, options, planes, layout, levels, tile, overlap, calls * len(planes), meta)

    def notices(self) -> list[str]:
        usual = ("0..255", "16-bit range 0..65535", "0..1")
        lines = [f"levels {levels.label}" + (f" (channel {c})" if len(self.levels) > 1 else "")
                 for c, levels in self.levels.items() if levels.label not in usual]
        if self.tile is not None:
            lines.append(f"larger than the memory budget: streamed in bands of {self.tile} rows "
                         f"(tile {self.tile}, overlap {self.overlap})")
        return lines

    def tiles(self, progress: Progress | None) -> Iterator[np.ndarray]:
        """Every output tile, plane by plane, row-major: what tifffile writes."""
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, self.calls)

        step(0)
        for plane in self.planes:
            levels = self.levels[_channel(self.source, plane)]
            blocks = self._stream(plane, levels, step) if self.tile is not None else self._whole(plane, levels, step)
            yield from _cut_tiles(self._samples(block, levels) for block in blocks)

    def _unit(self, plane: tuple[int, ...], levels: Levels, top: int, bottom: int) -> np.ndarray:
        """Rows of a plane on the model's scale, as (batch, model channels, rows, width)."""
        rows = to_unit(self.source.rows(plane, top, bottom), levels)
        if self.layout == "colour":
            return rows.transpose(2, 0, 1)[None]
        if self.layout == "per-sample":
            return rows.transpose(2, 0, 1)[:, None]
        if self.layout == "replicate":
            return np.repeat(rows[None, None], 3, axis=1)
        return rows[None, None]

    def _samples(self, unit: np.ndarray, levels: Levels) -> np.ndarray:
        """The model's (batch, channels, rows, width) output back to the file's rows [x samples] and type."""
        if self.layout == "colour":
            rows = unit[0].transpose(1, 2, 0)
        elif self.layout == "per-sample":
            rows = unit[:, 0].transpose(1, 2, 0)
        elif self.layout == "replicate":
            rows, _ = match_channels(np.ascontiguousarray(unit[0].transpose(1, 2, 0)), 1)
        else:
            rows = unit[0, 0]
        values, clipped = from_unit(rows, levels)
        self.clipped += clipped
        return values

    def _whole(self, plane: tuple[int, ...], levels: Levels, step: Callable[[int], None]) -> Iterator[np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(self._unit(plane, levels, 0, self.source.height)))
        out = restore(self.model, x, tile=self.options.tile, tile_overlap=self.options.tile_overlap,
                      precision=self.options.precision, ensemble=self.options.ensemble,
                      max_memory=self.options.max_memory, blend=self.options.blend, clamp=False, progress=step)
        yield out.cpu().numpy()

    def _stream(self, plane: tuple[int, ...], levels: Levels, step: Callable[[int], None]) -> Iterator[np.ndarray]:
        assert self.tile is not None
        yield from stream_rows(self.model, lambda top, bottom: self._unit(plane, levels, top, bottom),
                               self.source.height, self.source.width, self.tile, self.overlap,
                               blend=self.options.blend, precision=self.options.precision, progress=step)


def _layout(model: Any, source: TiffSource) -> str:
    """How a plane meets the model: colour (RGB into a colour model), per-sample (RGB samples one by one
    through a gray model), gray, or replicate (a gray plane into a colour model, back to gray after)."""
    colour_model = int(model.in_chans) == 3
    if colour_model and "C" in source.plane_axes and source.shape[source.plane_axes.index("C")] > 1:
        channels = source.shape[source.plane_axes.index("C")]
        raise SwinIRError(f"{source.name}: has {channels} channels (axis C), which a colour model cannot take one "
                          "by one; use a gray model (e.g. --task denoise or a gray checkpoint)")
    if source.samples == 3:
        return "colour" if colour_model else "per-sample"
    return "replicate" if colour_model else "gray"


def _channel(source: TiffSource, plane: tuple[int, ...]) -> int:
    """The C-axis index of a plane (0 without a C axis): levels are per channel."""
    return plane[source.plane_axes.index("C")] if "C" in source.plane_axes else 0


def _levels(source: TiffSource, planes: list[tuple[int, ...]], tiff: TiffOptions) -> dict[int, Levels]:
    """The levels of every channel (see the module docstring); one pass over the data only when needed."""
    channels = sorted({_channel(source, p) for p in planes})
    needs_data = tiff.normalize == "percentile" or source.dtype == np.float32 or (
        source.dtype == np.uint16 and source.declared_bits is None)
    if not needs_data:
        return {c: full_range(source.dtype, 0, 0, source.declared_bits) for c in channels}
    stats = _scan(source, planes)
    levels = {}
    for c in channels:
        low, high, sample = stats[c]
        full = full_range(source.dtype, low, high, source.declared_bits)
        levels[c] = percentile_range(full, sample, tiff.percentiles) if tiff.normalize == "percentile" else full
    return levels


def _scan(source: TiffSource, planes: list[tuple[int, ...]]) -> dict[int, tuple[float, float, np.ndarray]]:
    """Per channel: the finite minimum and maximum of the selected planes, and every k-th value."""
    width_bytes = source.width * source.samples * source.dtype.itemsize
    band = max(1, min(source.height, _SCAN_BYTES // width_bytes))
    per_channel: dict[int, list[tuple[tuple[int, ...], int]]] = {}
    for plane in planes:
        per_channel.setdefault(_channel(source, plane), []).append(plane)  # type: ignore[arg-type]
    stats = {}
    for channel, members in per_channel.items():
        values = len(members) * source.height * source.width * source.samples
        stride = max(1, -(-values // _SAMPLE_VALUES))
        low, high, kept = np.inf, -np.inf, []
        for plane in members:
            for top in range(0, source.height, band):
                rows = source.rows(plane, top, min(top + band, source.height)).ravel()  # type: ignore[arg-type]
                finite = rows[np.isfinite(rows)] if rows.dtype.kind == "f" else rows
                if finite.size:
                    low, high = min(low, float(finite.min())), max(high, float(finite.max()))
                kept.append(rows[::stride].copy())  # a view would keep the whole band alive
        if not np.isfinite(low):
            raise SwinIRError(f"{source.name}: holds no finite values; nothing to restore")
        stats[channel] = (low, high, np.concatenate(kept))
    return stats


def _tiling(model: Any, source: TiffSource, options: RestoreOptions, layout: str) -> tuple[int | None, int, int]:
    """(band tile, overlap, model calls per plane): tile None when a plane is restored in memory."""
    h, w = source.height, source.width
    scale = int(model.upscale)
    channels = {"colour": 3, "per-sample": 3, "replicate": 3, "gray": 1}[layout]
    budget = options.max_memory or available_memory() // 2
    in_memory = 4 * h * w * (channels + (channels + 1) * scale * scale * 2)
    if in_memory <= budget // 2:  # the image's arrays and the model's activations share the budget
        plan = plan_restore(model, h, w, tile=options.tile, tile_overlap=options.tile_overlap,
                            max_memory=budget - in_memory if options.max_memory else None,
                            precision=options.precision, ensemble=options.ensemble)
        return None, plan.overlap, plan.calls
    if options.ensemble:
        raise SwinIRError(f"{source.name}: is larger than the memory budget and is streamed in bands, which the "
                          "x8 ensemble cannot do; drop --ensemble or raise --max-memory")
    ws = model.window_size
    concrete = resolve_precision(options.precision, model_device_dtype(model)[0])
    tile, overlap = plan_tiling(model, h, w, tile=options.tile, tile_overlap=options.tile_overlap,
                                max_memory=budget // 2, precision=concrete)
    if options.tile is None:
        padded_width = (w // ws + 1) * ws
        per_row = 4 * padded_width * ((channels + 1) * scale * scale + 2 * channels)
        fits = max(ws * MIN_TILE_WINDOWS, (budget // 2) // per_row // ws * ws)
        tile = min(tile or fits, fits)
        overlap = min(overlap, tile - ws)
    assert tile is not None
    return tile, overlap, count_tiles(h, w, ws, tile, overlap)


def stream_rows(model: Any, read: Callable[[int, int], np.ndarray], height: int, width: int, tile: int, overlap: int,
                *, blend: Blend = "feather", precision: str = "fp32",
                progress: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Restore a ``height`` x ``width`` image one row of tiles at a time, yielding finished output rows.

    ``read(top, bottom)`` gives input rows on the model's scale as (batch, channels, rows, width). The tile grid,
    the reference padding (edge rows and columns mirrored) and the blending weights are the engine's, so the
    rows equal :func:`swinir.engine.restore` with the same ``tile`` and ``overlap`` (``clamp=False``).
    """
    ws, s = model.window_size, int(model.upscale)
    hp, wp = (height // ws + 1) * ws, (width // ws + 1) * ws
    tile = min(tile, hp, wp)
    tops, lefts = tile_origins(hp, tile, tile - overlap), tile_origins(wp, tile, tile - overlap)
    rows_index, cols_index = _mirrored(height, hp), _mirrored(width, wp)
    device, dtype = model_device_dtype(model)
    concrete = resolve_precision(precision, device)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    out = weight = None
    base = 0  # the output row that out[..., 0, :] holds
    for n, top in enumerate(tops):
        wanted = rows_index[top : top + tile]
        first = int(wanted.min())
        band = read(first, int(wanted.max()) + 1)[:, :, wanted - first][..., cols_index]
        x = torch.from_numpy(np.ascontiguousarray(band)).to(device=device, dtype=dtype)
        grow = (top + tile) * s - base - (0 if out is None else out.shape[-2])
        if out is None or grow > 0:
            extra_out = torch.zeros(*x.shape[:2], max(grow, 0), wp * s, dtype=acc, device=device)
            extra_weight = torch.zeros(1, 1, max(grow, 0), wp * s, dtype=acc, device=device)
            out = extra_out if out is None else torch.cat([out, extra_out], -2)
            weight = extra_weight if weight is None else torch.cat([weight, extra_weight], -2)
        assert weight is not None
        with torch.no_grad(), autocast(concrete, device):
            for left in lefts:
                patch = model(x[..., left : left + tile]).to(acc)
                wt = tile_weight(tile, overlap, s, (top == 0, top + tile == hp), (left == 0, left + tile == wp),
                                 blend).to(device=device, dtype=acc)
                r, c = top * s - base, left * s
                out[..., r : r + tile * s, c : c + tile * s] += patch * wt
                weight[..., r : r + tile * s, c : c + tile * s] += wt
                if progress is not None:
                    progress(1)
        final = min(tops[n + 1] * s if n + 1 < len(tops) else hp * s, height * s)
        if final > base:
            k = final - base
            yield (out[..., :k, : width * s] / weight[..., :k, : width * s]).float().cpu().numpy()
            out, weight, base = out[..., k:, :], weight[..., k:, :], final


def _mirrored(size: int, padded: int) -> np.ndarray:
    """Source index of every position of the reference padding (:func:`swinir.engine.pad_reference`)."""
    index = np.arange(padded)
    return np.where(index < size, index, 2 * size - 1 - index)


def _cut_tiles(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Rows (any number at a time) -> OUTPUT_TILE-square tiles, row-major (tifffile pads the edge ones)."""
    pending: np.ndarray | None = None
    for block in blocks:
        pending = block if pending is None else np.concatenate([pending, block])
        while len(pending) >= OUTPUT_TILE:
            yield from _row_of_tiles(pending[:OUTPUT_TILE])
            pending = pending[OUTPUT_TILE:]
    if pending is not None and len(pending):
        yield from _row_of_tiles(pending)


def _row_of_tiles(rows: np.ndarray) -> Iterator[np.ndarray]:
    for left in range(0, rows.shape[1], OUTPUT_TILE):
        yield np.ascontiguousarray(rows[:, left : left + OUTPUT_TILE])
