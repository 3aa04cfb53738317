"""DICOM in, derived DICOM out (``pydicom``): grayscale images (CT, MR, X-ray slices), single- or multi-frame.

``swinir restore slice.dcm -o slice_x2.dcm`` goes down the path of scientific TIFFs (:mod:`swinir.streaming`):
:func:`open_dicom` gives a :class:`DicomSource` whose pixels are the *modality* values, ``stored * RescaleSlope
+ RescaleIntercept`` (Hounsfield units for CT) as float32, so levels (:mod:`swinir.levels`: the image's own
minimum..maximum, or ``--normalize percentile``) work on what the numbers mean, signed 16-bit data included.
A multi-frame DICOM (``NumberOfFrames`` > 1, every frame in one Pixel Data: secondary capture, XA, NM, or an
enhanced object) is a stack of frames (axes ``IYX``), each restored on its own as a single frame is, with one
set of levels for the whole stack as for a TIFF stack. The stored integers are kept and turned into modality
values a band of one frame at a time, and the output is assembled frame by frame in the stored type, so no
frame but the current one is ever held as float.

:func:`write_dicom` maps the restored values back through the same slope and intercept to the stored type
(rounded; clipped only to what ``BitsStored`` and ``PixelRepresentation`` can hold, and counted) and writes a
derived instance of the source: a new SOP Instance UID and Series Instance UID (same study), Image Type
``DERIVED\\SECONDARY``, a Derivation Description (the processing note) and a Source Image Sequence pointing at
the original, Rows/Columns and Pixel Spacing (and Imager Pixel Spacing) following the scale, Number of Frames
kept, uncompressed Explicit VR Little Endian pixels; every other element is copied. An enhanced object's
functional groups (shared and per-frame) are read and adapted too: the rescale of their Pixel Value
Transformation, the Pixel Spacing of their Pixel Measures (divided by the scale) and the Frame Type of their
frame type sequences (``DERIVED``). Image Position (Patient), the centre of the first pixel, moves to the
centre of the new, smaller first pixel (at the top level and in each Plane Position), along Image Orientation
(Patient). A DICOM can also be written as TIFF or Zarr (float32 modality values, Pixel
Spacing as resolution tags).

Refused in one line each: colour images, a Modality LUT Sequence (not a linear rescale), frames with different
rescales, pixel data the installed decoders cannot decompress, files that are not DICOM or are damaged (every
element is decoded on opening, so damage anywhere is found before any work), a derived DICOM of a source
without the SOP Class and Instance UIDs it must reference, and a derived DICOM of some of the frames only
(``--pages``: a TIFF or Zarr output takes those).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import itertools
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SwinIRError
from .tiffs import OUTPUT_TILE, OutputMeta, TiffSource

__all__ = ["DicomSource", "is_dicom", "open_dicom", "write_dicom"]

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})


def is_dicom(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES


@dataclass
class DicomSource(TiffSource):
    """A DICOM image (``YX``) or multi-frame stack (``IYX``) as a :class:`~swinir.tiffs.TiffSource` of float32
    modality values, with the dataset it came from (for the derived output; its Pixel Data dropped, the
    pixels being in ``array``), its rescale, and the smallest and largest stored value its ``BitsStored`` and
    ``PixelRepresentation`` allow."""

    dataset: Any = None
    slope: float = 1.0
    intercept: float = 0.0
    stored_range: tuple[int, int] = (0, 0)

    @property
    def frames(self) -> int:
        """How many frames the file holds (1 for a single-frame image)."""
        return len(self.planes())


class ModalityValues:
    """The stored pixels as modality values, computed when indexed (``stored * slope + intercept`` in float64,
    then float32): what :class:`DicomSource` reads rows from, so that a stack stays in its stored integers
    and only the rows asked for are ever float."""

    def __init__(self, stored: np.ndarray, slope: float, intercept: float) -> None:
        self.stored, self.slope, self.intercept = stored, slope, intercept
        self.shape: tuple[int, ...] = stored.shape
        self.ndim = stored.ndim
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key: Any) -> np.ndarray:
        return (self.stored[key].astype(np.float64) * self.slope + self.intercept).astype(np.float32)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[...]
        return values if dtype is None else values.astype(dtype)


@contextlib.contextmanager
def open_dicom(path: str | os.PathLike[str]) -> Iterator[DicomSource]:
    """The grayscale DICOM at ``path`` as a :class:`DicomSource` (see the module docstring).

    Every element is decoded here, so that a damaged file is refused in one line now rather than midway
    through writing its derived copy; pydicom's warnings about odd values are silenced (whether the image can
    be read is what matters)."""
    name = os.fspath(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = _read(name)
        try:
            source = _source(dataset, name)
        except SwinIRError:
            raise
        except Exception as err:  # pydicom raises many types for an element it cannot decode
            raise SwinIRError(f"{name}: is damaged ({_text(err)}); re-export it") from err
    yield source


def _read(name: str) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(name)
    except InvalidDicomError as err:
        raise SwinIRError(f"{name}: not a DICOM file ({_text(err)}); give a .dcm image file") from err
    except Exception as err:  # pydicom raises many types for a damaged or truncated file
        raise SwinIRError(f"{name}: is damaged or truncated ({_text(err)}); re-export it") from err


def _source(dataset: Any, name: str) -> DicomSource:
    meta = getattr(dataset, "file_meta", None)
    for _ in itertools.chain(dataset.iterall(), meta.iterall() if meta is not None else ()):
        pass  # decodes each element: one that cannot be decoded raises here
    _check(dataset, name)
    stored = _pixels(dataset, name)
    del dataset.PixelData  # the pixels live in ``stored`` now: a derived copy of the dataset need not copy them
    slope, intercept = _rescale(dataset, name)
    values = ModalityValues(stored, slope, intercept)
    frame_bytes = 4 * stored.shape[-2] * stored.shape[-1]
    source = DicomSource(name, "IYX" if stored.ndim == 3 else "YX", stored.shape, np.dtype(np.float32), "plain",
                         None, values, frame_bytes, dataset=dataset, slope=slope, intercept=intercept,
                         stored_range=_stored_range(dataset))
    source.resolution = _resolution(dataset)
    return source


def _functional_items(dataset: Any, suffix: str) -> list[Any]:
    """The items of the sequences whose keyword ends in ``suffix`` (PixelMeasuresSequence; FrameTypeSequence for
    CTImageFrameTypeSequence, MRImageFrameTypeSequence...) in an enhanced object's shared functional groups, then
    its per-frame ones: where such an object keeps what a classic image has at the top level."""
    groups = [*list(dataset.get("SharedFunctionalGroupsSequence") or [])[:1],
              *(dataset.get("PerFrameFunctionalGroupsSequence") or [])]
    return [item for group in groups for element in group
            if element.VR == "SQ" and element.keyword.endswith(suffix) for item in element.value]


def _rescale(dataset: Any, name: str) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept: the image's own, else those of the Pixel Value Transformation of an
    enhanced object's functional groups (one for all frames), else 1 and 0."""
    top = "RescaleSlope" in dataset or "RescaleIntercept" in dataset
    holders = [dataset] if top else _functional_items(dataset, "PixelValueTransformationSequence")
    pairs = {(float(h.get("RescaleSlope", 1) or 1), float(h.get("RescaleIntercept", 0) or 0)) for h in holders}
    if len(pairs) > 1:
        raise SwinIRError(f"{name}: its frames have {len(pairs)} different rescales (RescaleSlope/RescaleIntercept "
                          "per frame), which is not supported; export the frames as separate files")
    slope, intercept = pairs.pop() if pairs else (1.0, 0.0)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise SwinIRError(f"{name}: RescaleSlope {slope} or RescaleIntercept {intercept} is not a finite number; "
                          "correct them and re-export it")
    return slope, intercept


