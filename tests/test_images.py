"""Tests for swinir.images: every image is made here, and expected pixels are written out by hand.

16-bit PNGs and TIFFs are assembled byte by byte (``_png``, ``_tiff16``), so the reader is checked against
files that neither Pillow nor OpenCV produced, and written files are checked by decoding them with a
different library than the one that wrote them.
"""

from __future__ import annotations

import builtins
import dataclasses
import io
import os
import stat
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFile

from swinir.errors import SwinIRError
from swinir.images import (
    DEFAULT_MAX_PIXELS,
    Image,
    decode_image,
    encode_png,
    match_channels,
    read_image,
    write_image,
)

# A non-symmetric 2x3 pattern: every orientation of it is distinguishable.
PATTERN = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)


# ----------------------------------------------------------------------------------------- file builders


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(samples: np.ndarray, colour_type: int, *extra_chunks: bytes) -> bytes:
    """A PNG built by hand: rows of big-endian samples, filter 0. ``samples`` is HxW or HxWxC."""
    height, width = samples.shape[:2]
    depth = 8 * samples.dtype.itemsize
    rows = samples.reshape(height, -1).astype(">u2" if depth == 16 else "u1")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + b"".join(extra_chunks)
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def _exif_orientation(value: int) -> bytes:
    """An EXIF block (TIFF structure, little-endian) holding only the Orientation tag."""
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, value, 0)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0)


def _tiff16(samples: np.ndarray, orientation: int = 1) -> bytes:
    """An uncompressed little-endian TIFF with 16-bit RGB (HxWx3) or RGBA (HxWx4) samples, built by hand."""
    height, width, channels = samples.shape
    bits = struct.pack("<" + "H" * channels, *([16] * channels))
    pixel_data = samples.astype("<u2").tobytes()
    data_offset = 8 + len(bits)
    short, long_ = 3, 4
    tags = [
        (256, short, 1, width), (257, short, 1, height), (258, short, channels, 8), (259, short, 1, 1),
        (262, short, 1, 2), (273, long_, 1, data_offset), (274, short, 1, orientation),
        (277, short, 1, channels), (278, short, 1, height), (279, long_, 1, len(pixel_data)),
        (284, short, 1, 1),
    ]
    if channels == 4:
        tags.append((338, short, 1, 2))  # ExtraSamples: unassociated alpha
    directory = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        inline_short = kind == short and count == 1
        directory += struct.pack("<HHIHH" if inline_short else "<HHII", tag, kind, count, value, *([0] * inline_short))
    directory += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", data_offset + len(pixel_data)) + bits + pixel_data + directory


