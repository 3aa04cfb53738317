"""Benchmark and training folders: listing their images, reading them as the reference does, pairing LR files.

Evaluation (``swinir eval``) and training (``swinir train``) both read folders of images the way the reference
test script does, so they share these helpers instead of keeping two copies:

- :func:`list_images`: the image files directly inside a folder, sorted by name (as the reference's ``glob``);
- :func:`read_reference`: an 8-bit file decoded by OpenCV with the flags the reference uses, returned RGB. It is
  deliberately distinct from :func:`swinir.images.read_image`, which decodes *user* files (16-bit, alpha, EXIF
  orientation, decompression-bomb limits); benchmark numbers are only comparable when files are decoded exactly
  as the reference decodes them;
- :func:`read_training_image`: a training file: 8-bit ones as :func:`read_reference`, 16-bit and float32 TIFFs
  (microscopy, medical, remote sensing) on the [0, 1] scale through :mod:`swinir.levels`;
- :func:`find_lr_partner`: the pre-made LR file of a ground truth, ``{stem}x{scale}{ext}``;
- :func:`dataset_name`: the dataset a folder belongs to (``Set5/HR`` -> ``Set5``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from .degradations import rgb_to_y_uint8
from .errors import SwinIRError
from .levels import full_range, to_unit
from .tiffs import is_tiff, open_tiff

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")

ReferenceMode = Literal["color", "gray", "unchanged", "y"]
"""How :func:`read_reference` decodes a file: the OpenCV flags of the reference plus the gray JPEG protocol's ``y``.

