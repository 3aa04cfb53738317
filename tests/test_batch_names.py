"""`swinir restore` on folders as users have them: outputs that would share a name, sub-folders, `-o` given a
file name for several inputs, and flags that cannot work, refused before any work (issue 30)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import swinir
from swinir import SwinIRError
from swinir import cli as cli_module
from swinir.batch import plan_jobs
from swinir.cli import main
from swinir.images import read_image


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                             upsampler="pixelshuffledirect")
    path = tmp_path_factory.mktemp("w") / "tiny_x2.safetensors"
    swinir.save_safetensors(path, cfg.build(), cfg, {"task": "classical_sr"})
    return path


def save(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray((np.random.default_rng(seed).random((20, 27, 3)) * 255).astype(np.uint8)).save(path)


def restore(*args: str | Path) -> int:
    return main(["restore", *(str(a) for a in args), "--quiet"])


def names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------------
# 1. no output is lost to a shared name
# --------------------------------------------------------------------------------------------------


def test_sources_sharing_a_name_both_survive(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    src, out = tmp_path / "coll", tmp_path / "out"
    save(src / "a.jpg", 1)
    save(src / "a.png", 2)
    save(src / "b.png", 3)
    assert main(["restore", str(src), "-o", str(out), "-w", str(weights), "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert names(out) == ["a_jpg.png", "a_png.png", "b.png"]  # today: a.png alone, the other one lost
    assert printed.count("named a_jpg.png, a_png.png instead") == 1
    model = swinir.load(weights)
    for name, source in (("a_jpg.png", "a.jpg"), ("a_png.png", "a.png"), ("b.png", "b.png")):
        expected = swinir.restore(model, read_image(src / source).pixels)  # each output from its own source
        assert np.array_equal(np.asarray(PILImage.open(out / name)), expected), name
    assert f"restored 3 of 3 images into {out}\n" in printed

    # a rerun restores nothing and says so: kept outputs are not counted as restored
    (out / "b.png").unlink()
    assert main(["restore", str(src), "-o", str(out), "-w", str(weights)]) == 0
    assert f"restored 1 of 3 images into {out}; kept 2 existing outputs (--overwrite replaces them)" in (
        capsys.readouterr().out)


def test_names_compare_ignoring_case_and_videos_too(tmp_path: Path) -> None:
    for name in ("A.jpg", "a.png", "clip.mkv", "clip.mp4"):
        (tmp_path / name).write_bytes(b"")  # planning reads names only
    plan = plan_jobs([tmp_path], tmp_path / "out", video_format="mkv")
    assert sorted(job.dst.name for job in plan.jobs) == ["A_jpg.png", "a_png.png", "clip_mkv.mkv", "clip_mp4.mkv"]
    assert len(plan.notices) == 2
    # without --video-format the containers differ, so the plain names stand
    assert sorted(j.dst.name for j in plan_jobs([tmp_path], tmp_path / "out").jobs if j.is_video) == [
        "clip.mkv", "clip.mp4"]


def test_sources_still_sharing_a_name_are_refused_before_the_model_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    save(tmp_path / "x" / "a.png", 1)
    save(tmp_path / "y" / "a.png", 2)
    with pytest.raises(SwinIRError, match="would both be written to"):
        plan_jobs([tmp_path / "x", tmp_path / "y"], tmp_path / "out")
    monkeypatch.setattr(cli_module, "load_model", lambda args: pytest.fail("the model was loaded"))
    assert restore(tmp_path / "x", tmp_path / "y", "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'x' / 'a.png'} and {tmp_path / 'y' / 'a.png'}" in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# 3. flags that cannot work: one line, before the model loads and before the first file
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "message"), [
    (["--tile", "12"], "tile 12 is too small: use at least 16"),
    (["--tile-overlap", "-1"], "tile overlap must be >= 0"),
    (["--precision", "fp16"], "fp16 is for CUDA"),
    (["--scale", "0"], "--scale 0: use a whole number of at least 1"),
    (["--sigma", "-3"], "--sigma -3 is out of range"),
    (["--sigma", "300"], "--sigma 300 is out of range"),
    (["--quality", "500"], "--quality 500 is out of range"),
    (["--device", "gpu"], "--device gpu: not a device"),
    (["--max-memory", "0"], "--max-memory 0 must be positive"),
])
def test_bad_flags_are_refused_first_even_when_outputs_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        flags: list[str], message: str) -> None:
    save(tmp_path / "a.png", 1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"kept")  # today: skipped, exit 0, the flag never looked at
    monkeypatch.setattr(cli_module, "load_model", lambda args: pytest.fail("the model was loaded"))
    monkeypatch.setattr("swinir.batch.collect_inputs", lambda *a, **k: pytest.fail("the inputs were listed"))
    assert restore(tmp_path / "a.png", "-o", tmp_path / "out", *flags) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_rounded_tile_is_said_once(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save(tmp_path / "in" / "a.png", 1)
    save(tmp_path / "in" / "b.png", 2)
    assert restore(tmp_path / "in", "-o", tmp_path / "out", "-w", weights, "--tile", "20") == 0
    assert capsys.readouterr().out.count("tile 20 runs as 16 (a multiple of the window, 8)") == 1
    assert restore(tmp_path / "in", "-o", tmp_path / "o2", "-w", weights, "--tile", "16") == 0
    assert "runs as" not in capsys.readouterr().out  # a window multiple is not mentioned


# --------------------------------------------------------------------------------------------------
# 4. folders
# --------------------------------------------------------------------------------------------------


def test_recursive_keeps_the_layout_and_skips_its_own_output(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "photos"
    save(src / "a.png", 1)
    save(src / "trip" / "b.png", 2)
    save(src / "trip" / "day2" / "c.jpg", 3)
    save(src / ".cache" / "d.png", 4)  # hidden folders are not searched
    out = src / "restored"  # the output inside the input folder: never restored again
    for _ in range(2):
        assert restore(src, "-o", out, "-w", weights, "--recursive") == 0
        assert names(out) == ["a.png", "trip/b.png", "trip/day2/c.png"]
    assert np.asarray(PILImage.open(out / "trip" / "day2" / "c.png")).shape == (40, 54, 3)


def test_without_recursive_skipped_sub_folders_are_named_once(tmp_path: Path, weights: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "photos"
    save(src / "a.png", 1)
    save(src / "trip" / "b.png", 2)
    save(src / "more" / "deep" / "c.png", 3)
    (src / "empty").mkdir()
    assert restore(src, "-o", tmp_path / "out", "-w", weights) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "sub-folders not searched" in line]
    assert notes == [f"note: sub-folders not searched (add --recursive to restore them too): {src / 'more'}, "
                     f"{src / 'trip'}"]
    assert names(tmp_path / "out") == ["a.png"]
    # a folder whose images are all in sub-folders says how to reach them
    with pytest.raises(SwinIRError, match=r"its sub-folders do .*add --recursive"):
        plan_jobs([src / "more"], tmp_path / "out")


def test_a_file_name_for_several_inputs_is_refused(tmp_path: Path, weights: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    save(tmp_path / "a.png", 1)
    save(tmp_path / "b.png", 2)
    assert restore(tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "name.png", "-w", weights) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-o" in err and "names a file, but there are 2 inputs" in err
    assert not (tmp_path / "name.png").exists()  # today: a folder called name.png
    # one input may still name its output file
    assert restore(tmp_path / "a.png", "-o", tmp_path / "name.png", "-w", weights) == 0
    assert (tmp_path / "name.png").is_file()
