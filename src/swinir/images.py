"""Reading and writing image files for the CLI and the web service.

Users hand us arbitrary files, so this layer turns every file into one predictable shape, :class:`Image`
(``uint8`` or ``uint16`` pixels, gray or RGB, alpha kept apart), and turns every problem into a one-line
:class:`~swinir.errors.SwinIRError` naming the file, the problem and the fix.

Decoding is Pillow's job: it honours EXIF orientation, expands palettes, detects truncated files and reads
the image size from the header before decoding pixels. Pillow decodes 16-bit RGB(A) PNG and TIFF to 8 bits,
so for exactly those files OpenCV decodes the pixels, and Pillow's 8-bit result serves as the reference for
orientation and channel order (see :func:`_decode_16bit_colour`).

Decisions, so that callers can rely on them:

* Animations and multi-page files (GIF, APNG, WebP, TIFF with several frames or pages) are refused: no frame
  is "the" image, and restoring only the first one would silently drop the rest. MPO files (phone cameras'
  JPEGs with a second view or preview) are the exception: by definition their first frame is the photo.
* Palette images become RGB, or RGBA when they have transparency; if every colour used is gray they become
  gray (a palette is a storage detail, not a colour choice). A true RGB file stays RGB even when its three
  channels are equal: changing the channel count is :func:`match_channels`' job, which tells the user.
* ``DEFAULT_MAX_PIXELS`` is 178,956,970, the size at which Pillow itself refuses a file as a possible
  decompression bomb (2 x ``PIL.Image.MAX_IMAGE_PIXELS``): about 13,000 x 13,000 pixels, or 1 GiB as
  16-bit RGB. A larger ``max_pixels`` cannot get past Pillow's own guard, which this module leaves alone.
* Writing JPEG refuses 16-bit pixels and alpha, and writing BMP or WebP refuses 16-bit pixels (and BMP
  alpha): those formats cannot hold them, and this layer has no way to tell the user what it dropped.
  16-bit gray with alpha has no writer that keeps it two-channel, so PNG and TIFF store it as 16-bit RGBA.

Nothing here changes Pillow's global settings. Truncation detection relies on
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` keeping its default, False.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from .errors import SwinIRError
from .fileio import write_bytes_atomic

__all__ = ["DEFAULT_MAX_PIXELS", "Image", "decode_image", "encode_png", "match_channels", "read_image",
           "write_image"]

_T = TypeVar("_T")

DEFAULT_MAX_PIXELS: int = 178_956_970
"""Largest width x height accepted by default: Pillow's own hard decompression-bomb limit."""

# Pillow reports damaged files through many exception types, depending on the format and where decoding stops.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error, zlib.error)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIGNATURES = {_PNG_SIGNATURE: "PNG", b"\xff\xd8\xff": "JPEG", b"GIF87a": "GIF", b"GIF89a": "GIF",
               b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"BM": "BMP"}
_EXIF_ORIENTATION = 0x0112
_TIFF_BITS_PER_SAMPLE = 258
_TIFF_PHOTOMETRIC = 262

# Pillow modes holding 16-bit (or, for "I", 32-bit integer) gray pixels.
_GRAY_16BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Modes Pillow converts to RGB faithfully enough for restoration.
_CONVERTIBLE_TO_RGB = frozenset({"CMYK", "YCbCr", "RGBX"})
_UNSUPPORTED_MODE_NAMES = {"F": "32-bit floating point", "LAB": "CIE L*a*b*", "HSV": "HSV colour"}
# Formats whose extra frames are secondary views or previews of the first, so reading the first is right.
_FIRST_FRAME_FORMATS = frozenset({"MPO"})

_FORMAT_BY_EXTENSION = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".jpg": "JPEG",
                        ".jpeg": "JPEG", ".webp": "WEBP"}
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "PNG": {},
    "TIFF": {"compression": "tiff_lzw"},
    "BMP": {},
    # 4:4:4 (no chroma subsampling), so the colour detail a restoration recovered is not averaged away again.
    "JPEG": {"quality": 95, "subsampling": 0},
    # Lossless, and "exact" keeps the colour under fully transparent pixels, so a write/read round trip is exact.
    "WEBP": {"lossless": True, "exact": True},
}
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})


