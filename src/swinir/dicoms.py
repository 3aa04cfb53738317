"""DICOM in, derived DICOM out (``pydicom``): single-frame grayscale images (CT, MR, X-ray slices).

``swinir restore slice.dcm -o slice_x2.dcm`` goes down the path of scientific TIFFs (:mod:`swinir.streaming`):
:func:`open_dicom` gives a :class:`DicomSource` whose pixels are the *modality* values, ``stored * RescaleSlope
+ RescaleIntercept`` (Hounsfield units for CT) as float32, so levels (:mod:`swinir.levels`: the image's own
minimum..maximum, or ``--normalize percentile``) work on what the numbers mean, signed 16-bit data included.
:func:`write_dicom` maps the restored values back through the same slope and intercept to the stored type
(rounded; clipped only to what ``BitsStored`` and ``PixelRepresentation`` can hold, and counted) and writes a
derived instance of the source: a new SOP Instance UID and Series Instance UID (same study), Image Type
``DERIVED\\SECONDARY``, a Derivation Description (the processing note) and a Source Image Sequence pointing at
the original, Rows/Columns and Pixel Spacing (and Imager Pixel Spacing) following the scale, uncompressed
Explicit VR Little Endian pixels; every other element is copied. A DICOM can also be written as TIFF or Zarr
(float32 modality values, Pixel Spacing as resolution tags).

Refused in one line each: multi-frame and colour images, a Modality LUT Sequence (not a linear rescale), pixel
data the installed decoders cannot decompress, files that are not DICOM or are damaged (every element is decoded
on opening, so damage anywhere is found before any work), and a derived DICOM of a source without the SOP
Class and Instance UIDs it must reference.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
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
    """A DICOM image as a :class:`~swinir.tiffs.TiffSource` of float32 modality values, with the dataset it
    came from (for the derived output), its rescale, and the smallest and largest stored value its
    ``BitsStored`` and ``PixelRepresentation`` allow."""

    dataset: Any = None
    slope: float = 1.0
    intercept: float = 0.0
    stored_range: tuple[int, int] = (0, 0)


@contextlib.contextmanager
def open_dicom(path: str | os.PathLike[str]) -> Iterator[DicomSource]:
    """The single-frame grayscale DICOM at ``path`` as a :class:`DicomSource` (see the module docstring).

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
    slope, intercept = float(dataset.get("RescaleSlope", 1) or 1), float(dataset.get("RescaleIntercept", 0) or 0)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise SwinIRError(f"{name}: RescaleSlope {slope} or RescaleIntercept {intercept} is not a finite number; "
                          "correct them and re-export it")
    values = (stored.astype(np.float64) * slope + intercept).astype(np.float32)
    source = DicomSource(name, "YX", values.shape, np.dtype(np.float32), "plain", None, values, values.nbytes,
                         dataset=dataset, slope=slope, intercept=intercept, stored_range=_stored_range(dataset))
    source.resolution = _resolution(dataset)
    return source


def _check(dataset: Any, name: str) -> None:
    """One line for each kind of DICOM this module does not restore."""
    if "PixelData" not in dataset:
        raise SwinIRError(f"{name}: the DICOM holds no image (no Pixel Data); give an image instance")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise SwinIRError(f"{name}: a multi-frame DICOM ({frames} frames); only single-frame images are restored, "
                          "export the frames as separate files")
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
    """The stored pixel values (signed or not, as Pixel Representation says), decoded by pydicom."""
    syntax = getattr(dataset, "file_meta", {}).get("TransferSyntaxUID")
    try:
        stored = dataset.pixel_array
    except Exception as err:
        if syntax is not None and syntax.is_transfer_syntax and syntax.is_compressed:
            raise SwinIRError(f"{name}: compressed with {syntax.name}, which the installed decoders cannot read "
                              f"({_text(err)}); decompress it (e.g. gdcmconv --raw) or install pylibjpeg") from err
        raise SwinIRError(f"{name}: its pixel data cannot be read ({_text(err)}); re-export it") from err
    if stored.ndim != 2:
        raise SwinIRError(f"{name}: pixel data of shape {stored.shape}; only single-frame grayscale is restored")
    return stored


def _resolution(dataset: Any) -> tuple[tuple[int, int], tuple[int, int], int] | None:
    """Pixel Spacing (mm, row then column) as TIFF resolution tags in pixels per centimetre."""
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
    if not spacing or len(spacing) != 2 or min(float(v) for v in spacing) <= 0:
        return None
    row, column = (Fraction(10 / float(v)).limit_denominator(1_000_000) for v in spacing)
    return (column.numerator, column.denominator), (row.numerator, row.denominator), 3


def _text(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


# ----------------------------------------------------------------------------------------------- writing


def write_dicom(path: str | os.PathLike[str], tiles: Iterator[np.ndarray], meta: OutputMeta, source: DicomSource,
                scale: int) -> int:
    """Write the restored modality values (tiles as :mod:`swinir.streaming` yields them) as a derived DICOM of
    ``source`` (see the module docstring). Returns how many values were clipped to the stored range."""
    height, width = meta.shape
    values = np.empty((height, width), np.float64)
    for top in range(0, height, OUTPUT_TILE):
        for left in range(0, width, OUTPUT_TILE):
            tile = next(tiles)
            values[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    low, high = source.stored_range
    stored = np.round((values - source.intercept) / source.slope)
    clipped = int(np.count_nonzero((stored < low) | (stored > high)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns again about odd values copied from the source
        try:
            derived = _derived(source, np.clip(stored, low, high), meta.options.get("software", "swinir"), scale)
            derived.save_as(path, enforce_file_format=True)
        except (SwinIRError, OSError):
            raise
        except Exception as err:  # an element of a damaged source that pydicom will not write
            raise SwinIRError(f"{source.name}: its elements cannot be written as a derived DICOM ({_text(err)}); "
                              "write a .tif or .zarr output instead, or repair the file") from err
    return clipped


def _derived(source: DicomSource, stored: np.ndarray, note: str, scale: int) -> Any:
    """A copy of the source's dataset holding the ``stored`` pixels, made a derived instance of it."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    original = source.dataset
    missing = [key for key in ("SOPClassUID", "SOPInstanceUID") if key not in original]
    if missing:
        raise SwinIRError(f"{source.name}: no {' or '.join(missing)}, which a derived DICOM must reference; write "
                          "a .tif or .zarr output instead")
    dtype = np.dtype(f"{'i' if source.stored_range[0] < 0 else 'u'}{int(original.BitsAllocated) // 8}")
    derived = copy.deepcopy(original)
    derived.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # pixels written uncompressed
    derived.set_pixel_data(stored.astype(dtype), str(original.PhotometricInterpretation),
                           int(original.BitsStored), generate_instance_uid=False)
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
    image_type = list(original.get("ImageType", []))
    derived.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    derived.DerivationDescription = note[:1024]
    reference = Dataset()
    reference.ReferencedSOPClassUID = original.SOPClassUID
    reference.ReferencedSOPInstanceUID = original.SOPInstanceUID
    derived.SourceImageSequence = Sequence([reference])
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if key in original:
            derived[key].value = [f"{float(v) / scale:.10g}" for v in original[key].value]
    now = datetime.datetime.now()
    derived.ContentDate, derived.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    for key in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if key in derived:
            del derived[key]
