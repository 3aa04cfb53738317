"""Scientific TIFF files (OME-TIFF, ImageJ hyperstacks, BigTIFF, tiled or striped, 8/16-bit and float32)
read lazily and written with their metadata, through ``tifffile`` (and ``imagecodecs`` for compression).

:func:`open_tiff` gives a :class:`TiffSource`: the first image series as axes (``ZCYX``, ``TYXS``...), a
shape, a dtype, and rows of any plane read on demand, from a memory map when the pixels are stored
uncompressed in one piece, else through tifffile's Zarr view (only the tiles or strips the rows touch are
decoded). Nothing here decodes a whole image unless asked, so the band streaming of :mod:`swinir.streaming`
keeps its memory bound. :func:`output_metadata` says what the restored file keeps: resolution tags and OME
physical pixel sizes divided by the scale, the rest of the OME-XML or ImageJ metadata and the description
copied, and a processing note (the Software tag, an OME comment annotation, ImageJ's Info).

Files this module leaves to :mod:`swinir.images` (single images with alpha, a palette, bilevel pixels or an
EXIF-style orientation, which Pillow handles) make :func:`open_tiff` return None. Every problem with a file is
one :class:`~swinir.errors.SwinIRError` line: third-party decoders fail with exceptions of many types, so each
read is guarded at this boundary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import tifffile

from .errors import SwinIRError

__all__ = ["OutputMeta", "TiffSource", "open_tiff", "output_metadata", "parse_pages", "write_tiff"]

_T = TypeVar("_T")
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
SUPPORTED = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
OUTPUT_TILE = 256  # side of the output file's tiles
_IMAGEJ_REGENERATED = ("ImageJ", "images", "channels", "slices", "frames", "hyperstack", "axes", "shape")


@dataclass
class TiffSource:
    """The first image series of an open TIFF: axes ending in ``YX`` or ``YXS``, pixels read on demand."""

    name: str
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    kind: str  # "ome", "imagej" or "plain"
    declared_bits: int | None
    array: Any  # np.memmap or a zarr array of ``shape``
    chunk_bytes: int  # the largest piece the file is decoded in (a tile, a strip, or the whole image)
    ome_xml: str | None = None
    imagej: dict[str, Any] | None = None
    description: str | None = None
    resolution: tuple[tuple[int, int], tuple[int, int], int] | None = None  # x, y as rationals; unit
    notes: list[str] = field(default_factory=list)
    format_name: ClassVar[str] = "TIFF"  # what a source whose pixels fail to decode is called in the error

    @property
    def samples(self) -> int:
        """3 for RGB pixels (axis S), else 1."""
        return self.shape[-1] if self.axes.endswith("S") else 1

    @property
    def plane_axes(self) -> str:
        return self.axes[: -3 if self.axes.endswith("S") else -2]

    @property
    def plane_shape(self) -> tuple[int, ...]:
        return self.shape[: len(self.plane_axes)]

    @property
    def height(self) -> int:
        return self.shape[len(self.plane_axes)]

    @property
    def width(self) -> int:
        return self.shape[len(self.plane_axes) + 1]

    def planes(self) -> list[tuple[int, ...]]:
        """The index of every plane (YX or YXS image), in file order."""
        return list(np.ndindex(*self.plane_shape))

    def rows(self, plane: tuple[int, ...], top: int, bottom: int) -> np.ndarray:
        """Rows ``top:bottom`` of one plane, HxW or HxWxS, in native byte order."""
        data = self.guard("reading its pixels", lambda: np.asarray(self.array[(*plane, slice(top, bottom))]))
        return data.astype(data.dtype.newbyteorder("="), copy=False)

    def guard(self, doing: str, step: Callable[[], _T]) -> _T:
        """Run one read, any decoder failure becoming a one-line SwinIRError naming the file."""
        return _guarded(self.name, doing, step, self.format_name)


@contextlib.contextmanager
def open_tiff(path: str | os.PathLike[str]) -> Iterator[TiffSource | None]:
    """The :class:`TiffSource` of ``path`` while the block runs (the file stays open), or None for a single
    image better read by Pillow (see the module docstring)."""
    name = os.fspath(path)
    log = tifffile.logger()
    level = log.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns and logs about odd tags; a failure to read is what matters
        log.setLevel(logging.CRITICAL)
        try:
            tif = _guarded(name, "opening it", lambda: tifffile.TiffFile(path))
            try:
                yield _guarded(name, "reading its structure", lambda: _source(tif, name))
            finally:
                tif.close()
        finally:
            log.setLevel(level)


def _source(tif: tifffile.TiffFile, name: str) -> TiffSource | None:
    if not tif.series or not tif.pages:
        raise SwinIRError(f"{name}: the TIFF holds no image; re-export it")
    series = tif.series[0]
    page = series.keyframe
    single = len(series.pages) == 1
    if single and _pillow_image(page):
        return None
    dtype = np.dtype(series.dtype).newbyteorder("=")
    if dtype not in SUPPORTED:
        raise SwinIRError(f"{name}: {dtype} samples cannot be restored; convert the image to uint8, uint16 or float32")
    _check_codec(page, name)
    axes, shape = interpret_axes(series.axes, series.shape, name)
    array, chunk = _pixels(tif, series, shape)
    source = TiffSource(name, axes, shape, dtype, "ome" if tif.is_ome else "imagej" if tif.is_imagej else "plain",
                        page.bitspersample if page.bitspersample < 8 * dtype.itemsize else None, array, chunk)
    source.ome_xml = tif.ome_metadata if tif.is_ome else None
    source.imagej = dict(tif.imagej_metadata or {}) if tif.is_imagej else None
    source.description = page.description or None
    source.resolution = _resolution(page)
    if len(tif.series) > 1 and tif.is_ome:
        source.notes.append(f"the file holds {len(tif.series)} image series; only the first is restored")
    return source


def _pillow_image(page: Any) -> bool:
    """Whether a single page is the kind :mod:`swinir.images` reads (and Pillow handles better)."""
    palette = page.photometric == tifffile.PHOTOMETRIC.PALETTE
    orientation = page.tags.get("Orientation")
    turned = orientation is not None and orientation.value not in (0, 1)
    return bool(palette or page.extrasamples or page.bitspersample == 1 or turned)


def _check_codec(page: Any, name: str) -> None:
    compression = page.compression
    if compression != 1 and compression not in tifffile.TIFF.DECOMPRESSORS:
        label = getattr(compression, "name", str(compression))
        raise SwinIRError(f"{name}: compressed with {label}, which the installed codecs cannot read; re-save it "
                          "with deflate, LZW or no compression (or update imagecodecs)")


def interpret_axes(axes: str, shape: tuple[int, ...], name: str) -> tuple[str, tuple[int, ...]]:
    """The series' axes with the samples (RGB) last: ``...YX`` or ``...YXS``; anything else is refused."""
    if axes.endswith("SYX") and shape[axes.index("S")] == 3:  # planar RGB: read as interleaved
        return axes[:-3] + "YXS", (*shape[:-3], shape[-2], shape[-1], 3)
    core = axes[:-1] if axes.endswith("S") else axes
    if not core.endswith("YX") or "Y" in core[:-2] or "X" in core[:-2] or "S" in core or min(shape) < 1:
        raise SwinIRError(f"{name}: cannot interpret its axes {axes!r} (shape {shape}): the planes must end in "
                          "Y and X (and S for RGB); re-save it as an ImageJ or OME-TIFF stack")
    if axes.endswith("S") and shape[-1] != 3:
        raise SwinIRError(f"{name}: has {shape[-1]} samples per pixel; only 1 (gray) or 3 (RGB) can be restored, "
                          "re-save the channels as separate planes (axis C)")
    return axes, tuple(shape)


