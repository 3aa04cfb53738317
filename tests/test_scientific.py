"""Scientific TIFF (issue 29): 16-bit and float data, larger than memory, stacks, metadata, bad input.

Every file is made here with tifffile; the models are tiny random SwinIRs (fp32, deterministic on the CPU),
so what is checked is the plumbing around the network: levels, band streaming, planes, axes and metadata.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import swinir
from swinir.cli import main
from swinir.engine import restore
from swinir.errors import SwinIRError
from swinir.levels import Levels, from_unit, full_range, parse_normalize, percentile_range, to_unit

SMALL_BUDGET = ["--max-memory", "0.0001"]  # 100 kB: every test image below exceeds it, so it is streamed


def tiny(path: Path, in_chans: int) -> Path:
    torch.manual_seed(in_chans)
    cfg = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                             in_chans=in_chans, upsampler="pixelshuffledirect")
    swinir.save_safetensors(path, cfg.build(), cfg, {"task": "classical_sr"})
    return path


@pytest.fixture(scope="module")
def gray(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("w") / "gray_x2.safetensors", 1)


@pytest.fixture(scope="module")
def colour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("w") / "rgb_x2.safetensors", 3)


def run(*args: str | Path) -> int:
    return main([str(a) for a in args] + ["--quiet", "--precision", "fp32"])


def expected(weights: Path, plane: np.ndarray, levels: Levels, **tiling: int) -> np.ndarray:
    """The engine's restore of one HxW plane on the [0, 1] scale, mapped back: what the file path must give."""
    model = swinir.load(weights)
    x = torch.from_numpy(to_unit(plane, levels))[None, None]
    return from_unit(restore(model, x, clamp=False, **tiling)[0, 0].numpy(), levels)[0]


# ----------------------------------------------------------------------------------------------- levels


def test_percentile_levels_are_numpys_and_invert_exactly() -> None:
    data = np.arange(1000, dtype=np.uint16)  # linear percentiles of 0..999: p/100 * 999
    full = full_range(np.uint16, 0, 999)
    assert (full.high, full.ceiling, full.label) == (1023.0, 1023.0, "10-bit range 0..1023")
    levels = percentile_range(full, data, (1.0, 99.0))
    assert levels.low == pytest.approx(9.99) and levels.high == pytest.approx(989.01)
    unit = to_unit(data, levels)
    assert unit[10] == pytest.approx((10 - 9.99) / 979.02) and unit[500] == pytest.approx((500 - 9.99) / 979.02)
    back, clipped = from_unit(unit, levels)
    assert back.dtype == np.uint16 and clipped == 0 and np.array_equal(back, data)
    floats = np.linspace(-3.0, 7.0, 101, dtype=np.float32)
    f_levels = percentile_range(full_range(np.float32, -3.0, 7.0), floats, (0.1, 99.9))
    f_back, f_clipped = from_unit(to_unit(floats, f_levels), f_levels)
    assert f_clipped == 0 and f_back.dtype == np.float32 and np.allclose(f_back, floats, rtol=0, atol=1e-6)


def test_full_range_of_each_type_and_clipping_count() -> None:
    assert full_range(np.uint8, 3, 200).high == 255
    assert full_range(np.uint16, 0, 4095).ceiling == 4095  # 12-bit content
    assert full_range(np.uint16, 0, 4096).ceiling == 16383  # 14-bit
    assert full_range(np.uint16, 0, 100, declared_bits=12).ceiling == 4095  # declared wins
    assert (full_range(np.float32, 0.2, 0.9).low, full_range(np.float32, 0.2, 0.9).high) == (0.0, 1.0)
    wide = full_range(np.float32, -1000.0, 3000.0)  # e.g. Hounsfield units: the data's own range
    assert (wide.low, wide.high, wide.ceiling) == (-1000.0, 3000.0, None)
    twelve = full_range(np.uint16, 0, 4000)
    values, clipped = from_unit(np.array([-0.1, 0.0, 0.5, 1.0, 1.2]), twelve)
    assert values.tolist() == [0, 0, 2048, 4095, 4095] and clipped == 2  # round(0.5 * 4095) = 2048
    assert parse_normalize("percentile:1,99") == ("percentile", (1.0, 99.0))
    with pytest.raises(SwinIRError, match="--normalize"):
        parse_normalize("percentile:99,1")


# ----------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("layout", [{"tile": (32, 32)}, {"rowsperstrip": 8}, {"bigtiff": True}])
def test_streamed_uint16_equals_the_in_memory_restore(tmp_path: Path, gray: Path, layout: dict,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """12-bit data in a tiled, striped or BigTIFF file, over the memory budget: streamed in bands, the output
    equals the engine's in-memory tiled restore exactly, keeps 0..4095 and the uint16 type."""
    plane = (np.random.default_rng(1).random((70, 90)) * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", plane, compression="zlib" if "tile" in layout else None, **layout)
    assert main(["restore", str(tmp_path / "a.tif"), "-o", str(tmp_path / "s.tif"), "-w", str(gray), *SMALL_BUDGET,
                 "--tile", "32", "--tile-overlap", "16", "--precision", "fp32"]) == 0
    assert "streamed in bands of 32 rows" in capsys.readouterr().out
    out = tifffile.imread(tmp_path / "s.tif")
    want = expected(gray, plane, full_range(np.uint16, 0, 4000), tile=32, tile_overlap=16)
    assert out.dtype == np.uint16 and out.shape == (140, 180) and out.max() <= 4095
    assert np.array_equal(out, want)
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        page = tif.pages[0]
        assert tif.is_bigtiff and page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE


def test_automatic_band_and_float32_unclipped(tmp_path: Path, gray: Path) -> None:
    """float32 in [0, 1] comes back float32 and unclipped; the budget alone picks the band (no --tile), and the
    result equals the in-memory tiled restore with that tile."""
    plane = np.random.default_rng(2).random((80, 72)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", plane)
    assert run("restore", tmp_path / "f.tif", "-o", tmp_path / "o.tif", "-w", gray, *SMALL_BUDGET) == 0
    out = tifffile.imread(tmp_path / "o.tif")
    want = expected(gray, plane, full_range(np.float32, 0, 1), tile=32, tile_overlap=24)  # what 100 kB gives
    assert out.dtype == np.float32 and np.allclose(out, want, rtol=0, atol=1e-6)
    assert out.min() < 0 or out.max() > 1  # the random model leaves [0, 1]: nothing was clipped


def test_percentile_normalisation_through_the_command(tmp_path: Path, gray: Path) -> None:
    plane = (np.random.default_rng(3).random((40, 48)) * 30000 + 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", plane)
    assert run("restore", tmp_path / "p.tif", "-o", tmp_path / "o.tif", "-w", gray, "--normalize",
               "percentile:1,99") == 0
    low, high = np.percentile(plane, [1, 99])
    levels = Levels(float(low), float(high), np.dtype(np.uint16), 65535.0)
    assert np.array_equal(tifffile.imread(tmp_path / "o.tif"), expected(gray, plane, levels))


# ----------------------------------------------------------------------------------------------- stacks


def ome_stack(path: Path) -> np.ndarray:
    stack = (np.random.default_rng(4).random((3, 2, 24, 40)) * 255).astype(np.uint8)
    tifffile.imwrite(path, stack, ome=True, resolution=(4.0, 4.0), resolutionunit="CENTIMETER",
                     metadata={"axes": "ZCYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25,
                               "PhysicalSizeZ": 1.5, "Channel": {"Name": ["DAPI", "GFP"]}})
    return stack


def test_ome_stack_keeps_axes_halves_pixel_sizes_and_matches_planes_alone(tmp_path: Path, gray: Path) -> None:
    stack = ome_stack(tmp_path / "s.ome.tif")
    assert run("restore", tmp_path / "s.ome.tif", "-o", tmp_path / "o.ome.tif", "-w", gray) == 0
    with tifffile.TiffFile(tmp_path / "o.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "ZCYX" and tif.series[0].shape == (3, 2, 48, 80)
        out = tif.asarray()
        xml = tif.ome_metadata
        x_res = tif.pages[0].tags["XResolution"].value
        unit = tif.pages[0].tags["ResolutionUnit"].value
    assert 'PhysicalSizeX="0.125"' in xml and 'PhysicalSizeY="0.125"' in xml and 'PhysicalSizeZ="1.5"' in xml
    assert 'Name="GFP"' in xml and "gray_x2.safetensors, x2" in xml  # channels kept, processing note added
    assert x_res[0] / x_res[1] == 8.0 and unit == 3  # 4 px/cm at x2: 8 px/cm
    for z, c in [(0, 0), (1, 1), (2, 0)]:  # every plane equals restoring it alone
        tifffile.imwrite(tmp_path / "one.tif", stack[z, c])
        assert run("restore", tmp_path / "one.tif", "-o", tmp_path / "one_out.tif", "-w", gray, "--overwrite") == 0
        assert np.array_equal(out[z, c], tifffile.imread(tmp_path / "one_out.tif"))


def test_imagej_hyperstack_metadata_and_pages(tmp_path: Path, gray: Path) -> None:
    stack = (np.random.default_rng(5).random((2, 3, 20, 24)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZYX", "spacing": 0.7, "unit": "um", "Info": "microscope X"})
    assert run("restore", tmp_path / "ij.tif", "-o", tmp_path / "o.tif", "-w", gray) == 0
    with tifffile.TiffFile(tmp_path / "o.tif") as tif:
        meta = tif.imagej_metadata
        assert tif.is_imagej and tif.series[0].axes == "TZYX" and tif.series[0].shape == (2, 3, 40, 48)
        assert meta["spacing"] == 0.7 and meta["unit"] == "um"
        assert meta["Info"].startswith("microscope X\n") and "x2" in meta["Info"]
        x_res = tif.pages[0].tags["XResolution"].value
        whole = tif.asarray()
    assert x_res[0] / x_res[1] == pytest.approx(4.0)
    assert run("restore", tmp_path / "ij.tif", "-o", tmp_path / "p.tif", "-w", gray, "--pages", "1,4-5") == 0
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert tif.series[0].shape == (3, 40, 48)
        picked = tif.asarray()
    flat = whole.reshape(6, 40, 48)
    assert np.array_equal(picked, flat[[1, 4, 5]])


def test_rgb_through_colour_and_gray_models(tmp_path: Path, gray: Path, colour: Path) -> None:
    rgb = (np.random.default_rng(6).random((2, 24, 32, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", metadata={"axes": "ZYXS"})
    assert run("restore", tmp_path / "rgb.tif", "-o", tmp_path / "c.tif", "-w", colour) == 0
    assert run("restore", tmp_path / "rgb.tif", "-o", tmp_path / "g.tif", "-w", gray) == 0
    by_gray = tifffile.imread(tmp_path / "g.tif")
    assert tifffile.imread(tmp_path / "c.tif").shape == by_gray.shape == (2, 48, 64, 3)
    levels = full_range(np.uint8, 0, 255)
    assert np.array_equal(by_gray[1, ..., 2], expected(gray, rgb[1, ..., 2], levels))  # one sample at a time


def test_channels_refused_by_a_colour_model(tmp_path: Path, colour: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ome_stack(tmp_path / "s.ome.tif")
    assert run("restore", tmp_path / "s.ome.tif", "-o", tmp_path / "o.tif", "-w", colour) == 1
    err = capsys.readouterr().err
    assert "has 2 channels (axis C)" in err and "gray model" in err and not (tmp_path / "o.tif").exists()


# ----------------------------------------------------------------------------------------------- bad input


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in lines[0]
    return lines[0]


def test_truncated_unknown_codec_and_odd_axes(tmp_path: Path, gray: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plane = (np.random.default_rng(7).random((64, 64)) * 60000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", plane, tile=(32, 32), compression="zlib")
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    tifffile.imwrite(tmp_path / "codec.tif", plane, tile=(32, 32))
    with tifffile.TiffFile(tmp_path / "codec.tif", mode="r+b") as tif:
        tif.pages[0].tags["Compression"].overwrite(60123)  # no codec has this number
    tifffile.imwrite(tmp_path / "axes.tif", np.zeros((12, 10, 5), np.uint16), metadata={"axes": "YZX"})
    for name, message in [("cut.tif", "truncated"), ("codec.tif", "installed codecs cannot read"),
                          ("axes.tif", "cannot interpret its axes 'YZX'")]:
        assert run("restore", tmp_path / name, "-o", tmp_path / f"out_{name}", "-w", gray) == 1
        assert message in error_line(capsys)
        assert not (tmp_path / f"out_{name}").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_full_disk_leaves_nothing(tmp_path: Path, gray: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((300, 300), np.uint16))  # 600 x 600 out: 9 tiles of 256
    real = tifffile.imwrite

    def fill_up(path: Path, tiles: Iterator[np.ndarray], **kwargs: object) -> None:
        def failing() -> Iterator[np.ndarray]:
            yield next(tiles)  # one tile written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        real(path, failing(), **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", fill_up)
    assert run("restore", tmp_path / "a.tif", "-o", tmp_path / "out" / "o.tif", "-w", gray) == 1
    assert "No space left on device" in error_line(capsys)
    assert list((tmp_path / "out").iterdir()) == []


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """1 to 7 random bytes overwritten, and one time in five the rest cut off: the fuzz tests' mutation (TIFF,
    PNG and JPEG here; DICOM and Zarr in test_scientific_io)."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 8))):
        out[int(rng.integers(len(out)))] = int(rng.integers(256))
    return bytes(out[: int(rng.integers(len(out)))] if rng.random() < 0.2 else out)


def test_fuzzed_files_give_a_result_or_one_error(tmp_path: Path) -> None:
    """Mutated TIFF, PNG and JPEG bytes through the readers: an image or a SwinIRError, nothing else (the Zarr
    and DICOM readers: test_scientific_io)."""
    from PIL import Image as PILImage

    from swinir.images import decode_image
    from swinir.tiffs import open_tiff

    rng = np.random.default_rng(29)
    pixels = (rng.random((24, 20, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", pixels[..., 0].astype(np.uint16) * 100, tile=(16, 16), compression="zlib")
    seeds = {"tif": (tmp_path / "v.tif").read_bytes()}
    for fmt in ("png", "jpeg"):
        PILImage.fromarray(pixels).save(tmp_path / f"v.{fmt}")
        seeds[fmt] = (tmp_path / f"v.{fmt}").read_bytes()
    outcomes = {"ok": 0, "error": 0}
    for i in range(300):
        kind = ("tif", "png", "jpeg")[i % 3]
        data = mutate(rng, seeds[kind])
        try:
            if kind == "tif":
                (tmp_path / "m.tif").write_bytes(data)
                with open_tiff(tmp_path / "m.tif") as source:  # a header may claim a huge image: read a band
                    for plane in source.planes()[:4] if source is not None else []:
                        source.rows(plane, 0, min(source.height, 64))
            else:
                decode_image(data, max_pixels=100_000)
            outcomes["ok"] += 1
        except SwinIRError as err:
            assert "\n" not in str(err)
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_levels_pass_keeps_a_sample_not_the_bands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The levels pass reads the image band by band and keeps every k-th value: no band may stay alive after
    the next one is read (a strided view of each band kept them all: the whole image decoded, 800 MB of a
    20,000 x 20,000 uint16 scan)."""
    import weakref

    from swinir import streaming
    from swinir.tiffs import open_tiff

    plane = (np.random.default_rng(0).random((64, 40)) * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", plane)
    monkeypatch.setattr(streaming, "_SCAN_BYTES", 8 * 40 * 2)  # bands of 8 rows: 8 reads
    monkeypatch.setattr(streaming, "_SAMPLE_VALUES", 500)  # every 6th value kept
    alive: list[int] = []
    with open_tiff(tmp_path / "a.tif") as source:
        assert source is not None
        bands: list[weakref.ref] = []
        read = source.rows

        def rows(*args: object) -> np.ndarray:
            alive.append(sum(ref() is not None for ref in bands))
            out = read(*args)  # type: ignore[arg-type]
            bands.append(weakref.ref(out))
            return out

        monkeypatch.setattr(source, "rows", rows)
        low, high, sample = streaming._scan(source, source.planes())[0]
    assert len(alive) == 8 and max(alive) <= 1  # at most the band being replaced
    assert (low, high) == (plane.min(), plane.max())
    assert np.array_equal(sample, np.concatenate([plane[i : i + 8].ravel()[::6] for i in range(0, 64, 8)]))


def test_in_memory_restore_shares_the_budget_with_the_image(tmp_path: Path, gray: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A plane is restored in memory only when its arrays take at most half of --max-memory, and the tiles are
    then planned from what is left (before: the arrays plus a whole budget of activations, 1.19 GB of peak RSS
    for a 20,000 x 1,024 uint16 strip with --max-memory 0.5)."""
    from swinir import streaming
    from swinir.pipeline import RestoreOptions
    from swinir.tiffs import open_tiff

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((256, 256), np.uint16))
    model = swinir.load(gray)
    arrays = 4 * 256 * 256 * (1 + 2 * 4 * 2)  # input, output and weights at x2, float32: 4,456,448 bytes
    planned: list[int | None] = []
    plan = streaming.plan_restore
    monkeypatch.setattr(streaming, "plan_restore", lambda *a, **k: planned.append(k["max_memory"]) or plan(*a, **k))
    with open_tiff(tmp_path / "a.tif") as source:
        assert source is not None
        half = RestoreOptions(max_memory=int(1.5 * arrays), precision="fp32")
        assert streaming._tiling(model, source, half, "gray")[0] is not None  # over half: streamed in bands
        assert planned == []
        budget = RestoreOptions(max_memory=2 * arrays, precision="fp32")
        assert streaming._tiling(model, source, budget, "gray")[0] is None  # in memory...
        assert planned == [arrays]  # ...its tiles planned from the other half