@dataclass(frozen=True)
class Image:
    """A decoded image in the one layout the rest of the package works with.

    ``pixels`` is HxW (gray) or HxWx3 (RGB), ``uint8`` or ``uint16``, C-contiguous, oriented as the viewer
    shows it (EXIF orientation already applied); it never holds alpha, which is ``alpha`` (HxW, same dtype)
    or None, so models see only colour. ``source_mode`` records what the file held (a Pillow mode such as
    "P", "RGBA", "I;16", or "RGB;16" / "RGBA;16" / "LA;16" for the 16-bit colour files decoded by OpenCV),
    for messages and for choosing how to write the result.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    source_mode: str

    def __post_init__(self) -> None:
        _validate_pixels(self.pixels, self.alpha)
        if self.bit_depth != 8 * self.pixels.dtype.itemsize:
            raise ValueError(f"bit_depth {self.bit_depth} does not match pixel dtype {self.pixels.dtype}")

    @property
    def channels(self) -> int:
        """1 for gray, 3 for RGB (alpha is not counted: it is not fed to models)."""
        return 1 if self.pixels.ndim == 2 else 3

    @property
    def size(self) -> tuple[int, int]:
        """(height, width), in numpy order."""
        return self.pixels.shape[0], self.pixels.shape[1]


# ----------------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Read an image file into an :class:`Image`; any problem with the file is a one-line SwinIRError.

    The whole file is read into memory first: OpenCV (for 16-bit colour) decodes from bytes, and the same
    path then serves uploads (:func:`decode_image`). ``max_pixels`` bounds width x height, checked from the
    header before any pixel is decoded.
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError as err:
        raise SwinIRError(f"{name}: file not found; check the path (relative to {os.getcwd()})") from err
    except IsADirectoryError as err:
        raise SwinIRError(f"{name}: is a folder, not an image file; give the path of an image file") from err
    except PermissionError as err:
        if os.path.isdir(path):  # Windows reports a folder as "permission denied"
            raise SwinIRError(f"{name}: is a folder, not an image file; give the path of an image file") from err
        raise SwinIRError(f"{name}: permission denied; make the file readable (e.g. chmod a+r)") from err
    except OSError as err:
        raise SwinIRError(f"{name}: cannot read the file ({_reason(err)}); check the path and the disk") from err
    return decode_image(data, name=name, max_pixels=max_pixels)


def decode_image(data: bytes, *, name: str = "<upload>", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Decode an image from bytes (web uploads; :func:`read_image` ends here too). ``name`` labels errors."""
    data = bytes(data)  # accepts bytearray / memoryview too; a no-op for bytes
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if len(data) == 0:
        raise SwinIRError(f"{name}: the file is empty (0 bytes); re-export or re-download it")

    png = _png_header(data)
    if png is not None:  # a PNG bomb gets its exact dimensions in the message, before Pillow's guard fires
        _check_pixel_count(name, png.width, png.height, max_pixels)

    # Pillow warns between its soft and hard limits; this module has already decided with max_pixels.
    # (catch_warnings swaps the process-wide filters; at worst a concurrent thread misses that warning.)
    with warnings.catch_warnings(action="ignore", category=PILImage.DecompressionBombWarning):
        source = _open(data, name)
        with source:
            _check_pixel_count(name, *source.size, max_pixels)
            _check_single_frame(source, name)
            # Read before load(): Pillow applies and deletes a TIFF's orientation tag while loading it.
            orientation = _guarded(name, lambda: _orientation(source))
            _guarded(name, source.load)  # decodes everything, so a truncated file fails here
            oriented = _guarded(name, lambda: ImageOps.exif_transpose(source))
            depth, gray = _declared_depth_and_gray(source, png)
            if depth == 16 and oriented.mode not in _GRAY_16BIT_MODES:
                return _decode_16bit_colour(data, name, oriented, orientation, gray)
            pixels, alpha = _arrays_from_pil(oriented, name)
            return Image(pixels, alpha, 8 * pixels.dtype.itemsize, source.mode)


