"""Zarr and OME-Zarr for scientific images: ``swinir restore in.tif -o out.zarr`` writes the restored image chunk
by chunk as :mod:`swinir.streaming` produces it (memory stays bounded as for a TIFF output), and Zarr arrays are
read lazily as inputs.

Output: a Zarr v3 group with the image at ``0``, in chunks of one plane x 256 x 256 (zarr's default zstd
compression). When the axes are OME-NGFF's (T, C, Z, Y, X), the group is an OME-Zarr image (NGFF 0.5, one
resolution level): the axes in NGFF's order t, c, z, y, x (so a TIFF's ZCYX is written CZYX, which NGFF
requires), with the output's pixel sizes (the source's divided by the scale) as the level's scale transform and
their units. Other axes (RGB samples, a page sequence, unknown ones) give a plain array in the source's order
whose ``dimension_names`` are the axes. The group's ``swinir`` attributes hold the processing note, the axes
and what the TIFF would have carried: the adapted OME-XML, the ImageJ metadata or the description. The folder
is written beside the target and renamed when complete (:func:`swinir.fileio.atomic_folder`).

Input: a Zarr array, or a group holding one (OME-Zarr 0.4/0.5: the first multiscale's first level; else the
array ``0``), as a :class:`~swinir.tiffs.TiffSource`. Axes come from the NGFF metadata or the array's dimension
names (else the last two are Y and X); NGFF pixel sizes in a length unit become resolution tags.
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SwinIRError
from .tiffs import OUTPUT_TILE, SUPPORTED, OutputMeta, TiffSource, interpret_axes

__all__ = ["is_zarr", "open_zarr", "write_zarr"]

NGFF_ORDER = "TCZYX"
_AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
_AXIS_NAMES = {"t": "T", "time": "T", "c": "C", "channel": "C", "z": "Z", "y": "Y", "x": "X", "s": "S",
               "sample": "S", "i": "I", "q": "Q"}
# length units as the OME-XML, ImageJ and NGFF (UDUNITS) spell them -> (NGFF name, micrometres)
_LENGTHS = {"µm": ("micrometer", 1.0), r"\u00B5m": ("micrometer", 1.0), "um": ("micrometer", 1.0),
            "micron": ("micrometer", 1.0), "microns": ("micrometer", 1.0), "micrometer": ("micrometer", 1.0),
            "nm": ("nanometer", 1e-3), "nanometer": ("nanometer", 1e-3), "mm": ("millimeter", 1e3),
            "millimeter": ("millimeter", 1e3), "cm": ("centimeter", 1e4), "centimeter": ("centimeter", 1e4),
            "m": ("meter", 1e6), "meter": ("meter", 1e6)}
_TIFF_UNIT_UM = {2: 25400.0, 3: 10000.0}  # ResolutionUnit INCH, CENTIMETER in micrometres
_METADATA_FILES = ("zarr.json", ".zgroup", ".zarray")  # one of them at the top of a v3 or v2 store


def is_zarr(path: Path) -> bool:
    return path.suffix.lower() == ".zarr"


# ----------------------------------------------------------------------------------------------- writing


def write_zarr(path: str | os.PathLike[str], tiles: Iterator[np.ndarray], meta: OutputMeta) -> None:
    """Write the tiles of :meth:`swinir.streaming` (plane by plane, 256 x 256 row-major, edge tiles smaller) as
    the Zarr group ``path`` (see the module docstring); each tile fills one chunk."""
    import zarr

    axes = meta.axes
    planes = len(axes) - (3 if axes.endswith("S") else 2)
    ngff = set(axes) <= set(NGFF_ORDER)
    order = sorted(range(len(axes)), key=lambda i: NGFF_ORDER.index(axes[i])) if ngff else list(range(len(axes)))
    out_axes = "".join(axes[i] for i in order)
    height, width = meta.shape[planes], meta.shape[planes + 1]
    chunks = (1,) * planes + (min(OUTPUT_TILE, height), min(OUTPUT_TILE, width)) + meta.shape[planes + 2 :]
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    array = group.create_array("0", shape=tuple(meta.shape[i] for i in order), chunks=chunks, dtype=meta.dtype,
                               dimension_names=[a.lower() for a in out_axes], fill_value=0)
    for plane in np.ndindex(*meta.shape[:planes]):
        where = tuple(plane[i] for i in order[:planes])
        for top in range(0, height, OUTPUT_TILE):
            for left in range(0, width, OUTPUT_TILE):
                tile = next(tiles)
                array[(*where, slice(top, top + tile.shape[0]), slice(left, left + tile.shape[1]))] = tile
    attributes: dict[str, Any] = {"swinir": _swinir_attributes(meta)}
    if ngff:
        attributes["ome"] = {"version": "0.5", "multiscales": [_multiscale(out_axes, _pixel_sizes(meta))]}
    group.attrs.update(attributes)


def _multiscale(axes: str, sizes: dict[str, tuple[float, str | None]]) -> dict[str, Any]:
    """NGFF's ``multiscales`` entry of one level: the axes (with units where known) and the scale transform."""
    described = []
    for axis in axes:
        entry = {"name": axis.lower(), "type": _AXIS_TYPES[axis]}
        if axis in sizes and sizes[axis][1]:
            entry["unit"] = sizes[axis][1]
        described.append(entry)
    scale = [sizes[axis][0] if axis in sizes else 1.0 for axis in axes]
    return {"axes": described, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": scale}]}]}


def _pixel_sizes(meta: OutputMeta) -> dict[str, tuple[float, str | None]]:
    """The output's pixel sizes per axis (X, Y and Z) with their NGFF unit, from what the TIFF would carry:
    OME physical sizes, ImageJ resolution, unit and spacing, or resolution tags in inches or centimetres."""
    options = meta.options
    if meta.kind == "ome":
        pixels = ET.fromstring(options["description"]).find("{*}Image/{*}Pixels")
        sizes = {}
        for axis in "XYZ":
            value = pixels.get(f"PhysicalSize{axis}") if pixels is not None else None
            if value is not None:
                unit = _LENGTHS.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))  # type: ignore[union-attr]
                sizes[axis] = (float(value), unit[0] if unit else None)
        return sizes
    resolution = options.get("resolution")
    sizes = {}
    if meta.kind == "imagej":
        unit = _LENGTHS.get(str(options["metadata"].get("unit", "")))
        if resolution is not None:
            for axis, (n, d) in zip("XY", resolution, strict=True):
                sizes[axis] = (d / n, unit[0] if unit else None)
        if "spacing" in options["metadata"]:
            sizes["Z"] = (float(options["metadata"]["spacing"]), unit[0] if unit else None)
        return sizes
    micrometres = _TIFF_UNIT_UM.get(int(options.get("resolutionunit", 1)))
    if resolution is not None and micrometres is not None:
        for axis, (n, d) in zip("XY", resolution, strict=True):
            sizes[axis] = (micrometres * d / n, "micrometer")
    return sizes