def _check(dataset: Any, name: str) -> None:
    """One line for each kind of DICOM this module does not restore."""
    if "PixelData" not in dataset:
        raise SwinIRError(f"{name}: the DICOM holds no image (no Pixel Data); give an image instance")
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if int(dataset.get("SamplesPerPixel", 1)) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise SwinIRError(f"{name}: a colour DICOM ({photometric or 'no PhotometricInterpretation'}); only "
                          "grayscale (MONOCHROME1/2) images are restored")
    allocated = int(dataset.get("BitsAllocated", 0))
    if allocated not in (8, 16):
        raise SwinIRError(f"{name}: {dataset.get('BitsAllocated')}-bit pixel data; only 8- and 16-bit DICOM images "
                          "are restored")
    if not 1 <= int(dataset.get("BitsStored") or allocated) <= allocated:
        raise SwinIRError(f"{name}: BitsStored {dataset.get('BitsStored')} does not fit BitsAllocated {allocated}; "
                          "the file is damaged, re-export it")
    if "ModalityLUTSequence" in dataset:
        raise SwinIRError(f"{name}: its values go through a Modality LUT Sequence, not a linear rescale, which "
                          "is not supported; export it with RescaleSlope/RescaleIntercept")


def _stored_range(dataset: Any) -> tuple[int, int]:
    """The smallest and largest stored value ``BitsStored`` and ``PixelRepresentation`` allow."""
    bits = int(dataset.get("BitsStored") or dataset.BitsAllocated)
    if int(dataset.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _pixels(dataset: Any, name: str) -> np.ndarray:
    """The stored pixel values (signed or not, as Pixel Representation says), decoded by pydicom: rows x
    columns, or frames x rows x columns for a multi-frame image."""
    syntax = getattr(dataset, "file_meta", {}).get("TransferSyntaxUID")
    try:
        stored = dataset.pixel_array
    except Exception as err:
        if syntax is not None and syntax.is_transfer_syntax and syntax.is_compressed:
            raise SwinIRError(f"{name}: compressed with {syntax.name}, which the installed decoders cannot read "
                              f"({_text(err)}); decompress it (e.g. gdcmconv --raw) or install pylibjpeg") from err
        raise SwinIRError(f"{name}: its pixel data cannot be read ({_text(err)}); re-export it") from err
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if stored.shape[: stored.ndim - 2] != ((frames,) if frames > 1 else ()):
        raise SwinIRError(f"{name}: pixel data of shape {stored.shape} for {frames} frame(s) of one sample; only "
                          "grayscale images are restored")
    return stored


SPACINGS = ("PixelSpacing", "ImagerPixelSpacing")  # the in-plane pixel sizes (mm, row then column)


def _spacing_holders(dataset: Any) -> list[Any]:
    """Where a dataset keeps its pixel spacing: the top level, then an enhanced object's Pixel Measures (shared,
    then per frame). Reading (:func:`_resolution`) and scaling (:func:`_derive`) both take this list."""
    return [dataset, *_functional_items(dataset, "PixelMeasuresSequence")]


def _resolution(dataset: Any) -> tuple[tuple[int, int], tuple[int, int], int] | None:
    """The first pixel spacing found as TIFF resolution tags in pixels per centimetre."""
    for holder in _spacing_holders(dataset):
        spacing = holder.get(SPACINGS[0]) or holder.get(SPACINGS[1])
        if spacing and len(spacing) == 2 and min(float(v) for v in spacing) > 0:
            row, column = (Fraction(10 / float(v)).limit_denominator(1_000_000) for v in spacing)
            return (column.numerator, column.denominator), (row.numerator, row.denominator), 3
    return None


def _text(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


# ----------------------------------------------------------------------------------------------- writing


def write_dicom(path: str | os.PathLike[str], tiles: Iterator[np.ndarray], meta: OutputMeta, source: DicomSource,
                scale: int) -> int:
    """Write the restored modality values (tiles as :mod:`swinir.streaming` yields them, frame after frame) as
    a derived DICOM of ``source`` (see the module docstring). Returns how many values were clipped to the
    stored range. Each frame is assembled in float64, stored and appended to the Pixel Data's bytes before
    the next one is read, and pydicom copies those bytes into the file in chunks: the output stack is held
    once, in its stored type."""
    _check_derivable(source, meta)
    pixels, clipped = io.BytesIO(), 0
    for _ in range(source.frames):
        frame, outside = _stored_frame(tiles, meta.shape[-2:], source)
        pixels.write(frame.tobytes())
        clipped += outside
    if pixels.tell() % 2:
        pixels.write(b"\0")  # Pixel Data has an even length
    pixels.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns again about odd values copied from the source
        try:
            derived = _derived(source, frame, pixels, meta.options.get("software", "swinir"), scale)
            derived.save_as(path, enforce_file_format=True)
        except (SwinIRError, OSError):
            raise
        except Exception as err:  # an element of a damaged source that pydicom will not write
            raise SwinIRError(f"{source.name}: its elements cannot be written as a derived DICOM ({_text(err)}); "
                              "write a .tif or .zarr output instead, or repair the file") from err
    return clipped


def _stored_frame(tiles: Iterator[np.ndarray], shape: tuple[int, ...], source: DicomSource) -> tuple[np.ndarray, int]:
    """The next frame's tiles as stored values (rounded through the rescale, clipped to the stored range) and
    how many were clipped."""
    height, width = shape
    values = np.empty((height, width), np.float64)
    for top in range(0, height, OUTPUT_TILE):
        for left in range(0, width, OUTPUT_TILE):
            tile = next(tiles)
            values[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    low, high = source.stored_range
    rounded = np.round((values - source.intercept) / source.slope)
    outside = int(np.count_nonzero((rounded < low) | (rounded > high)))
    return np.clip(rounded, low, high).astype(_stored_dtype(source)), outside


def _check_derivable(source: DicomSource, meta: OutputMeta) -> None:
    """Refuse, before any restoring, a derived DICOM that could not be written faithfully."""
    missing = [key for key in ("SOPClassUID", "SOPInstanceUID") if key not in source.dataset]
    if missing:
        raise SwinIRError(f"{source.name}: no {' or '.join(missing)}, which a derived DICOM must reference; write "
                          "a .tif or .zarr output instead")
    frames = int(np.prod(meta.shape[:-2]))
    if frames != source.frames:
        raise SwinIRError(f"{source.name}: {frames} of its {source.frames} frames chosen, but a derived DICOM keeps "
                          "every frame; drop --pages, or write a .tif or .zarr output")


def _stored_dtype(source: DicomSource) -> np.dtype:
    """The stored type of the source: signed or not, 8 or 16 bits as BitsAllocated says, little-endian."""
    return np.dtype(f"<{'i' if source.stored_range[0] < 0 else 'u'}{int(source.dataset.BitsAllocated) // 8}")


def _derived(source: DicomSource, frame: np.ndarray, pixels: io.BytesIO, note: str, scale: int) -> Any:
    """A copy of the source's dataset holding ``pixels`` (every frame's stored bytes; ``frame`` is one of them,
    from which pydicom sets Rows, Columns and the bits), made a derived instance of it."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    original = source.dataset
    derived = copy.deepcopy(original)
    derived.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # pixels written uncompressed
    derived.set_pixel_data(frame, str(original.PhotometricInterpretation), int(original.BitsStored),
                           generate_instance_uid=False)
    if "NumberOfFrames" in original:  # pydicom drops it for one frame, which an enhanced object must still have
        derived.NumberOfFrames = original.NumberOfFrames
    derived.PixelData = pixels  # a buffer: written to the file chunk by chunk
    _derive(derived, original, note, scale, generate_uid())
    return derived


def _derive(derived: Any, original: Any, note: str, scale: int, uid: str) -> None:
    """The elements that make ``derived`` a new, derived instance of ``original`` (pixels apart)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    derived.SOPInstanceUID = uid
    derived.file_meta.MediaStorageSOPInstanceUID = uid
    derived.SeriesInstanceUID = generate_uid()
    derived.ImageType = _derived_type(original.get("ImageType", []))
    for group in _functional_items(derived, "FrameTypeSequence"):
        if "FrameType" in group:
            group.FrameType = _derived_type(group.FrameType)
    derived.DerivationDescription = note[:1024]
    reference = Dataset()
    reference.ReferencedSOPClassUID = original.SOPClassUID
    reference.ReferencedSOPInstanceUID = original.SOPInstanceUID
    derived.SourceImageSequence = Sequence([reference])
    _shift_first_pixel(derived, original, scale)
    for holder in _spacing_holders(derived):
        for key in SPACINGS:
            if key in holder:
                holder[key].value = [f"{float(v) / scale:.10g}" for v in holder[key].value]
    now = datetime.datetime.now()
    derived.ContentDate, derived.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    for key in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if key in derived:
            del derived[key]


def _shift_first_pixel(derived: Any, original: Any, scale: int) -> None:
    """Move each Image Position (Patient) of ``derived`` to the centre of the new first pixel: it is the centre
    of the first pixel, and the new one, ``scale`` times smaller, shares the old one's top-left corner, so the
    centre moves back by ``(1 - 1/scale) / 2`` of an old pixel along the row and the column directions. Done at
    the top level (a classic image) and in every Plane Position of an enhanced object's functional groups,
    whose orientation and spacing come from the same group, else the shared one; geometry read from
    ``original`` (its spacing not yet scaled). Left as it is where orientation or spacing is missing."""
    if scale == 1:
        return
    position = _shifted(original.get("ImagePositionPatient"), original.get("ImageOrientationPatient"),
                        original.get("PixelSpacing"), scale)
    if position is not None:
        derived.ImagePositionPatient = position
    shared = list(original.get("SharedFunctionalGroupsSequence") or [])[:1]
    groups = zip([*shared, *(original.get("PerFrameFunctionalGroupsSequence") or [])],
                 [*list(derived.get("SharedFunctionalGroupsSequence") or [])[:1],
                  *(derived.get("PerFrameFunctionalGroupsSequence") or [])], strict=True)
    for group, target in groups:
        lookup = [group, *shared]
        position = _shifted(_group_value(lookup[:1], "PlanePositionSequence", "ImagePositionPatient"),
                            _group_value(lookup, "PlaneOrientationSequence", "ImageOrientationPatient"),
                            _group_value(lookup, "PixelMeasuresSequence", "PixelSpacing"), scale)
        if position is not None:
            target.PlanePositionSequence[0].ImagePositionPatient = position


def _group_value(groups: list[Any], sequence: str, keyword: str) -> Any:
    """``keyword`` in the first item of ``sequence`` in the first of ``groups`` that has it, else None."""
    for group in groups:
        items = group.get(sequence)
        if items and keyword in items[0]:
            return items[0][keyword].value
    return None


def _shifted(position: Any, orientation: Any, spacing: Any, scale: int) -> list[str] | None:
    """``position`` moved by ``-(1 - 1/scale) / 2`` of ``spacing[1]`` along the row direction (``orientation``'s
    first three values) and of ``spacing[0]`` along the column direction (its last three), as DICOM decimal
    strings (at most 16 characters); None when a value is missing or not a finite number of the right count."""
    if position is None or orientation is None or spacing is None:
        return None
    values = [np.asarray([float(v) for v in value]) for value in (position, orientation, spacing)]
    if [len(v) for v in values] != [3, 6, 2] or not all(np.isfinite(v).all() for v in values):
        return None
    (position, orientation, spacing), fraction = values, (1 - 1 / scale) / 2
    moved = position - fraction * (orientation[:3] * spacing[1] + orientation[3:] * spacing[0])
    from pydicom.valuerep import format_number_as_ds

    return [format_number_as_ds(float(v)) for v in moved]


def _derived_type(values: Any) -> list[str]:
    """Image Type (or an enhanced frame's Frame Type) of a derived image: ``DERIVED\\SECONDARY``, later values
    kept (``AXIAL``...). A single value is a string to pydicom, not a list of values."""
    kept = [] if isinstance(values, str) else list(values)[2:]
    return ["DERIVED", "SECONDARY", *kept]