class _PngHeader(NamedTuple):
    width: int
    height: int
    bit_depth: int
    colour_type: int  # 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA


def _png_header(data: bytes) -> _PngHeader | None:
    """The IHDR fields of a PNG, or None if ``data`` does not start like one. Reads 26 bytes, nothing else."""
    if len(data) < 26 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return _PngHeader(*struct.unpack(">IIBB", data[16:26]))


def _check_pixel_count(name: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse absurd dimensions from the header alone, before a pixel buffer is allocated."""
    pixels = width * height
    if pixels == 0:
        raise SwinIRError(f"{name}: the image has no pixels ({width}x{height}); re-export or re-download it")
    if pixels > max_pixels:
        raise SwinIRError(
            f"{name}: the image is {width}x{height} = {pixels:,} pixels, more than the limit of {max_pixels:,} "
            "(it may be a decompression bomb); downscale or crop it, or raise max_pixels"
        )


def _open(data: bytes, name: str) -> PILImage.Image:
    """``PIL.Image.open``, which reads only the header, with its failures turned into SwinIRErrors."""
    try:
        return PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError as err:
        claimed = _format_from_signature(data)
        if claimed is not None:
            raise SwinIRError(
                f"{name}: the file is damaged (it starts like a {claimed} file, but Pillow cannot parse its "
                "header); re-export or re-download it"
            ) from err
        raise SwinIRError(
            f"{name}: not an image format Pillow can read (file starts with {data[:8]!r}); "
            "convert it to PNG or JPEG"
        ) from err
    except (PILImage.DecompressionBombError, *_DECODE_ERRORS) as err:
        raise _decode_failure(name, err) from err


def _format_from_signature(data: bytes) -> str | None:
    """The common format whose magic bytes ``data`` starts with, to tell "damaged" apart from "not an image"."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for signature, image_format in _SIGNATURES.items():
        if data.startswith(signature):
            return image_format
    return None


def _guarded(name: str, step: Callable[[], _T]) -> _T:
    """Run one Pillow decoding step, turning its damaged-file exceptions into SwinIRErrors."""
    try:
        return step()
    except (PILImage.DecompressionBombError, *_DECODE_ERRORS) as err:
        raise _decode_failure(name, err) from err


def _decode_failure(name: str, err: Exception) -> SwinIRError:
    """The error for a file that Pillow identified but refused or could not decode."""
    if isinstance(err, PILImage.DecompressionBombError):
        # Only reached when max_pixels is above Pillow's own hard limit, which this module does not change.
        return SwinIRError(
            f"{name}: refused by Pillow's decompression-bomb guard ({_one_line(err)}); downscale or crop it"
        )
    if isinstance(err, EOFError) or "truncated" in str(err).lower():
        return SwinIRError(f"{name}: the file is truncated (decoding stopped early); re-export or re-download it")
    return SwinIRError(f"{name}: the file is damaged ({_one_line(err)}); re-export or re-download it")


def _check_single_frame(image: PILImage.Image, name: str) -> None:
    """Refuse animations and multi-page files (see the module docstring for why); MPO reads its first frame."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format not in _FIRST_FRAME_FORMATS:
        raise SwinIRError(
            f"{name}: is a {image.format} with {frames} frames or pages, and only single images can be "
            "restored; save the frame you want as its own PNG"
        )


def _orientation(image: PILImage.Image) -> int:
    """The EXIF orientation (1..8; 1 = as stored), also when Pillow found it in XMP metadata."""
    value = image.getexif().get(_EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _declared_depth_and_gray(image: PILImage.Image, png: _PngHeader | None) -> tuple[int, bool]:
    """Bits per sample the file declares, and whether its colour model is gray.

    Needed because Pillow's mode does not say so: it opens 16-bit RGB(A) and gray+alpha files in 8-bit modes.
    """
    if png is not None:
        return png.bit_depth, png.colour_type in (0, 4)
    if image.format == "TIFF":
        tags = image.tag_v2  # type: ignore[attr-defined]  # TiffImageFile only
        bits = tags.get(_TIFF_BITS_PER_SAMPLE, 8)
        depth = max(bits) if isinstance(bits, tuple) else int(bits)
        return depth, tags.get(_TIFF_PHOTOMETRIC) in (0, 1)
    return 8, False


def _arrays_from_pil(image: PILImage.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels and alpha from a loaded, oriented Pillow image whose samples are 8-bit or 16-bit gray."""
    mode = image.mode
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        colour, alpha = _split_alpha(np.array(image.convert("RGBA" if transparent else "RGB")))
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 1], colour[..., 2]):
            colour = np.ascontiguousarray(colour[..., 0])  # a gray palette: the image is gray
        return colour, alpha
    if mode == "1":
        image = image.convert("L")  # 0 / 255
    elif mode in _CONVERTIBLE_TO_RGB:
        image = image.convert("RGB")
    elif mode == "RGBa":  # premultiplied alpha
        image = image.convert("RGBA")

    if image.mode in ("L", "LA", "RGB", "RGBA"):
        pixels, alpha = _split_alpha(np.array(image))
    elif image.mode == "I":  # 32-bit integers; older Pillow opens 16-bit gray PNGs this way
        values = np.array(image)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise SwinIRError(
                f"{name}: 32-bit integer pixels range from {low} to {high}, beyond 16 bits (0..65535); "
                "convert it to a 16-bit PNG or TIFF"
            )
        pixels, alpha = values.astype(np.uint16), None
    elif image.mode in _GRAY_16BIT_MODES:
        pixels, alpha = np.array(image).astype(np.uint16), None  # astype also makes I;16B native-endian
    else:
        description = _UNSUPPORTED_MODE_NAMES.get(image.mode, "not an 8- or 16-bit gray or colour mode")
        raise SwinIRError(
            f"{name}: Pillow mode '{image.mode}' ({description}) cannot be restored; "
            "convert it to an 8- or 16-bit RGB or grayscale PNG"
        )

    key = image.info.get("transparency")
    if alpha is None and key is not None and image.mode in ("L", "RGB", *_GRAY_16BIT_MODES):
        alpha = _alpha_from_colour_key(pixels, key)
    return np.ascontiguousarray(pixels), alpha


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split HxWx2 (gray+alpha) or HxWx4 (RGBA) into colour and alpha; HxW and HxWx3 have no alpha."""
    if array.ndim == 3 and array.shape[2] in (2, 4):
        colour = array[..., 0] if array.shape[2] == 2 else array[..., :3]
        return np.ascontiguousarray(colour), np.ascontiguousarray(array[..., -1])
    return np.ascontiguousarray(array), None


def _alpha_from_colour_key(pixels: np.ndarray, key: object) -> np.ndarray | None:
    """Alpha for a PNG/GIF transparency key: 0 where a pixel equals the key colour, opaque elsewhere."""
    key_value = np.asarray(key)
    if key_value.shape != pixels.shape[2:]:  # an int for gray, an (r, g, b) tuple for RGB
        return None
    hit = pixels == key_value if pixels.ndim == 2 else np.all(pixels == key_value, axis=2)
    opaque = np.iinfo(pixels.dtype).max
    return np.where(hit, 0, opaque).astype(pixels.dtype)


def _decode_16bit_colour(
    data: bytes, name: str, reference: PILImage.Image, orientation: int, gray: bool
) -> Image:
    """Decode a 16-bit RGB(A) or gray+alpha PNG/TIFF with OpenCV, oriented like Pillow's 8-bit ``reference``.

    Whether OpenCV applies the orientation itself differs by format and version (it rotates TIFFs but not
    PNGs), so both "as decoded" and "with the orientation applied" are tried, and the one whose high bytes
    match Pillow's 8-bit decode is kept. That comparison also proves the channel order is right.
    """
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3 or decoded.shape[2] not in (3, 4):
        got = "nothing" if decoded is None else f"{decoded.dtype} {decoded.shape}"
        raise SwinIRError(
            f"{name}: OpenCV could not decode this 16-bit image (got {got}); re-save it as a 16-bit PNG"
        )
    rgb = decoded[..., [2, 1, 0, 3][: decoded.shape[2]]]  # OpenCV's BGR(A) -> RGB(A)
    expected = np.asarray(reference.convert("RGBA" if rgb.shape[2] == 4 else "RGB")).astype(np.int16)
    for candidate in (rgb, _apply_orientation(rgb, orientation)):
        if candidate.shape == expected.shape and np.abs((candidate >> 8) - expected).max() <= 1:
            break
    else:
        raise SwinIRError(
            f"{name}: OpenCV and Pillow decode this 16-bit image differently; re-save it as a 16-bit PNG"
        )
    colour, alpha = _split_alpha(candidate)
    if gray:  # the file is gray+alpha; OpenCV expanded it to three equal channels
        colour = np.ascontiguousarray(colour[..., 0])
    mode = ("LA" if gray else "RGBA" if alpha is not None else "RGB") + ";16"
    return Image(colour, alpha, 16, mode)


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Transform stored pixels (HxW or HxWxC) into display orientation, per the EXIF Orientation value."""
    transforms: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # rotated 180
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # needs 90 degrees clockwise
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transversed
        8: lambda a: np.rot90(a, 1),  # needs 90 degrees counter-clockwise
    }
    transform = transforms.get(orientation)
    return array if transform is None else np.ascontiguousarray(transform(array))


