"""`swinir restore` end to end: outputs, image modes, and bad input that must not stop a batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import swinir
from swinir.cli import main


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                             upsampler="pixelshuffledirect")
    path = tmp_path_factory.mktemp("w") / "tiny_x2.safetensors"
    swinir.save_safetensors(path, cfg.build(), cfg, {"task": "classical_sr"})
    return path


def rgb(h: int = 20, w: int = 27, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def run(*args: str | Path) -> int:
    return main([str(a) for a in args] + ["--quiet"])


def test_restore_one_image_equals_the_library(tmp_path: Path, weights: Path) -> None:
    img = rgb()
    PILImage.fromarray(img).save(tmp_path / "a.png")
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", weights) == 0
    out = np.asarray(PILImage.open(tmp_path / "out" / "a.png"))
    assert out.shape == (40, 54, 3)
    model = swinir.load(weights)
    assert np.array_equal(out, swinir.restore(model, img, precision="auto"))  # the CLI's default precision
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "fp32", "--weights", weights, "--precision", "fp32") == 0
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "fp32" / "a.png")), swinir.restore(model, img))
    # a single input with an image file name as -o writes exactly there
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "b.png", "--weights", weights) == 0
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "b.png")), out)


def test_modes_gray_rgba_and_16bit(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(rgb()[..., 0]).save(src / "gray.png")
    rgba = np.dstack([rgb(), np.full((20, 27), 200, np.uint8)])
    PILImage.fromarray(rgba).save(src / "alpha.png")
    PILImage.fromarray((np.random.default_rng(1).random((20, 27)) * 65535).astype(np.uint16)).save(src / "deep.png")
    assert main(["restore", str(src), "-o", str(tmp_path / "out"), "--weights", str(weights)]) == 0
    assert "converted gray image to RGB" in capsys.readouterr().out.replace("grey", "gray")
    gray = PILImage.open(tmp_path / "out" / "gray.png")
    assert gray.mode == "L" and gray.size == (54, 40)  # gray in, gray out
    alpha = np.asarray(PILImage.open(tmp_path / "out" / "alpha.png"))
    assert alpha.shape == (40, 54, 4) and np.all(alpha[..., 3] == 200)  # constant alpha stays constant
    deep = swinir.images.read_image(tmp_path / "out" / "deep.png")
    assert deep.bit_depth == 16 and deep.pixels.shape == (40, 54) and deep.pixels.max() > 255


def test_bad_files_are_reported_and_the_batch_goes_on(tmp_path: Path, weights: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(rgb()).save(src / "good.png")
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_bytes(b"this is not an image at all")
    data = (src / "good.png").read_bytes()
    (src / "cut.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(out), "--weights", str(weights), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 3 and "empty.png" in err and "cut.png" in err and "text.jpg" in err
    assert "restored 1 of 4 images" in err
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # nothing half-written, no temp files


def test_existing_outputs_are_kept_unless_overwrite(tmp_path: Path, weights: Path) -> None:
    PILImage.fromarray(rgb()).save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    assert run("restore", tmp_path / "a.png", "-o", out, "--weights", weights) == 0
    assert (out / "a.png").read_bytes() == b"keep me"
    assert run("restore", tmp_path / "a.png", "-o", out, "--weights", weights, "--overwrite") == 0
    assert PILImage.open(out / "a.png").size == (54, 40)


def test_bad_weights_and_missing_inputs(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    PILImage.fromarray(rgb()).save(tmp_path / "a.png")
    (tmp_path / "w.pth").write_bytes(b"garbage")
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "o", "--weights", tmp_path / "w.pth") == 1
    assert "refused to load: not a plain PyTorch state dict" in capsys.readouterr().err
    assert run("restore", tmp_path / "nope.png", "-o", tmp_path / "o", "--weights", weights) == 1
    assert "no such file or folder" in capsys.readouterr().err
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "o", "--weights", weights, "--tile", "3") == 1
    assert "tile 3 is too small: use at least 16" in capsys.readouterr().err


def test_tile_bar_only_for_tiled_images(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An image restored in one model call shows no tile bar stuck at "0tile"; a tiled one counts its tiles."""
    PILImage.fromarray(rgb(20, 27)).save(tmp_path / "small.png")
    assert main(["restore", str(tmp_path / "small.png"), "-o", str(tmp_path / "a"), "--weights", str(weights)]) == 0
    err = capsys.readouterr().err
    assert "restore" in err and "tile" not in err  # the file bar, no tile bar
    PILImage.fromarray(rgb(40, 40)).save(tmp_path / "big.png")
    assert main(["restore", str(tmp_path / "big.png"), "-o", str(tmp_path / "b"), "--weights", str(weights),
                 "--tile", "16", "--tile-overlap", "8"]) == 0
    # padded to 48x48: tiles at 0, 8, ..., 32 on each side (stride 8), 5 x 5 = 25 model calls
    assert "0/25 [" in capsys.readouterr().err  # the bar knows its total from the first draw