def _bmp_header(width: int, height: int) -> bytes:
    """A 24-bit BMP header declaring ``width`` x ``height``, with no pixel data after it."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def _pillow_bytes(picture: PILImage.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def no_pixel_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if Pillow starts decoding pixels (load_prepare is where it allocates the buffer)."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("Pillow was asked to allocate pixels for an image that must be refused first")

    monkeypatch.setattr(ImageFile.ImageFile, "load_prepare", refuse)


# ----------------------------------------------------------------------------------------- reading


def test_image_properties_and_frozen() -> None:
    image = Image(np.zeros((2, 5, 3), np.uint8), None, 8, "RGB")
    assert (image.channels, image.size) == (3, (2, 5))
    assert Image(np.zeros((4, 1), np.uint16), np.zeros((4, 1), np.uint16), 16, "I;16").channels == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.bit_depth = 16  # type: ignore[misc]
    with pytest.raises(ValueError, match="bit_depth"):
        Image(np.zeros((2, 2), np.uint8), None, 16, "L")


@pytest.mark.parametrize(
    ("mode", "values", "expected_alpha"),
    [
        ("L", [[0, 128, 255]], None),
        ("RGB", [[[255, 0, 0], [0, 255, 0], [1, 2, 3]]], None),
        ("RGBA", [[[255, 0, 0, 0], [0, 255, 0, 128], [1, 2, 3, 255]]], [[0, 128, 255]]),
        ("LA", [[[10, 0], [20, 77], [30, 255]]], [[0, 77, 255]]),
    ],
)
def test_reads_8bit_png_modes(tmp_path: Path, mode: str, values: list, expected_alpha: list | None) -> None:
    array = np.array(values, np.uint8)
    path = _file(tmp_path, "a.png", _pillow_bytes(PILImage.fromarray(array), "PNG"))
    image = read_image(path)
    colour = array[..., :3] if mode in ("RGB", "RGBA") else (array if mode == "L" else array[..., 0])
    assert image.pixels.dtype == np.uint8 and image.bit_depth == 8 and image.source_mode == mode
    np.testing.assert_array_equal(image.pixels, colour)
    if expected_alpha is None:
        assert image.alpha is None
    else:
        np.testing.assert_array_equal(image.alpha, np.array(expected_alpha, np.uint8))
    assert image.pixels.flags.c_contiguous


def test_reads_16bit_gray_png_keeping_values_above_255(tmp_path: Path) -> None:
    samples = np.array([[0, 255, 256], [1000, 40000, 65535]], np.uint16)
    image = read_image(_file(tmp_path, "g16.png", _png(samples, 0)))
    assert image.pixels.dtype == np.uint16 and image.bit_depth == 16 and image.channels == 1
    assert image.source_mode.startswith("I")
    np.testing.assert_array_equal(image.pixels, [[0, 255, 256], [1000, 40000, 65535]])
    assert image.alpha is None


def test_reads_16bit_rgb_png_in_rgb_order(tmp_path: Path) -> None:
    samples = np.array([[[1000, 2000, 3000], [65535, 256, 0]]], np.uint16)
    image = read_image(_file(tmp_path, "rgb16.png", _png(samples, 2)))
    assert (image.bit_depth, image.source_mode, image.channels) == (16, "RGB;16", 3)
    np.testing.assert_array_equal(image.pixels, [[[1000, 2000, 3000], [65535, 256, 0]]])
    assert image.alpha is None


def test_reads_16bit_rgba_png(tmp_path: Path) -> None:
    samples = np.array([[[1000, 2000, 3000, 0], [4, 5, 6, 40000]]], np.uint16)
    image = read_image(_file(tmp_path, "rgba16.png", _png(samples, 6)))
    assert (image.bit_depth, image.source_mode) == (16, "RGBA;16")
    np.testing.assert_array_equal(image.pixels, [[[1000, 2000, 3000], [4, 5, 6]]])
    np.testing.assert_array_equal(image.alpha, [[0, 40000]])
    assert image.alpha.dtype == np.uint16


def test_reads_16bit_gray_alpha_png_as_one_channel(tmp_path: Path) -> None:
    samples = np.array([[[1000, 9], [60000, 65535]]], np.uint16)
    image = read_image(_file(tmp_path, "la16.png", _png(samples, 4)))
    assert (image.channels, image.bit_depth, image.source_mode) == (1, 16, "LA;16")
    np.testing.assert_array_equal(image.pixels, [[1000, 60000]])
    np.testing.assert_array_equal(image.alpha, [[9, 65535]])


def test_16bit_png_with_exif_orientation_is_rotated(tmp_path: Path) -> None:
    # Stored 2x3; orientation 6 means "rotate 90 degrees clockwise to display" -> 3x2.
    samples = np.stack([PATTERN.astype(np.uint16) * 1000 + 300, np.full((2, 3), 7, np.uint16),
                        np.full((2, 3), 65535, np.uint16)], axis=2)
    data = _png(samples, 2, _chunk(b"eXIf", _exif_orientation(6)))
    image = read_image(_file(tmp_path, "rot16.png", data))
    np.testing.assert_array_equal(image.pixels[..., 0], [[3300, 300], [4300, 1300], [5300, 2300]])
    np.testing.assert_array_equal(image.pixels[..., 1:], np.broadcast_to([7, 65535], (3, 2, 2)))


@pytest.mark.parametrize("orientation", [1, 6])
def test_reads_16bit_rgb_tiff_with_orientation(tmp_path: Path, orientation: int) -> None:
    samples = np.stack([PATTERN.astype(np.uint16) * 1000 + 300, np.full((2, 3), 600, np.uint16),
                        np.full((2, 3), 65535, np.uint16)], axis=2)
    image = read_image(_file(tmp_path, "rgb16.tif", _tiff16(samples, orientation)))
    assert (image.bit_depth, image.source_mode) == (16, "RGB;16")
    red = [[300, 1300, 2300], [3300, 4300, 5300]] if orientation == 1 else [[3300, 300], [4300, 1300], [5300, 2300]]
    np.testing.assert_array_equal(image.pixels[..., 0], red)
    assert np.all(image.pixels[..., 1] == 600) and np.all(image.pixels[..., 2] == 65535)


def test_reads_16bit_rgba_tiff(tmp_path: Path) -> None:
    samples = np.array([[[1000, 2000, 3000, 500], [4, 5, 6, 65535]]], np.uint16)
    image = read_image(_file(tmp_path, "rgba16.tif", _tiff16(samples)))
    np.testing.assert_array_equal(image.pixels, [[[1000, 2000, 3000], [4, 5, 6]]])
    np.testing.assert_array_equal(image.alpha, [[500, 65535]])


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw"])  # Pillow's own decoder, then libtiff
def test_16bit_gray_tiff_orientation(tmp_path: Path, compression: str) -> None:
    picture = PILImage.fromarray(PATTERN.astype(np.uint16) * 1000)
    data = _pillow_bytes(picture, "TIFF", tiffinfo={0x0112: 6}, compression=compression)
    image = read_image(_file(tmp_path, "g16.tif", data))
    np.testing.assert_array_equal(image.pixels, [[3000, 0], [4000, 1000], [5000, 2000]])
    assert image.pixels.dtype == np.uint16


def test_reads_big_endian_16bit_gray_tiff(tmp_path: Path) -> None:
    picture = PILImage.new("I;16B", (2, 1))
    picture.putdata([258, 65000])
    image = read_image(_file(tmp_path, "be.tif", _pillow_bytes(picture, "TIFF")))
    assert image.source_mode == "I;16B" and image.pixels.dtype == np.uint16  # native byte order
    np.testing.assert_array_equal(image.pixels, [[258, 65000]])


# The displayed result of PATTERN for each EXIF orientation (from the EXIF specification's definitions).
ORIENTED = {
    1: [[0, 1, 2], [3, 4, 5]],
    2: [[2, 1, 0], [5, 4, 3]],
    3: [[5, 4, 3], [2, 1, 0]],
    4: [[3, 4, 5], [0, 1, 2]],
    5: [[0, 3], [1, 4], [2, 5]],
    6: [[3, 0], [4, 1], [5, 2]],
    7: [[5, 2], [4, 1], [3, 0]],
    8: [[2, 5], [1, 4], [0, 3]],
}


@pytest.mark.parametrize("orientation", sorted(ORIENTED))
def test_png_exif_orientation(tmp_path: Path, orientation: int) -> None:
    data = _png(PATTERN, 0, _chunk(b"eXIf", _exif_orientation(orientation)))
    np.testing.assert_array_equal(read_image(_file(tmp_path, "o.png", data)).pixels, ORIENTED[orientation])


@pytest.mark.parametrize("orientation", sorted(ORIENTED))
def test_16bit_rgb_exif_orientation_matches_8bit(tmp_path: Path, orientation: int) -> None:
    samples = np.repeat(PATTERN.astype(np.uint16)[..., None] * 10000 + 5, 3, axis=2)
    data = _png(samples, 2, _chunk(b"eXIf", _exif_orientation(orientation)))
    red = read_image(_file(tmp_path, "o16.png", data)).pixels[..., 0]
    np.testing.assert_array_equal(red, np.array(ORIENTED[orientation]) * 10000 + 5)


def test_jpeg_exif_orientation(tmp_path: Path) -> None:
    stored = np.zeros((8, 16), np.uint8)
    stored[:4, :8] = 255  # white top-left block of a wide image
    exif = PILImage.Exif()
    exif[0x0112] = 6
    data = _pillow_bytes(PILImage.fromarray(stored), "JPEG", quality=100, exif=exif.tobytes())
    pixels = read_image(_file(tmp_path, "o.jpg", data)).pixels.astype(int)
    assert pixels.shape == (16, 8)  # turned upright: now tall
    assert pixels[:8, 4:].mean() > 230  # the block went to the top right
    assert pixels[:8, :4].mean() < 25 and pixels[8:].mean() < 25


def test_palette_without_transparency_becomes_rgb(tmp_path: Path) -> None:
    picture = PILImage.new("P", (3, 1))
    picture.putpalette([255, 0, 0, 0, 0, 255, 10, 20, 30])
    picture.putdata([0, 1, 2])
    image = read_image(_file(tmp_path, "p.png", _pillow_bytes(picture, "PNG")))
    assert (image.source_mode, image.channels, image.alpha) == ("P", 3, None)
    np.testing.assert_array_equal(image.pixels, [[[255, 0, 0], [0, 0, 255], [10, 20, 30]]])


def test_palette_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    picture = PILImage.new("P", (3, 1))
    picture.putpalette([255, 0, 0, 0, 0, 255, 10, 20, 30])
    picture.putdata([0, 1, 2])
    data = _pillow_bytes(picture, "PNG", transparency=bytes([255, 0, 128]))
    image = read_image(_file(tmp_path, "p.png", data))
    np.testing.assert_array_equal(image.pixels, [[[255, 0, 0], [0, 0, 255], [10, 20, 30]]])
    np.testing.assert_array_equal(image.alpha, [[255, 0, 128]])


def test_gif_with_transparent_index(tmp_path: Path) -> None:
    picture = PILImage.new("P", (2, 1))
    picture.putpalette([200, 10, 10, 0, 90, 0] + [0, 0, 0] * 254)
    picture.putdata([0, 1])
    image = read_image(_file(tmp_path, "t.gif", _pillow_bytes(picture, "GIF", transparency=1)))
    np.testing.assert_array_equal(image.alpha, [[255, 0]])
    np.testing.assert_array_equal(image.pixels[0, 0], [200, 10, 10])


def test_gray_palette_becomes_gray(tmp_path: Path) -> None:
    picture = PILImage.new("P", (3, 1))
    picture.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255])
    picture.putdata([2, 1, 0])
    image = read_image(_file(tmp_path, "gp.png", _pillow_bytes(picture, "PNG")))
    assert image.channels == 1
    np.testing.assert_array_equal(image.pixels, [[255, 128, 0]])


def test_rgb_with_equal_channels_stays_rgb(tmp_path: Path) -> None:
    array = np.repeat(np.array([[10, 20]], np.uint8)[..., None], 3, axis=2)
    image = read_image(_file(tmp_path, "grayish.png", _pillow_bytes(PILImage.fromarray(array), "PNG")))
    assert image.channels == 3
    np.testing.assert_array_equal(image.pixels, [[[10, 10, 10], [20, 20, 20]]])


def test_mode_1_becomes_0_and_255(tmp_path: Path) -> None:
    picture = PILImage.new("1", (3, 1))
    picture.putdata([1, 0, 1])
    image = read_image(_file(tmp_path, "bw.png", _pillow_bytes(picture, "PNG")))
    assert (image.source_mode, image.pixels.dtype) == ("1", np.uint8)
    np.testing.assert_array_equal(image.pixels, [[255, 0, 255]])


def test_transparency_keys_become_alpha(tmp_path: Path) -> None:
    rgb = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    image = read_image(_file(tmp_path, "k.png", _png(rgb, 2, _chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3)))))
    np.testing.assert_array_equal(image.pixels, rgb)
    np.testing.assert_array_equal(image.alpha, [[0, 255]])
    gray16 = np.array([[1000, 5]], np.uint16)
    image = read_image(_file(tmp_path, "k16.png", _png(gray16, 0, _chunk(b"tRNS", struct.pack(">H", 1000)))))
    np.testing.assert_array_equal(image.pixels, [[1000, 5]])
    np.testing.assert_array_equal(image.alpha, [[0, 65535]])


def test_cmyk_becomes_rgb(tmp_path: Path) -> None:
    picture = PILImage.new("CMYK", (2, 1))
    picture.putdata([(0, 0, 0, 0), (255, 0, 0, 0)])  # white, full cyan
    image = read_image(_file(tmp_path, "c.tif", _pillow_bytes(picture, "TIFF")))
    assert image.source_mode == "CMYK"
    np.testing.assert_array_equal(image.pixels, [[[255, 255, 255], [0, 255, 255]]])


def test_32bit_integer_gray_in_16bit_range(tmp_path: Path) -> None:
    picture = PILImage.fromarray(np.array([[0, 70000]], np.int32))
    with pytest.raises(SwinIRError, match=r"from 0 to 70000"):
        read_image(_file(tmp_path, "big.tif", _pillow_bytes(picture, "TIFF")))
    picture = PILImage.fromarray(np.array([[0, 65535]], np.int32))
    image = read_image(_file(tmp_path, "ok.tif", _pillow_bytes(picture, "TIFF")))
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, [[0, 65535]])


def test_float_image_is_refused(tmp_path: Path) -> None:
    picture = PILImage.fromarray(np.array([[0.5, 1.5]], np.float32))
    with pytest.raises(SwinIRError, match=r"f\.tif: Pillow mode 'F' \(32-bit floating point\)"):
        read_image(_file(tmp_path, "f.tif", _pillow_bytes(picture, "TIFF")))


def test_animation_is_refused(tmp_path: Path) -> None:
    frames = [PILImage.new("L", (4, 4), 0), PILImage.new("L", (4, 4), 255)]
    data = _pillow_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(SwinIRError, match=r"anim\.gif: is a GIF with 2 frames"):
        read_image(_file(tmp_path, "anim.gif", data))


def test_multipage_tiff_is_refused(tmp_path: Path) -> None:
    pages = [PILImage.new("L", (4, 4), 0), PILImage.new("L", (4, 4), 255)]
    data = _pillow_bytes(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    with pytest.raises(SwinIRError, match="2 frames or pages"):
        read_image(_file(tmp_path, "pages.tif", data))


def test_mpo_reads_the_first_frame(tmp_path: Path) -> None:
    frames = [PILImage.new("RGB", (16, 16), (200, 10, 10)), PILImage.new("RGB", (16, 16), (0, 0, 250))]
    data = _pillow_bytes(frames[0], "MPO", save_all=True, append_images=frames[1:])
    image = read_image(_file(tmp_path, "stereo.jpg", data))
    assert np.abs(image.pixels.astype(int) - [200, 10, 10]).max() <= 3


def test_decode_image_from_bytes() -> None:
    image = decode_image(_png(PATTERN, 0))
    np.testing.assert_array_equal(image.pixels, PATTERN)
    np.testing.assert_array_equal(decode_image(memoryview(_png(PATTERN, 0))).pixels, PATTERN)
    with pytest.raises(SwinIRError, match=r"^<upload>: the file is empty"):
        decode_image(b"")
    with pytest.raises(SwinIRError, match=r"^face\.png: the file is empty"):
        decode_image(b"", name="face.png")


# ----------------------------------------------------------------------------------------- bad input


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match=r"empty\.png: the file is empty \(0 bytes\); re-export"):
        read_image(_file(tmp_path, "empty.png", b""))


def test_not_an_image(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(SwinIRError, match=r"noise\.png: not an image format Pillow can read"):
        read_image(_file(tmp_path, "noise.png", data))
    with pytest.raises(SwinIRError, match=r"page\.jpg: .*starts with b'<!DOCTYP'"):
        read_image(_file(tmp_path, "page.jpg", b"<!DOCTYPE html><html></html>"))


def test_truncated_png(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _pillow_bytes(PILImage.fromarray(noise), "PNG")
    with pytest.raises(SwinIRError, match=r"cut\.png: the file is truncated"):
        read_image(_file(tmp_path, "cut.png", data[: len(data) // 2]))


def test_truncated_jpeg(tmp_path: Path) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _pillow_bytes(PILImage.fromarray(noise), "JPEG")
    with pytest.raises(SwinIRError, match=r"cut\.jpg: the file is truncated"):
        read_image(_file(tmp_path, "cut.jpg", data[: len(data) // 2]))


def test_damaged_png(tmp_path: Path) -> None:
    header_damaged = bytearray(_png(PATTERN, 0))
    header_damaged[29] ^= 0xFF  # corrupt the IHDR checksum: Pillow cannot even identify the file
    with pytest.raises(SwinIRError, match=r"bad\.png: the file is damaged \(it starts like a PNG file"):
        read_image(_file(tmp_path, "bad.png", bytes(header_damaged)))
    data_damaged = bytearray(_png(np.zeros((32, 32), np.uint8), 0))
    data_damaged[data_damaged.index(b"IDAT") + 6] ^= 0xFF  # corrupt the compressed pixel data
    with pytest.raises(SwinIRError, match=r"bad2\.png: the file is damaged \(.+\); re-export or re-download"):
        read_image(_file(tmp_path, "bad2.png", bytes(data_damaged)))


def test_png_bomb_fails_fast_without_decoding(tmp_path: Path, no_pixel_buffers: None) -> None:
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = _png(PATTERN, 0)
    bomb = data[:8] + _chunk(b"IHDR", header) + data[33:]  # a 1 KB file declaring 10 gigapixels
    start = time.perf_counter()
    with pytest.raises(SwinIRError) as caught:
        read_image(_file(tmp_path, "bomb.png", bomb))
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert "bomb.png" in message and "100000x100000 = 10,000,000,000 pixels" in message
    assert f"{DEFAULT_MAX_PIXELS:,}" in message and "\n" not in message


def test_max_pixels_is_checked_from_the_header(tmp_path: Path, no_pixel_buffers: None) -> None:
    jpeg = _pillow_bytes(PILImage.new("RGB", (50, 40)), "JPEG")
    with pytest.raises(SwinIRError, match=r"50x40 = 2,000 pixels, more than the limit of 1,999"):
        read_image(_file(tmp_path, "a.jpg", jpeg), max_pixels=1999)


def test_bomb_beyond_pillows_own_limit(tmp_path: Path, no_pixel_buffers: None) -> None:
    with pytest.raises(SwinIRError, match=r"huge\.bmp: refused by Pillow's decompression-bomb guard .*10000000000"):
        read_image(_file(tmp_path, "huge.bmp", _bmp_header(100_000, 100_000)), max_pixels=10**11)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match=r"nope\.png: file not found; check the path"):
        read_image(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match=r"is a folder, not an image file"):
        read_image(tmp_path)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, "secret.png", _png(PATTERN, 0))
    real_open = builtins.open

    def deny(file: object, *args: object, **kwargs: object) -> object:
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(SwinIRError, match=r"secret\.png: permission denied"):
        read_image(path)


def test_pillow_global_settings_are_left_alone() -> None:
    before = PILImage.MAX_IMAGE_PIXELS
    decode_image(_png(PATTERN, 0))
    assert before == PILImage.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ----------------------------------------------------------------------------------------- writing


def _sample(bits: int, channels: int) -> np.ndarray:
    """Distinct values in every pixel and channel; 16-bit ones well above 255."""
    dtype, scale = (np.uint8, 7) if bits == 8 else (np.uint16, 1021)
    values = (np.arange(4 * 5 * channels).reshape(4, 5, channels) * scale) % np.iinfo(dtype).max
    return values.astype(dtype)[..., 0] if channels == 1 else values.astype(dtype)


@pytest.mark.parametrize("extension", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_png_tiff_round_trip_is_exact(
    tmp_path: Path, extension: str, bits: int, channels: int, with_alpha: bool
) -> None:
    pixels = _sample(bits, channels)
    alpha = (pixels if channels == 1 else pixels[..., 1])[::-1].copy() if with_alpha else None
    path = tmp_path / f"out{extension}"
    write_image(path, pixels, alpha=alpha)
    image = read_image(path)
    assert image.bit_depth == bits and image.pixels.dtype == pixels.dtype
    if bits == 16 and channels == 1 and with_alpha:  # documented: stored as RGBA with three equal channels
        np.testing.assert_array_equal(image.pixels, np.repeat(pixels[..., None], 3, axis=2))
    else:
        np.testing.assert_array_equal(image.pixels, pixels)
    if with_alpha:
        np.testing.assert_array_equal(image.alpha, alpha)
    else:
        assert image.alpha is None
    if bits == 16:
        assert image.pixels.max() > 255


def test_written_16bit_rgb_png_has_rgb_order_on_disk(tmp_path: Path) -> None:
    pixels = np.array([[[1000, 2000, 3000], [65535, 300, 0]]], np.uint16)
    write_image(tmp_path / "o.png", pixels)
    on_disk = cv2.imread(str(tmp_path / "o.png"), cv2.IMREAD_UNCHANGED)  # OpenCV: BGR
    np.testing.assert_array_equal(on_disk, [[[3000, 2000, 1000], [0, 300, 65535]]])
    with PILImage.open(tmp_path / "o.png") as reread:  # Pillow: RGB, high bytes only
        np.testing.assert_array_equal(np.asarray(reread), [[[3, 7, 11], [255, 1, 0]]])


@pytest.mark.parametrize(("extension", "magic"), [(".bmp", b"BM"), (".webp", b"RIFF"), (".png", b"\x89PNG")])
def test_8bit_formats_are_exact(tmp_path: Path, extension: str, magic: bytes) -> None:
    pixels = _sample(8, 3)
    path = tmp_path / f"o{extension.upper()}"  # the extension is matched case-insensitively
    write_image(path, pixels)
    assert path.read_bytes().startswith(magic)
    with PILImage.open(path) as reread:
        np.testing.assert_array_equal(np.asarray(reread.convert("RGB")), pixels)


def test_webp_keeps_alpha(tmp_path: Path) -> None:
    pixels, alpha = _sample(8, 3), np.full((4, 5), 100, np.uint8)
    alpha[0, 0] = 0
    write_image(tmp_path / "o.webp", pixels, alpha=alpha)
    image = read_image(tmp_path / "o.webp")
    np.testing.assert_array_equal(image.pixels, pixels)
    np.testing.assert_array_equal(image.alpha, alpha)


@pytest.mark.parametrize("extension", [".jpg", ".jpeg"])
def test_jpeg_write(tmp_path: Path, extension: str) -> None:
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:8] = (200, 40, 40)
    pixels[8:] = (30, 30, 220)
    write_image(tmp_path / f"o{extension}", pixels)
    data = (tmp_path / f"o{extension}").read_bytes()
    assert data.startswith(b"\xff\xd8\xff")
    with PILImage.open(io.BytesIO(data)) as reread:
        assert np.abs(np.asarray(reread).astype(int) - pixels).max() <= 6


@pytest.mark.parametrize(
    ("name", "bits", "with_alpha", "message"),
    [
        ("o.jpg", 16, False, r"o\.jpg: JPEG holds 8 bits per channel but the image is 16-bit; write \.png"),
        ("o.jpg", 8, True, r"o\.jpg: JPEG cannot store the image's transparency"),
        ("o.bmp", 8, True, r"o\.bmp: BMP cannot store the image's transparency"),
        ("o.webp", 16, False, r"o\.webp: WEBP holds 8 bits per channel"),
        ("o.gif", 8, False, r"o\.gif: unknown image extension \('\.gif'\); use one of \.png"),
        ("o", 8, False, r"unknown image extension \(none\)"),
    ],
)
def test_write_refuses_what_the_format_cannot_hold(
    tmp_path: Path, name: str, bits: int, with_alpha: bool, message: str
) -> None:
    pixels = _sample(bits, 3)
    alpha = pixels[..., 0].copy() if with_alpha else None
    with pytest.raises(SwinIRError, match=message):
        write_image(tmp_path / name, pixels, alpha=alpha)
    assert list(tmp_path.iterdir()) == []


def test_write_creates_parent_folders_with_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    write_image(target, PATTERN)
    with PILImage.open(target) as reread:
        np.testing.assert_array_equal(np.asarray(reread), PATTERN)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


def test_write_to_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out.png").mkdir()
    with pytest.raises(SwinIRError, match=r"out\.png: is a folder"):
        write_image(tmp_path / "out.png", PATTERN)


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    target = _file(tmp_path, "out.png", b"old")
    write_image(target, PATTERN)
    np.testing.assert_array_equal(read_image(target).pixels, PATTERN)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_encoder_failure_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _file(tmp_path, "out.png", b"old contents")

    def broken_save(*args: object, **kwargs: object) -> None:
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(PILImage.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_image(target, PATTERN)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failure_mid_write_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = _file(tmp_path, "out.png", b"old contents")
    seen: list[list[str]] = []

    def fail(*args: object) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))  # the temporary file exists at this point
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(SwinIRError, match=r"out\.png: cannot write the file \(No space left on device\)"):
        write_image(target, PATTERN)
    assert len(seen[0]) == 2 and seen[0][0].startswith(".out.png.") and seen[0][0].endswith(".tmp")
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_encode_png(tmp_path: Path) -> None:
    data = encode_png(PATTERN, alpha=np.full((2, 3), 9, np.uint8))
    with PILImage.open(io.BytesIO(data)) as reread:
        assert reread.format == "PNG" and reread.mode == "LA"
        np.testing.assert_array_equal(np.asarray(reread)[..., 0], PATTERN)
        assert np.all(np.asarray(reread)[..., 1] == 9)
    sixteen = np.array([[[1000, 2000, 3000]]], np.uint16)
    decoded = cv2.imdecode(np.frombuffer(encode_png(sixteen), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, [[[3000, 2000, 1000]]])


@pytest.mark.parametrize(
    ("pixels", "alpha", "message"),
    [
        (np.zeros((2, 2), np.float32), None, "uint8 or uint16"),
        (np.zeros((2, 2, 4), np.uint8), None, "HxW or HxWx3"),
        (np.zeros((0, 2), np.uint8), None, "non-empty"),
        (np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), "alpha must be"),
        (np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint16), "alpha must be"),
    ],
)
def test_invalid_arrays_are_programming_errors(pixels: np.ndarray, alpha: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_png(pixels, alpha=alpha)


# ----------------------------------------------------------------------------------------- channels


def test_match_channels_gray_to_rgb() -> None:
    gray = np.array([[0, 7], [200, 255]], np.uint8)
    rgb, notice = match_channels(gray, 3)
    assert notice == "converted gray image to RGB for a 3-channel model"
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb[1, 0], [200, 200, 200])
    np.testing.assert_array_equal(rgb[0, 1], [7, 7, 7])


def test_match_channels_rgb_to_gray_uses_bt601_luma() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200], [255, 255, 255]]], np.uint8)
    gray, notice = match_channels(rgb, 1)
    # 76.245, 149.685, 29.07, 140.75, 255.0 rounded
    np.testing.assert_array_equal(gray, [[76, 150, 29, 141, 255]])
    assert gray.dtype == np.uint8
    assert notice == "converted RGB image to gray (BT.601 luma) for a 1-channel model"

    rgb16 = np.array([[[65535, 0, 0], [1000, 2000, 3000], [65535, 65535, 65535]]], np.uint16)
    gray16, _ = match_channels(rgb16, 1)
    np.testing.assert_array_equal(gray16, [[19595, 1815, 65535]])  # 19594.965, 299+1174+342
    assert gray16.dtype == np.uint16


def test_match_channels_unchanged() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    same, notice = match_channels(rgb, 3)
    assert same is rgb and notice is None
    gray = np.zeros((2, 2), np.uint16)
    assert match_channels(gray, 1) == (gray, None)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        match_channels(rgb, 4)