def _swinir_attributes(meta: OutputMeta) -> dict[str, Any]:
    """The processing note, the axes, and the source's metadata that only a TIFF has a place for."""
    options = meta.options
    kept: dict[str, Any] = {"note": options.get("software", ""), "axes": meta.axes}
    if meta.kind == "ome":
        kept["ome_xml"] = options["description"]
    elif meta.kind == "imagej":
        kept["imagej"] = {k: v for k, v in options["metadata"].items() if _is_json(v)}
    elif options.get("description"):
        kept["description"] = options["description"]
    return kept


def _is_json(value: Any) -> bool:
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list | tuple) and all(isinstance(v, str | bool | int | float) for v in value)


# ----------------------------------------------------------------------------------------------- reading


class ZarrSource(TiffSource):
    """A Zarr array as a :class:`~swinir.tiffs.TiffSource`: a chunk that fails to decode is named as Zarr's."""

    format_name = "Zarr array"


@contextlib.contextmanager
def open_zarr(path: str | os.PathLike[str]) -> Iterator[TiffSource]:
    """The Zarr array at ``path`` as a :class:`~swinir.tiffs.TiffSource` (see the module docstring)."""
    name = os.fspath(path)
    try:
        source = _source(name)
    except SwinIRError:
        raise
    except Exception as err:  # zarr and its codecs raise many types for a damaged store
        text = " ".join(str(err).split())[:200] or type(err).__name__
        raise SwinIRError(f"{name}: is damaged or not a readable Zarr array ({text}); re-export it") from err
    yield source