# ----------------------------------------------------------------------------------------------- writing


def write_image(path: str | os.PathLike[str], pixels: np.ndarray, *, alpha: np.ndarray | None = None) -> None:
    """Write pixels (and optional alpha) to ``path``, in the format its extension names, atomically.

    The file is encoded in memory, written to a hidden temporary file in the same folder, flushed and
    fsynced, then renamed over ``path``: a crash or error never leaves a half-written image, and an existing
    file at ``path`` stays untouched unless the new one is complete. Missing parent folders are created.
    Formats: .png and .tif/.tiff (8 or 16 bit, alpha), .webp (8 bit, lossless, alpha; gray is stored as
    RGB, WebP has no gray), .bmp (8 bit), and .jpg/.jpeg (8 bit, quality 95). What a format cannot hold is
    refused with a SwinIRError rather than dropped.
    """
    target = Path(path)
    name = os.fspath(path)
    extension = target.suffix.lower()
    image_format = _FORMAT_BY_EXTENSION.get(extension)
    if image_format is None:
        choices = ", ".join(_FORMAT_BY_EXTENSION)
        given = f"'{extension}'" if extension else "none"
        raise SwinIRError(f"{name}: unknown image extension ({given}); use one of {choices}")
    if target.is_dir():
        raise SwinIRError(f"{name}: is a folder; give a file name such as {target / ('restored' + extension)}")
    write_bytes_atomic(target, _encode(pixels, alpha, image_format, name))