``color``: HxWx3 RGB (a gray file replicated, alpha dropped: ``IMREAD_COLOR``); ``gray``: HxW (a colour file
converted by ``IMREAD_GRAYSCALE``); ``unchanged``: HxW for 1-channel files, HxWx3 RGB otherwise (alpha dropped);
``y``: as ``unchanged``, then a colour image becomes its rounded BT.601 luma (HxW). ``color``, ``gray`` and ``y``
are the read modes of :attr:`swinir.tasks.Task.read_mode`.
"""

_CV2_FLAGS = {"color": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE, "unchanged": cv2.IMREAD_UNCHANGED,
              "y": cv2.IMREAD_UNCHANGED}
_CONTAINER_FOLDER = re.compile(r"(hr|gt|lq|lr(_\w+)?|x\d+)", re.IGNORECASE)


def list_images(folder: Path, *, label: str = "dataset", hint: str | None = None) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name; a missing or empty folder is an error.

    ``label`` names the folder's role in the error (an option or config key, e.g. ``--hr`` or ``data.train``);
    ``hint`` is appended in parentheses when the folder is missing (e.g. how relative paths are resolved).
    """
    if not folder.is_dir():
        raise SwinIRError(f"{label}: folder {folder} not found" + (f" ({hint})" if hint else ""))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SwinIRError(f"{label}: folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _decode(path: Path, flags: int) -> np.ndarray:
    """OpenCV's decode of ``path`` with ``flags``, as uint8 (BGR order for colour); one-line errors."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise SwinIRError(f"{path}: cannot read the file ({err.strerror})") from err
    img = cv2.imdecode(data, flags)
    if img is None:
        raise SwinIRError(f"{path}: not an image OpenCV can decode; check the file or remove it from the folder")
    if img.dtype != np.uint8:
        raise SwinIRError(f"{path}: {img.dtype} images are not supported here; the benchmarks are 8-bit")
    return img


def read_reference(path: Path, mode: ReferenceMode) -> np.ndarray:
    """Read an 8-bit benchmark file as the reference's OpenCV does: RGB or gray uint8 (:data:`ReferenceMode`)."""
    if mode not in _CV2_FLAGS:
        raise ValueError(f"unknown read mode {mode!r}; use one of {', '.join(_CV2_FLAGS)}")
    img = _decode(path, _CV2_FLAGS[mode])
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB
    if mode == "y" and img.ndim == 3:
        img = rgb_to_y_uint8(img)
    return img


def read_training_image(path: Path, mode: ReferenceMode) -> np.ndarray:
    """A training or validation file for a task read in ``mode``: uint8 for 8-bit files, decoded exactly as
    :func:`read_reference`; float32 on the [0, 1] scale for 16-bit and float32 TIFFs.

    Those are mapped by :func:`swinir.levels.full_range`, the levels ``swinir restore`` gives the same file by
    default (uint16 by its declared or used bits, so 12-bit data is 0..4095; float32 as 0..1, or its own
    minimum..maximum beyond), so that a model trained on a microscope's files sees their brightness at
    inference as it did in training. ``color`` replicates a gray image, ``gray`` takes OpenCV's luma weights.
    A stack of planes, NaN or infinite values and the ``y`` mode (8-bit luma) are refused in one line.
    """
    if is_tiff(path):
        unit = _read_unit_tiff(path)
        if unit is not None:
            if mode == "y":
                raise SwinIRError(f"{path}: is 16-bit or float; the y read mode (8-bit luma) takes 8-bit images")
            if mode == "color" and unit.ndim == 2:
                return np.repeat(unit[..., None], 3, axis=2)
            if mode == "gray" and unit.ndim == 3:
                return cv2.cvtColor(unit, cv2.COLOR_RGB2GRAY)
            return unit
    return read_reference(path, mode)


def _read_unit_tiff(path: Path) -> np.ndarray | None:
    """A 16-bit or float32 single-image TIFF on the [0, 1] scale (HxW or HxWx3); None for 8-bit files and
    the images :func:`swinir.tiffs.open_tiff` leaves to Pillow (alpha, palette), which OpenCV reads."""
    with open_tiff(path) as source:
        if source is None or source.dtype == np.uint8:
            return None
        planes = len(source.planes())
        if planes > 1:
            raise SwinIRError(f"{path}: a stack of {planes} planes ({source.axes}); training reads single images, "
                              "save the planes as separate files")
        values = source.rows((), 0, source.height)
        bits = source.declared_bits
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise SwinIRError(f"{path}: holds NaN or infinite values; replace them before training on it")
    return to_unit(values, full_range(values.dtype, float(values.min()), float(values.max()), bits))


def is_stored_gray(path: Path) -> bool:
    """Whether the file holds a single channel (decoded unchanged), e.g. Set14's ``bridge``."""
    img = _decode(path, cv2.IMREAD_UNCHANGED)
    return img.ndim == 2 or img.shape[2] == 1


def find_lr_partner(lr_folder: Path, hr_path: Path, scale: int, *, plain_stem: bool = False) -> Path | None:
    """The LR file of ``hr_path`` inside ``lr_folder``, or None when there is none.

    The benchmarks name it ``{stem}x{scale}{ext}`` (``baby.png`` -> ``babyx2.png``), with the ground truth's
    extension first, then any image extension. ``plain_stem`` also accepts ``{stem}{ext}`` (training folders of
    LR files named like their HR files), tried after the ``x{scale}`` names.
    """
    stems = (f"{hr_path.stem}x{scale}", hr_path.stem) if plain_stem else (f"{hr_path.stem}x{scale}",)
    for stem in stems:
        for suffix in (hr_path.suffix, *IMAGE_SUFFIXES):
            candidate = lr_folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def dataset_name(folder: Path) -> str:
    """The dataset a folder belongs to: ``Set5`` for ``Set5``, ``Set5/HR`` and ``Set5/LR_bicubic/X2``.

    Folders named like HR, GT, LQ, LR, LR_<kind> or X<scale> are skipped in favour of their parent.
    """
    folder = folder.resolve()
    while _CONTAINER_FOLDER.fullmatch(folder.name) and folder.parent != folder:
        folder = folder.parent
    return folder.name or "dataset"