def _source(name: str) -> TiffSource:
    import zarr

    if os.path.isdir(name) and not any(os.path.isfile(os.path.join(name, f)) for f in _METADATA_FILES):
        raise SwinIRError(f"{name}: no Zarr metadata in the folder ({', '.join(_METADATA_FILES)}); give the folder "
                          "of a Zarr array or group, or re-export it")
    node = zarr.open(name, mode="r")
    names: list[str] | None = None
    scales: dict[str, tuple[float, str | None]] = {}
    if isinstance(node, zarr.Group):
        attributes = dict(node.attrs)
        ome = attributes.get("ome", attributes)  # NGFF 0.5 nests its metadata under "ome"; 0.4 does not
        multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
        if multiscales:
            names, scales, level = _ngff_level(multiscales[0])
            if level not in node:
                raise SwinIRError(f"{name}: its OME-Zarr image '{level}' is missing (no array metadata in the "
                                  f"folder {level}); re-export it")
            node = node[level]
        elif "0" in node:
            node = node["0"]
        else:
            raise SwinIRError(f"{name}: a Zarr group without an image (no OME-Zarr multiscales, no array 0); "
                              "give the array's own folder")
    if not isinstance(node, zarr.Array):
        raise SwinIRError(f"{name}: the Zarr image is a group, not an array; give the array's own folder")
    dtype = np.dtype(node.dtype).newbyteorder("=")
    if dtype not in SUPPORTED:
        raise SwinIRError(f"{name}: {dtype} samples cannot be restored; convert the image to uint8, uint16 or float32")
    names = names or getattr(node.metadata, "dimension_names", None) or node.attrs.get("_ARRAY_DIMENSIONS")
    axes, shape = interpret_axes(_axes(names, node.ndim, name), tuple(node.shape), name)
    source = ZarrSource(name, axes, shape, dtype, "plain", None, node, int(np.prod(node.chunks)) * dtype.itemsize)
    source.resolution = _resolution(scales)
    return source


def _ngff_level(multiscale: dict[str, Any]) -> tuple[list[str], dict[str, tuple[float, str | None]], str]:
    """(axis names, {axis letter: (pixel size, unit)}, path) of an NGFF multiscale's first (full-size) level."""
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in multiscale.get("axes", [])]
    units = [a.get("unit") if isinstance(a, dict) else None for a in multiscale.get("axes", [])]
    level = multiscale["datasets"][0]
    scale = next((t["scale"] for t in level.get("coordinateTransformations", []) if t.get("type") == "scale"), None)
    sizes = {}
    if scale is not None and len(scale) == len(axes):
        sizes = {_AXIS_NAMES.get(a.lower(), "?"): (float(s), u) for a, s, u in zip(axes, scale, units, strict=True)}
    return axes, sizes, str(level["path"])


def _axes(names: Any, ndim: int, name: str) -> str:
    """Axis letters from dimension names (``z``, ``channel``...); unnamed arrays end in Y, X."""
    if names and len(names) == ndim and all(names):
        return "".join(_AXIS_NAMES.get(str(n).lower(), "Q") for n in names)
    if ndim > 3:
        raise SwinIRError(f"{name}: a {ndim}-dimensional Zarr array without axis names; add OME-Zarr axes or "
                          "dimension_names (e.g. z, c, y, x)")
    return "QYX"[3 - ndim :]


def _resolution(sizes: dict[str, tuple[float, str | None]]) -> tuple[tuple[int, int], tuple[int, int], int] | None:
    """NGFF pixel sizes in a length unit as TIFF resolution tags (pixels per centimetre)."""
    per_cm = []
    for axis in "XY":
        size, unit = sizes.get(axis, (0.0, None))
        length = _LENGTHS.get(unit or "")
        if size <= 0 or length is None:
            return None
        ratio = Fraction(1e4 / (size * length[1])).limit_denominator(1_000_000)
        per_cm.append((ratio.numerator, ratio.denominator))
    return per_cm[0], per_cm[1], 3