def encode_png(pixels: np.ndarray, *, alpha: np.ndarray | None = None) -> bytes:
    """PNG file bytes for pixels (and optional alpha), 8 or 16 bit: what the web service sends back."""
    return _encode(pixels, alpha, "PNG", "<png>")


def _encode(pixels: np.ndarray, alpha: np.ndarray | None, image_format: str, name: str) -> bytes:
    """Encode to ``image_format``, refusing what the format cannot hold rather than dropping it."""
    _validate_pixels(pixels, alpha)
    sixteen_bit = pixels.dtype == np.uint16
    if sixteen_bit and image_format not in _SIXTEEN_BIT_FORMATS:
        raise SwinIRError(
            f"{name}: {image_format} holds 8 bits per channel but the image is 16-bit; "
            "write .png or .tif to keep all 16 bits"
        )
    if alpha is not None and image_format not in _ALPHA_FORMATS:
        raise SwinIRError(
            f"{name}: {image_format} cannot store the image's transparency (alpha); write .png, .webp or .tif"
        )
    if sixteen_bit and (pixels.ndim == 3 or alpha is not None):
        return _encode_16bit_colour(pixels, alpha, image_format, name)

    if alpha is not None:
        stacked = np.dstack([pixels, alpha])  # HxWx2 -> Pillow "LA", HxWx4 -> "RGBA"
        picture = PILImage.fromarray(np.ascontiguousarray(stacked))
    else:
        picture = PILImage.fromarray(np.ascontiguousarray(pixels))  # L, RGB, or I;16 for uint16 gray
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, **_SAVE_OPTIONS[image_format])
    return buffer.getvalue()