def _pixels(tif: tifffile.TiffFile, series: Any, shape: tuple[int, ...]) -> tuple[Any, int]:
    """A lazily read array of the series (memory map if uncompressed and contiguous, else Zarr), and the size
    of the largest piece one read decodes."""
    page = series.keyframe
    itemsize = np.dtype(series.dtype).itemsize
    if series.dataoffset is not None:  # uncompressed, in one piece
        mapped = tifffile.memmap(tif.filehandle.path, series=0, mode="r")
        if series.axes.endswith("SYX"):
            mapped = np.moveaxis(mapped, -3, -1)
        return mapped, itemsize * shape[-1] * (shape[-2] if series.axes.endswith("S") else 1)
    import zarr

    array = zarr.open(series.aszarr(), mode="r")
    if series.axes.endswith("SYX"):
        array = _PlanarView(array)
    chunk = int(np.prod(page.chunks)) * itemsize
    return array, chunk


class _PlanarView:
    """Planar (separate) RGB read as interleaved: ``view[..., y0:y1]`` -> rows x width x 3."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        *plane, rows = key
        return np.moveaxis(np.asarray(self.array[(*plane, slice(None), rows)]), -3, -1)


def _resolution(page: Any) -> tuple[tuple[int, int], tuple[int, int], int] | None:
    tags = page.tags
    x, y = tags.get("XResolution"), tags.get("YResolution")
    if x is None or y is None:
        return None
    unit = tags.get("ResolutionUnit")
    return tuple(x.value), tuple(y.value), int(unit.value) if unit is not None else 2  # type: ignore[return-value]


def _guarded(name: str, doing: str, step: Callable[[], _T], what: str = "TIFF") -> _T:
    try:
        return step()
    except SwinIRError:
        raise
    except MemoryError as err:
        raise SwinIRError(f"{name}: not enough memory {doing}; lower --max-memory or free memory") from err
    except Exception as err:  # tifffile, zarr and imagecodecs raise many types for a damaged file
        text = " ".join(str(err).split())[:200] or type(err).__name__
        hint = "truncated" if re.search(r"truncat|end of file|EOF|too short|not enough|smaller", text, re.I) else None
        what = "is truncated" if hint else f"is damaged or not a readable {what}"
        raise SwinIRError(f"{name}: {what} ({doing}: {text}); re-export or re-download it") from err


# ----------------------------------------------------------------------------------------------- selection


def parse_pages(text: str | None, count: int) -> list[int] | None:
    """``--pages 0,2,5-7`` -> plane indices (0-based, file order); None selects every plane."""
    if text is None:
        return None
    chosen: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            chosen += range(int(first), int(last or first) + 1)
    except ValueError:
        raise SwinIRError(f"--pages {text}: use page numbers from 0 and ranges, e.g. 0,2,5-7") from None
    bad = [i for i in chosen if not 0 <= i < count]
    if bad or not chosen:
        raise SwinIRError(f"--pages {text}: the file has {count} planes (0-{count - 1})")
    return sorted(set(chosen))


# ----------------------------------------------------------------------------------------------- writing


@dataclass
class OutputMeta:
    """Everything ``tifffile.imwrite`` needs about the output besides its pixels."""

    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    kind: str = "plain"  # the metadata written: "ome" (OME-XML), "imagej" or "plain"


def output_metadata(source: TiffSource, scale: int, software: str, selected: list[int] | None) -> OutputMeta:
    """What the restored file holds: axes (all planes, or the ``selected`` ones as a plain page sequence),
    shape times ``scale`` in Y and X, and the source's metadata adapted (see the module docstring)."""
    n_axes = len(source.plane_axes)
    yx = (source.height * scale, source.width * scale, *((3,) if source.samples == 3 else ()))
    subset = selected is not None and len(selected) < len(source.planes())
    axes = ("I" + source.axes[n_axes:]) if subset else source.axes
    shape = ((len(selected),) if subset else source.plane_shape) + yx  # type: ignore[arg-type]
    options: dict[str, Any] = {"photometric": "rgb" if source.samples == 3 else "minisblack", "software": software}
    if source.resolution is not None:
        (xn, xd), (yn, yd), unit = source.resolution
        options |= {"resolution": ((xn * scale, xd), (yn * scale, yd)), "resolutionunit": unit}
    notes: list[str] = []
    if subset and source.kind != "plain":
        notes.append(f"{len(selected)} of {len(source.planes())} planes chosen: written as a plain page sequence, "
                     f"without the {'OME' if source.kind == 'ome' else 'ImageJ'} metadata")
    kind = "plain"
    if source.kind == "ome" and not subset and source.ome_xml:
        xml = scaled_ome(source.ome_xml, scale, software, source.height * scale, source.width * scale)
        options |= {"description": xml, "metadata": None, "bigtiff": True}
        kind = "ome"
    elif source.kind == "imagej" and not subset:
        kind = "imagej"
        big = int(np.prod(shape)) * source.dtype.itemsize > 2**32 - 2**25  # ImageJ reads classic TIFF only
        options |= {"imagej": True, "metadata": imagej_metadata(source.imagej or {}, axes, software), "bigtiff": big}
    else:
        options |= {"metadata": {"axes": axes}, "bigtiff": True}
        if source.description and not source.description.lstrip().startswith("{"):
            options["description"] = source.description  # a microscope's own text; tifffile's JSON is rewritten
    return OutputMeta(axes, shape, source.dtype, options, notes, kind)


