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
from test_scientific import SMALL_BUDGET, error_line, mutate, ome_stack, run, tiny


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
    assert ".zarr output is made from TIFF, Zarr or DICOM inputs only" in error_line(capsys)
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


# ----------------------------------------------------------------------------------------------- DICOM


MULTI_FRAME_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture Image Storage


def dicom_slice(path: Path, stored: np.ndarray, *, slope: float, intercept: float, bits_stored: int,
                photometric: str = "MONOCHROME2", sop_class: str = "1.2.840.10008.5.1.4.1.1.2") -> str:
    """A CT image storage file (or another ``sop_class``; frames x rows x columns for a multi-frame one) made
    with pydicom; returns its SOP Instance UID."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = sop_class, uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.5"
    ds.Modality, ds.PatientName, ds.ImageType = "CT", "Test^Phantom", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelSpacing, ds.RescaleSlope, ds.RescaleIntercept = [0.7, 0.6], slope, intercept
    ds.set_pixel_data(stored, photometric, bits_stored, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return uid


def test_dicom_derived_output_respects_the_rescale(tmp_path: Path, gray: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """One CT slice in Hounsfield units, stored two ways (unsigned 12-bit with intercept -1024; signed 16-bit
    with slope 0.5): restored alike in HU, each written back through its own rescale as a derived instance."""
    import pydicom

    from swinir.levels import full_range
    from test_scientific import expected

    hu = np.round(np.random.default_rng(9).random((40, 36)) * 2500 - 1000)
    uid = dicom_slice(tmp_path / "a.dcm", (hu + 1024).astype(np.uint16), slope=1.0, intercept=-1024.0,
                      bits_stored=12)
    dicom_slice(tmp_path / "b.dcm", (2 * hu).astype(np.int16), slope=0.5, intercept=0.0, bits_stored=16)
    for name in ("a", "b"):
        assert run("restore", tmp_path / f"{name}.dcm", "-o", tmp_path / f"{name}_x2.dcm", "-w", gray) == 0
    assert "to 0..4095, the stored range of the DICOM's BitsStored" in capsys.readouterr().out  # a's 12 bits
    a, b = (pydicom.dcmread(tmp_path / f"{name}_x2.dcm") for name in ("a", "b"))
    hu_a = a.pixel_array * float(a.RescaleSlope) + float(a.RescaleIntercept)
    hu_b = b.pixel_array * float(b.RescaleSlope) + float(b.RescaleIntercept)
    levels = full_range(np.float32, hu.min(), hu.max())  # float data beyond [0, 1]: its own range
    want = np.clip(np.round(expected(gray, hu.astype(np.float32), levels) + 1024), 0, 4095) - 1024
    inside = (hu_a > -1024) & (hu_a < 3071)  # where a's 12 stored bits did not clip the random model's output
    assert np.array_equal(hu_a, want) and inside.mean() > 0.3 and np.abs(hu_a - hu_b)[inside].max() <= 0.5 + 1e-3
    assert (a.Rows, a.Columns, a.BitsStored, a.PixelRepresentation, b.PixelRepresentation) == (80, 72, 12, 0, 1)
    assert a.SOPInstanceUID != uid and a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.SeriesInstanceUID != "1.2.3.4.5" and a.StudyInstanceUID == "1.2.3.4" and a.PatientName == "Test^Phantom"
    assert list(a.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"] and "x2" in a.DerivationDescription
    assert [float(v) for v in a.PixelSpacing] == [0.35, 0.3]
    assert a.SourceImageSequence[0].ReferencedSOPInstanceUID == uid


def test_dicom_to_tiff_and_refusals(tmp_path: Path, gray: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pydicom
    from pydicom.encaps import encapsulate

    stored = (np.random.default_rng(10).random((24, 20)) * 4000).astype(np.uint16)
    dicom_slice(tmp_path / "one.dcm", stored, slope=1.0, intercept=-1024.0, bits_stored=12)
    assert run("restore", tmp_path / "one.dcm", "-o", tmp_path / "one.tif", "-w", gray) == 0
    with tifffile.TiffFile(tmp_path / "one.tif") as tif:  # HU as float32; 0.35 x 0.3 mm pixels in px/cm
        assert tif.series[0].dtype == np.float32 and tif.series[0].shape == (48, 40)
        x_res, y_res = tif.pages[0].tags["XResolution"].value, tif.pages[0].tags["YResolution"].value
    assert x_res[0] / x_res[1] == pytest.approx(10 / 0.3) and y_res[0] / y_res[1] == pytest.approx(10 / 0.35)
    dicom_slice(tmp_path / "rgb.dcm", np.zeros((8, 8, 3), np.uint8), slope=1, intercept=0, bits_stored=8,
                photometric="RGB")
    dicom_slice(tmp_path / "jls.dcm", np.zeros((8, 8), np.uint16), slope=1, intercept=0, bits_stored=12)
    ds = pydicom.dcmread(tmp_path / "jls.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.80"  # JPEG-LS lossless: no decoder installed here
    ds.PixelData = encapsulate([b"\xff\xd8 not really JPEG-LS"])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "jls.dcm", enforce_file_format=True)
    (tmp_path / "text.dcm").write_text("not a DICOM")
    tifffile.imwrite(tmp_path / "c.tif", stored)
    for name, out, message in [("rgb.dcm", "r.dcm", "a colour DICOM (RGB)"),
                               ("jls.dcm", "j.dcm", "which the installed decoders cannot read"),
                               ("text.dcm", "t.dcm", "not a DICOM file"),
                               ("c.tif", "c.dcm", "a DICOM output is derived from a DICOM input, not from .tif"),
                               ("one.dcm", "one.png", "a DICOM input is written as .tif or .zarr (or .dcm), not .png")]:
        assert run("restore", tmp_path / name, "-o", tmp_path / out, "-w", gray) == 1, name
        assert message in error_line(capsys), name
        assert not (tmp_path / out).exists()


def shared_extremes_frames(seed: int) -> np.ndarray:
    """3 frames of 24 x 24 random 12-bit values, each holding 0 and 4000: a frame alone has the levels of the
    stack (float modality values take their data's minimum..maximum, one set for a stack as for a TIFF stack)."""
    frames = (np.random.default_rng(seed).random((3, 24, 24)) * 4000).astype(np.uint16)
    frames[:, 0, 0], frames[:, 0, 1] = 0, 4000
    return frames


def test_multi_frame_dicom_frames_are_restored_as_single_frames(tmp_path: Path, gray: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A multi-frame secondary capture (intercept -1024): every derived frame equals the derived DICOM of that
    frame alone and the engine's restore of it; NumberOfFrames kept, spacing halved, a new instance, DERIVED;
    as TIFF, an IYX stack of float32 modality values. Some of the frames (--pages) cannot be a derived DICOM."""
    import pydicom

    from swinir.levels import full_range
    from test_scientific import expected

    frames = shared_extremes_frames(12)
    kind = {"slope": 1.0, "intercept": -1024.0, "bits_stored": 12, "sop_class": MULTI_FRAME_WORD_SC}
    uid = dicom_slice(tmp_path / "mf.dcm", frames, **kind)  # type: ignore[arg-type]
    assert run("restore", tmp_path / "mf.dcm", "-o", tmp_path / "mf_x2.dcm", "-w", gray) == 0
    for i, frame in enumerate(frames):
        dicom_slice(tmp_path / f"f{i}.dcm", frame, **kind)  # type: ignore[arg-type]
        assert run("restore", tmp_path / f"f{i}.dcm", "-o", tmp_path / f"f{i}_x2.dcm", "-w", gray) == 0
    out = pydicom.dcmread(tmp_path / "mf_x2.dcm")
    assert out.NumberOfFrames == 3 and out.pixel_array.shape == (3, 48, 48) and (out.Rows, out.Columns) == (48, 48)
    for i, frame in enumerate(out.pixel_array):
        assert np.array_equal(frame, pydicom.dcmread(tmp_path / f"f{i}_x2.dcm").pixel_array), i
    levels = full_range(np.float32, -1024.0, 2976.0)  # the stack's (and each frame's) HU range
    want = np.clip(np.round(expected(gray, frames[1] - np.float32(1024), levels) + 1024), 0, 4095)
    assert np.array_equal(out.pixel_array[1], want)
    assert out.SOPInstanceUID != uid and out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.SOPClassUID == MULTI_FRAME_WORD_SC and out.SourceImageSequence[0].ReferencedSOPInstanceUID == uid
    assert list(out.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
    assert [float(v) for v in out.PixelSpacing] == [0.35, 0.3]
    assert run("restore", tmp_path / "mf.dcm", "-o", tmp_path / "mf.tif", "-w", gray) == 0
    hu = tifffile.imread(tmp_path / "mf.tif")
    inside = (out.pixel_array > 0) & (out.pixel_array < 4095)
    assert hu.dtype == np.float32 and hu.shape == (3, 48, 48) and inside.mean() > 0.3
    assert np.abs(hu + 1024 - out.pixel_array)[inside].max() <= 0.5 + 1e-3
    capsys.readouterr()
    assert run("restore", tmp_path / "mf.dcm", "-o", tmp_path / "one.dcm", "-w", gray, "--pages", "1") == 1
    assert "1 of its 3 frames chosen, but a derived DICOM keeps every frame" in error_line(capsys)
    assert not (tmp_path / "one.dcm").exists()


def enhanced_ct(path: Path, classic: Path, rescales: list[tuple[float, float]]) -> None:
    """The classic multi-frame ``classic`` made an Enhanced CT image: rescale in the Pixel Value Transformation
    (shared when one is given, else one per frame), Pixel Spacing in per-frame Pixel Measures, a CT frame type
    per frame; none of them at the top level; a single-valued Image Type."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(classic)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
    ds.ImageType = "ORIGINAL"  # one value: a string to pydicom
    transforms = []
    for slope, intercept in rescales:
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slope, intercept, "HU"
        transforms.append(Sequence([transform]))
    shared, per_frame = Dataset(), []
    if len(transforms) == 1:
        shared.PixelValueTransformationSequence = transforms[0]
    for i in range(int(ds.NumberOfFrames)):
        item, measures, frame_type = Dataset(), Dataset(), Dataset()
        measures.PixelSpacing, measures.SliceThickness = list(ds.PixelSpacing), 1.0
        frame_type.FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
        item.PixelMeasuresSequence, item.CTImageFrameTypeSequence = Sequence([measures]), Sequence([frame_type])
        if len(transforms) > 1:
            item.PixelValueTransformationSequence = transforms[i]
        per_frame.append(item)
    ds.SharedFunctionalGroupsSequence, ds.PerFrameFunctionalGroupsSequence = Sequence([shared]), Sequence(per_frame)
    del ds.PixelSpacing, ds.RescaleSlope, ds.RescaleIntercept
    ds.save_as(path, enforce_file_format=True)


def test_enhanced_multi_frame_dicom_keeps_its_functional_groups_right(tmp_path: Path, gray: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """An Enhanced CT whose rescale and spacing live in functional groups restores as the same frames with the
    rescale and spacing at the top level do; its per-frame spacing is halved and its frame types DERIVED.
    Frames with different rescales are refused in one line."""
    import pydicom

    frames = shared_extremes_frames(13)
    dicom_slice(tmp_path / "classic.dcm", frames, slope=1.0, intercept=-1024.0, bits_stored=12,
                sop_class=MULTI_FRAME_WORD_SC)
    enhanced_ct(tmp_path / "enhanced.dcm", tmp_path / "classic.dcm", [(1.0, -1024.0)])
    enhanced_ct(tmp_path / "rescales.dcm", tmp_path / "classic.dcm", [(1.0, -1024.0), (1.0, -1024.0), (2.0, 0.0)])
    for name in ("classic", "enhanced"):
        assert run("restore", tmp_path / f"{name}.dcm", "-o", tmp_path / f"{name}_x2.dcm", "-w", gray) == 0
    classic, out = (pydicom.dcmread(tmp_path / f"{name}_x2.dcm") for name in ("classic", "enhanced"))
    assert np.array_equal(out.pixel_array, classic.pixel_array) and out.NumberOfFrames == 3
    assert list(out.ImageType) == ["DERIVED", "SECONDARY"]
    assert "PixelSpacing" not in out and out.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[
        0].RescaleIntercept == -1024
    for item in out.PerFrameFunctionalGroupsSequence:
        assert [float(v) for v in item.PixelMeasuresSequence[0].PixelSpacing] == [0.35, 0.3]
        assert list(item.CTImageFrameTypeSequence[0].FrameType) == ["DERIVED", "SECONDARY", "AXIAL", "NONE"]
    assert run("restore", tmp_path / "enhanced.dcm", "-o", tmp_path / "enhanced.tif", "-w", gray) == 0
    with tifffile.TiffFile(tmp_path / "enhanced.tif") as tif:  # spacing from the per-frame groups: 0.35 x 0.3 mm
        x_res = tif.pages[0].tags["XResolution"].value
    assert x_res[0] / x_res[1] == pytest.approx(10 / 0.3)
    capsys.readouterr()
    assert run("restore", tmp_path / "rescales.dcm", "-o", tmp_path / "r.dcm", "-w", gray) == 1
    assert "its frames have 2 different rescales" in error_line(capsys) and not (tmp_path / "r.dcm").exists()


def derive(path: Path, out: Path, scale: int) -> object:
    """The derived DICOM that :func:`swinir.dicoms.write_dicom` makes of ``path`` at ``scale`` from each frame
    repeated ``scale`` times along both axes (no model: the geometry is what is checked), read back."""
    import pydicom

    from swinir.dicoms import open_dicom, write_dicom
    from swinir.tiffs import OutputMeta

    with open_dicom(path) as source:
        frames = np.asarray(source.array).reshape(-1, *source.shape[-2:])
        shape = (*source.shape[:-2], source.shape[-2] * scale, source.shape[-1] * scale)
        meta = OutputMeta(source.axes, shape, np.dtype(np.float32), {"software": "test"})
        write_dicom(out, (f.repeat(scale, 0).repeat(scale, 1) for f in frames), meta, source, scale)
    return pydicom.dcmread(out)


def test_derived_dicom_moves_image_position_to_the_new_first_pixel(tmp_path: Path) -> None:
    """Image Position (Patient) is the centre of the first pixel: after x s it moves back by (1 - 1/s) / 2 of an
    old pixel along the row direction (orientation[:3], spacing[1]) and the column direction (orientation[3:],
    spacing[0]); unchanged at x1 or without an orientation; written as valid DS (at most 16 characters)."""
    import pydicom

    dicom_slice(tmp_path / "a.dcm", np.zeros((6, 5), np.uint16), slope=1.0, intercept=0.0, bits_stored=12)
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    ds.PixelSpacing, ds.ImagePositionPatient = [0.5, 0.8], [10, 20, 30]  # rows 0.5 mm apart, columns 0.8 mm
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.save_as(tmp_path / "axial.dcm")
    third = 1 / 3
    row, column = [2 * third, 2 * third, third], [-2 * third, third, 2 * third]  # orthonormal, oblique
    ds.ImageOrientationPatient = [f"{v:.12f}" for v in row + column]
    ds.save_as(tmp_path / "oblique.dcm")
    del ds.ImageOrientationPatient
    ds.save_as(tmp_path / "bare.dcm")

    def position(out: object) -> list[float]:
        values = out["ImagePositionPatient"].value  # type: ignore[index]
        assert all(len(str(v)) <= 16 for v in values)
        return [float(v) for v in values]

    # x2: 10 - 0.8 * 0.25 along x (the row direction), 20 - 0.5 * 0.25 along y (the column direction)
    assert position(derive(tmp_path / "axial.dcm", tmp_path / "axial_x2.dcm", 2)) == [9.8, 19.875, 30.0]
    want = [p - 0.375 * (0.8 * r + 0.5 * c) for p, r, c in zip([10, 20, 30], row, column, strict=True)]
    assert want == pytest.approx([9.925, 19.7375, 29.775], abs=1e-12)  # x4: (1 - 1/4) / 2 = 0.375
    assert position(derive(tmp_path / "oblique.dcm", tmp_path / "oblique_x4.dcm", 4)) == pytest.approx(want, abs=1e-9)
    assert position(derive(tmp_path / "axial.dcm", tmp_path / "axial_x1.dcm", 1)) == [10.0, 20.0, 30.0]
    assert position(derive(tmp_path / "bare.dcm", tmp_path / "bare_x2.dcm", 2)) == [10.0, 20.0, 30.0]


def test_enhanced_dicom_moves_each_plane_position(tmp_path: Path) -> None:
    """An Enhanced CT: each frame's Plane Position moves along its own Plane Orientation when it has one, else
    the shared one, by its Pixel Measures' spacing (rows 0.7 mm apart, columns 0.6 mm); none at the top level."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    dicom_slice(tmp_path / "classic.dcm", np.zeros((3, 6, 5), np.uint16), slope=1.0, intercept=0.0,
                bits_stored=12, sop_class=MULTI_FRAME_WORD_SC)
    enhanced_ct(tmp_path / "enhanced.dcm", tmp_path / "classic.dcm", [(1.0, 0.0)])
    ds = pydicom.dcmread(tmp_path / "enhanced.dcm")
    sagittal, axial = Dataset(), Dataset()
    sagittal.ImageOrientationPatient, axial.ImageOrientationPatient = [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 1, 0]
    ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence = Sequence([sagittal])
    ds.PerFrameFunctionalGroupsSequence[2].PlaneOrientationSequence = Sequence([axial])
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        plane = Dataset()
        plane.ImagePositionPatient = [100, -50, 10 * i]
        item.PlanePositionSequence = Sequence([plane])
    ds.save_as(tmp_path / "enhanced.dcm")
    out = derive(tmp_path / "enhanced.dcm", tmp_path / "enhanced_x2.dcm", 2)
    positions = [[float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]  # type: ignore[attr-defined]
                 for item in out.PerFrameFunctionalGroupsSequence]  # type: ignore[attr-defined]
    # sagittal: 0.25 * 0.6 along +y, 0.25 * 0.7 along -z; the axial frame: 0.25 * 0.6 along +x, 0.25 * 0.7 along +y
    assert positions == [[100, -50.15, 0.175], [100, -50.15, 10.175], [99.85, -50.175, 20]]
    assert "ImagePositionPatient" not in out  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------- fuzz


def test_fuzzed_dicom_files_give_a_result_or_one_error(tmp_path: Path) -> None:
    """40 mutated DICOMs through the reader and, where it reads them, the writer of the derived copy: an image
    or one SwinIRError line, and none of pydicom's warnings about odd values reaching the user."""
    import warnings

    import pydicom

    from swinir.dicoms import open_dicom, write_dicom
    from swinir.errors import SwinIRError
    from swinir.tiffs import OutputMeta

    rng = np.random.default_rng(29)
    dicom_slice(tmp_path / "v.dcm", (rng.random((12, 10)) * 4000).astype(np.uint16), slope=1.0, intercept=-1024.0,
                bits_stored=12)
    no_uid = pydicom.dcmread(tmp_path / "v.dcm")
    del no_uid.SOPClassUID  # read fine, but a derived copy cannot reference it
    no_uid.save_as(tmp_path / "u.dcm")
    seed = (tmp_path / "v.dcm").read_bytes()
    files = [(tmp_path / "u.dcm").read_bytes(), seed] + [mutate(rng, seed) for _ in range(40)]
    outcomes = {"read": 0, "written": 0, "error": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for data in files:
            (tmp_path / "m.dcm").write_bytes(data)
            try:
                with open_dicom(tmp_path / "m.dcm") as source:
                    outcomes["read"] += 1
                    meta = OutputMeta("YX", source.shape, np.dtype(np.float32), {"software": "fuzz"})
                    write_dicom(tmp_path / "o.dcm", iter([source.array]), meta, source, 1)
                    outcomes["written"] += 1
            except SwinIRError as err:
                assert "\n" not in str(err)
                outcomes["error"] += 1
    assert [str(w.message) for w in caught] == []
    assert outcomes["written"] > 0 and outcomes["error"] > 10 and outcomes["read"] > outcomes["written"]
    with (pytest.raises(SwinIRError, match="no SOPClassUID, which a derived DICOM must reference"),
          open_dicom(tmp_path / "u.dcm") as source):
        write_dicom(tmp_path / "o.dcm", iter([source.array]), meta, source, 1)


def test_fuzzed_zarr_stores_give_a_result_or_one_error(tmp_path: Path) -> None:
    """40 damaged copies of a Zarr v2 (OME-Zarr 0.4) and a v3 store: chunk files and metadata (.zarray,
    .zattrs, zarr.json) mutated or removed, or a metadata value replaced by a wrong type or size. Each opens
    and gives its first band, or one SwinIRError line naming a Zarr array (not a TIFF)."""
    import json
    import shutil

    from swinir.errors import SwinIRError
    from swinir.zarrs import open_zarr

    rng = np.random.default_rng(29)
    pixels = (rng.random((40, 36)) * 60000).astype(np.uint16)
    for fmt in (2, 3):
        group = zarr.open_group(tmp_path / f"v{fmt}.zarr", mode="w", zarr_format=fmt)
        group.create_array("0", shape=pixels.shape, chunks=(16, 16), dtype=pixels.dtype)[:] = pixels
        group.attrs["multiscales"] = [{"axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                                       "datasets": [{"path": "0", "coordinateTransformations": [
                                           {"type": "scale", "scale": [0.5, 0.5]}]}]}]
    metadata = ("zarr.json", ".zarray", ".zattrs", ".zgroup")
    wrong = [0, -1, 2**40, 1.5, "x", None, [], {}, [1, 2, 3], "<f8", "complex64"]
    outcomes = {"ok": 0, "error": 0}
    for i in range(40):
        store = tmp_path / f"m{i}.zarr"
        shutil.copytree(tmp_path / f"v{2 + i % 2}.zarr", store)
        files = sorted(p for p in store.rglob("*") if p.is_file() and (p.name in metadata) == (i % 4 < 2))
        target = files[int(rng.integers(len(files)))]  # half of the time metadata, else a chunk
        choice = rng.random()
        if choice < 0.2:
            target.unlink()
        elif choice < 0.6 and target.name in metadata and target.stat().st_size > 2:  # not the v2 array's {}
            doc = json.loads(target.read_text())
            keys = sorted(doc)
            doc[keys[int(rng.integers(len(keys)))]] = wrong[int(rng.integers(len(wrong)))]
            target.write_text(json.dumps(doc))
        else:
            target.write_bytes(mutate(rng, target.read_bytes()))
        try:
            with open_zarr(store) as source:
                source.rows(source.planes()[0], 0, min(source.height, 64))
            outcomes["ok"] += 1
        except SwinIRError as err:
            assert "\n" not in str(err) and "TIFF" not in str(err)
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 10


# ----------------------------------------------------------------------------------------------- memory

CHILD = """
import json, resource, sys
from swinir.cli import main
import swinir.batch, swinir.streaming, tifffile, torch  # what restore imports, loaded before the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = main(sys.argv[1:])
print(json.dumps({"code": code, "grew_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base}))
"""


def test_a_streamed_restore_does_not_grow_with_the_image(tmp_path: Path) -> None:
    """Peak RSS of a child process (its own getrusage) restoring a 512-row and a 3072-row TIFF, both over a
    2 MB memory budget, hence streamed in bands: the peak may not grow with the height. An in-memory restore
    holds the plane's input, output and blending weights in float32 (12 bytes a pixel, 15.7 MB for the 2,560
    extra rows of 512 pixels); the streamed one must stay under half of that."""
    import json
    import subprocess
    import sys

    import torch

    import swinir

    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=1, img_size=16, window_size=8, depths=(2,), embed_dim=6, num_heads=(1,),
                             mlp_ratio=1.0, in_chans=1, upsampler="", resi_connection="1conv")
    swinir.save_safetensors(tmp_path / "dn.safetensors", cfg.build(), cfg, {"task": "gray_dn"})
    (tmp_path / "child.py").write_text(CHILD)
    rng = np.random.default_rng(11)
    grew = {}
    for rows in (512, 3072):  # uint8: levels need no pass over the data
        tifffile.imwrite(tmp_path / f"h{rows}.tif", (rng.random((rows, 512)) * 255).astype(np.uint8),
                         tile=(256, 256), compression="zlib")
        done = subprocess.run([sys.executable, str(tmp_path / "child.py"), "restore", str(tmp_path / f"h{rows}.tif"),
                               "-o", str(tmp_path / f"o{rows}.tif"), "-w", str(tmp_path / "dn.safetensors"),
                               "--max-memory", "0.002", "--tile", "64", "--tile-overlap", "16", "--threads", "1",
                               "--precision", "fp32", "--quiet"], capture_output=True, text=True, timeout=300)
        assert "streamed in bands of 64 rows" in done.stdout, done.stdout + done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["code"] == 0 and tifffile.imread(tmp_path / f"o{rows}.tif").shape == (rows, 512)
        grew[rows] = result["grew_kb"] * 1024
    assert grew[3072] - grew[512] < 0.5 * 12 * (3072 - 512) * 512, grew