def _encode_16bit_colour(pixels: np.ndarray, alpha: np.ndarray | None, image_format: str, name: str) -> bytes:
    """16-bit RGB(A) PNG/TIFF through OpenCV, since Pillow cannot write them; gray+alpha is stored as RGBA."""
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    layers = [rgb[..., ::-1]] if alpha is None else [rgb[..., ::-1], alpha[..., None]]  # RGB -> BGR(A)
    extension = ".png" if image_format == "PNG" else ".tiff"
    ok, encoded = cv2.imencode(extension, np.ascontiguousarray(np.concatenate(layers, axis=2)))
    if not ok:
        raise SwinIRError(f"{name}: OpenCV could not encode a 16-bit {image_format}; write .png instead")
    return encoded.tobytes()


# ----------------------------------------------------------------------------------------------- channels


def match_channels(pixels: np.ndarray, channels: int) -> tuple[np.ndarray, str | None]:
    """Convert HxW gray / HxWx3 RGB pixels to the ``channels`` (1 or 3) a model takes.

    Returns the pixels and a notice for the user, or the same array and None when nothing changed. Gray to
    RGB replicates the channel; RGB to gray is the ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B, rounded
    half up, in the input dtype (the weights the gray SwinIR models were trained with).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"expected HxW or HxWx3 pixels, got shape {pixels.shape}")
    current = 1 if pixels.ndim == 2 else 3
    if current == channels:
        return pixels, None
    if channels == 3:
        rgb = np.ascontiguousarray(np.repeat(pixels[..., None], 3, axis=2))
        return rgb, "converted gray image to RGB for a 3-channel model"
    luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if np.issubdtype(pixels.dtype, np.integer):
        luma = np.clip(np.floor(luma + 0.5), 0, np.iinfo(pixels.dtype).max)
    gray = np.ascontiguousarray(luma.astype(pixels.dtype))
    return gray, "converted RGB image to gray (BT.601 luma) for a 1-channel model"


# ----------------------------------------------------------------------------------------------- helpers


def _validate_pixels(pixels: np.ndarray, alpha: np.ndarray | None) -> None:
    """Check the :class:`Image` layout; a violation is a programming error, hence ValueError."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype not in (np.uint8, np.uint16):
        kind = pixels.dtype if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise ValueError(f"pixels must be a uint8 or uint16 numpy array, got {kind}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)) or 0 in pixels.shape[:2]:
        raise ValueError(f"pixels must be HxW or HxWx3 and non-empty, got shape {pixels.shape}")
    if alpha is not None and (
        not isinstance(alpha, np.ndarray) or alpha.shape != pixels.shape[:2] or alpha.dtype != pixels.dtype
    ):
        got = f"{alpha.dtype} {alpha.shape}" if isinstance(alpha, np.ndarray) else type(alpha).__name__
        raise ValueError(f"alpha must be a {pixels.dtype} array of shape {pixels.shape[:2]}, got {got}")


def _reason(err: OSError) -> str:
    return err.strerror or _one_line(err)


def _one_line(err: BaseException) -> str:
    """An exception's text collapsed onto one line, for embedding in a one-line message."""
    return " ".join(str(err).split()) or type(err).__name__
