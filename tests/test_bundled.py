"""The models shipped in the package: they load, and beat the baseline on a Set5 image by a clear margin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import swinir
from conftest import shared_path
from swinir.bundled import bundled_model, bundled_models
from swinir.cli import main
from swinir.degradations import add_gaussian_noise, imresize, jpeg_compress
from swinir.metrics import psnr, quantize

# Margins (dB) each bundled model must clear over its baseline on the image below; the measured gains on the
# whole benchmark sets are in docs/bundled_models.md.
MARGIN = {"sr2": 1.0, "sr4": 0.3, "denoise": 5.0, "jpeg": 0.3}


def require(task: str, scale: int | None = None) -> swinir.SwinIR:
    if not bundled_models():
        pytest.fail("no bundled models in src/swinir/weights: the package must ship them")
    return swinir.load(bundled_model(task, scale).path)


def set5(name: str) -> np.ndarray:
    return np.asarray(PILImage.open(shared_path("datasets", "Set5", "HR", f"{name}.png")).convert("RGB"))


@pytest.mark.parametrize("scale", [2, 4])
def test_bundled_sr_beats_bicubic(scale: int) -> None:
    model = require("sr", scale)
    hr = set5("bird")
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    lr = np.asarray(PILImage.open(shared_path("datasets", "Set5", "LR_bicubic", f"X{scale}", f"birdx{scale}.png")))
    out = swinir.restore(model, lr)
    bicubic = np.clip(np.round(imresize(lr.astype(np.float64), scale)), 0, 255).astype(np.uint8)
    gain = psnr(out, hr, border=scale, y_channel=True) - psnr(bicubic, hr, border=scale, y_channel=True)
    assert gain > MARGIN[f"sr{scale}"], f"x{scale}: only {gain:.2f} dB over bicubic"


def test_bundled_denoiser_beats_the_noisy_input() -> None:
    model = require("denoise")
    clean = set5("baby")[128:384, 128:384]
    noisy = add_gaussian_noise(clean.astype(np.float64) / 255, 25, seed=0)
    x = swinir.restore(model, __import__("torch").from_numpy(noisy).permute(2, 0, 1)[None].float())
    out = quantize(x[0].permute(1, 2, 0).numpy())
    gain = psnr(out, clean) - psnr(quantize(noisy), clean)
    assert gain > MARGIN["denoise"], f"only {gain:.2f} dB over the noisy input"


def test_bundled_jpeg_model_beats_the_jpeg_input() -> None:
    model = require("jpeg")
    clean = set5("butterfly")
    compressed = jpeg_compress(clean, 10)
    out = swinir.restore(model, compressed)
    gain = psnr(out, clean) - psnr(compressed, clean)
    assert gain > MARGIN["jpeg"], f"only {gain:.2f} dB over the JPEG input"


def test_restore_with_no_weights_uses_the_bundled_x4_model(tmp_path: Path) -> None:
    require("sr", 4)
    src = Path(__file__).resolve().parents[1] / "examples" / "astronaut_lr.png"
    assert main(["restore", str(src), "-o", str(tmp_path), "--quiet"]) == 0
    assert PILImage.open(tmp_path / "astronaut_lr.png").size == (512, 512)
    assert main(["models"]) == 0


def test_manifest_entries_are_complete() -> None:
    models = bundled_models()
    assert {(m.task, m.scale) for m in models} >= {("sr", 2), ("sr", 4), ("denoise", 1), ("jpeg", 1)}
    for m in models:
        assert m.path.stat().st_size < 5_000_000
        assert m.training["iterations"] > 0 and m.quality, m.name