def imagej_metadata(metadata: dict[str, Any], axes: str, note: str) -> dict[str, Any]:
    """ImageJ's metadata for the output: everything kept (unit, spacing, LUTs, ranges, labels...) but what
    tifffile rewrites from the shape, and the processing note appended to Info."""
    kept = {k: v for k, v in metadata.items() if k not in _IMAGEJ_REGENERATED}
    kept["Info"] = (str(kept["Info"]).rstrip("\n") + "\n" if kept.get("Info") else "") + note
    return {"axes": axes, **kept}


def scaled_ome(xml: str, scale: int, note: str, height: int, width: int) -> str:
    """The OME-XML of the output: the first image's SizeX/SizeY set, PhysicalSizeX/Y divided by ``scale``,
    the rest kept, and ``note`` added as a comment annotation."""
    root = ET.fromstring(xml)
    ns = root.tag[1 : root.tag.index("}")] if root.tag.startswith("{") else ""
    ET.register_namespace("", ns)
    q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
    pixels = root.find(f"{q('Image')}/{q('Pixels')}")
    if pixels is None:
        raise SwinIRError("the OME-XML names no Image/Pixels; re-export the OME-TIFF")
    pixels.set("SizeX", str(width))
    pixels.set("SizeY", str(height))
    for key in ("PhysicalSizeX", "PhysicalSizeY"):
        if pixels.get(key) is not None:
            pixels.set(key, repr(float(pixels.get(key)) / scale))  # type: ignore[arg-type]
    annotations = root.find(q("StructuredAnnotations"))
    if annotations is None:
        annotations = ET.Element(q("StructuredAnnotations"))
        after = [i for i, child in enumerate(root) if child.tag in (q("ROI"), q("BinaryOnly"))]
        root.insert(after[0] if after else len(root), annotations)
    comment = ET.SubElement(annotations, q("CommentAnnotation"), {"ID": f"Annotation:swinir:{len(annotations)}"})
    ET.SubElement(comment, q("Value")).text = note
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def write_tiff(path: str | os.PathLike[str], tiles: Iterator[np.ndarray], meta: OutputMeta) -> None:
    """Write a tiled, deflate-compressed TIFF from an iterator of tiles (plane by plane, row-major); tifffile
    pads the edge tiles. The caller makes the write atomic (:func:`swinir.fileio.atomic_path`)."""
    options = {"bigtiff": False, **meta.options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "nonconformant BigTIFF ImageJ" for an ImageJ stack over 4 GB
        tifffile.imwrite(path, tiles, shape=meta.shape, dtype=meta.dtype, tile=(OUTPUT_TILE, OUTPUT_TILE),
                         compression="zlib", **options)


def is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES
