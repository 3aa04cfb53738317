"""Scientific formats beyond TIFF (issue 29): Zarr / OME-Zarr out and in; DICOM; memory bounded when streaming.

Files are made here with tifffile, zarr and pydicom; models are the tiny random SwinIRs of test_scientific.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from swinir import streaming
from test_scientific import SMALL_BUDGET, error_line, ome_stack, run, tiny


@pytest.fixture(scope="module")
def gray(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("w") / "gray_x2.safetensors", 1)


# ----------------------------------------------------------------------------------------------- Zarr


def test_ome_stack_to_ome_zarr_streamed_equals_the_tiff_output(tmp_path: Path, gray: Path) -> None:
    """ZCYX OME-TIFF over the memory budget -> OME-Zarr: NGFF 0.5 axes c, z, y, x (NGFF's order), pixel sizes
    halved in X/Y (0.25 -> 0.125 um) and kept in Z, every plane equal to the streamed TIFF output's."""
    ome_stack(tmp_path / "s.ome.tif")
    for out in ("o.ome.tif", "o.zarr"):
        assert run("restore", tmp_path / "s.ome.tif", "-o", tmp_path / out, "-w", gray, *SMALL_BUDGET) == 0
    group = zarr.open_group(tmp_path / "o.zarr", mode="r")
    array = group["0"]
    assert array.shape == (2, 3, 48, 80) and array.dtype == np.uint8
    assert array.metadata.dimension_names == ("c", "z", "y", "x")
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert group.attrs["ome"]["version"] == "0.5"
    assert [(a["name"], a["type"], a.get("unit")) for a in multiscale["axes"]] == [
        ("c", "channel", None), ("z", "space", "micrometer"), ("y", "space", "micrometer"),
        ("x", "space", "micrometer")]
    assert multiscale["datasets"] == [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1.0, 1.5, 0.125, 0.125]}]}]
    note = group.attrs["swinir"]
    assert "gray_x2.safetensors, x2" in note["note"] and 'Name="GFP"' in note["ome_xml"]
    assert np.array_equal(array[:], tifffile.imread(tmp_path / "o.ome.tif").transpose(1, 0, 2, 3))


def test_zarr_input_ngff_04_round_trips_to_tiff(tmp_path: Path, gray: Path) -> None:
    """An OME-Zarr 0.4 (Zarr v2) image made with zarr itself: read band by band, its axes kept, its 0.5 um
    pixels halved into resolution tags (0.25 um = 40,000 px/cm), pixels as restoring the same data from TIFF."""
    stack = (np.random.default_rng(8).random((2, 30, 44)) * 4000).astype(np.uint16)
    group = zarr.open_group(tmp_path / "in.zarr", mode="w", zarr_format=2)
    group.create_array("0", data=stack, chunks=(1, 16, 16))
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "z", "type": "space", "unit": "micrometer"}, {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.5]}]}]}]
    tifffile.imwrite(tmp_path / "same.tif", stack, metadata={"axes": "ZYX"})
    assert run("restore", tmp_path / "in.zarr", "-o", tmp_path / "out.tif", "-w", gray, *SMALL_BUDGET) == 0
    assert run("restore", tmp_path / "same.tif", "-o", tmp_path / "want.tif", "-w", gray, *SMALL_BUDGET) == 0
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.series[0].axes == "ZYX" and tif.series[0].shape == (2, 60, 88)
        assert tif.pages[0].tags["XResolution"].value == (40000, 1) and tif.pages[0].tags["ResolutionUnit"].value == 3
        out = tif.asarray()
    assert np.array_equal(out, tifffile.imread(tmp_path / "want.tif"))


def test_zarr_refusals_and_no_partial_output(tmp_path: Path, gray: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "a.png")
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "a.zarr", "-w", gray) == 1
    assert "Zarr is read and written for TIFF or Zarr images only" in error_line(capsys)
    zarr.open_group(tmp_path / "empty.zarr", mode="w")
    assert run("restore", tmp_path / "empty.zarr", "-o", tmp_path / "e.tif", "-w", gray) == 1
    assert "a Zarr group without an image" in error_line(capsys)
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((300, 300), np.uint16))
    real = streaming.write_zarr

    def fill_up(path: Path, tiles: Iterator[np.ndarray], meta: object) -> None:
        def failing() -> Iterator[np.ndarray]:
            yield next(tiles)  # one chunk written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        real(path, failing(), meta)  # type: ignore[arg-type]

    monkeypatch.setattr(streaming, "write_zarr", fill_up)
    assert run("restore", tmp_path / "b.tif", "-o", tmp_path / "out" / "b.zarr", "-w", gray) == 1
    assert "No space left on device" in error_line(capsys)
    assert list((tmp_path / "out").iterdir()) == []  # neither the store nor its temporary folder
