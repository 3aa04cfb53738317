"""Benchmark and training folders: listing their images, reading them as the reference does, pairing LR files.

Evaluation (``swinir eval``) and training (``swinir train``) both read folders of images the way the reference
test script does, so they share these helpers instead of keeping two copies:

- :func:`list_images`: the image files directly inside a folder, sorted by name (as the reference's ``glob``);
- :func:`read_reference`: an 8-bit file decoded by OpenCV with the flags the reference uses, returned RGB. It is
  deliberately distinct from :func:`swinir.images.read_image`, which decodes *user* files (16-bit, alpha, EXIF
  orientation, decompression-bomb limits); benchmark numbers are only comparable when files are decoded exactly
  as the reference decodes them;
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
