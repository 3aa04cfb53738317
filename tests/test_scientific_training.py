"""Training on one's own scientific images (issue 29, item 5): 16-bit and float32 TIFFs read on the scale
``swinir restore`` gives them, Poisson-Gaussian noise, and tiny training runs on TIFFs the tests make.

The noise is checked against the model's own moments (mean ``x``, variance ``a * x + b``) on flat images, with
the expected numbers worked out by hand; the readers against hand-mapped values (12-bit data / 4095...).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

import swinir
from swinir import SwinIRError
from swinir.datasets import read_training_image
from swinir.degradations import add_poisson_gaussian_noise
from swinir.training import parse_config, train
from swinir.training.data import TrainDataset, load_validation
from swinir.training.tasks import draw_gain, fixed_gain, task_behaviour
from test_training import TINY_MODEL, tiny_raw

GRAY_DENOISER = {**TINY_MODEL, "upscale": 1, "in_chans": 1, "upsampler": ""}


# ----------------------------------------------------------------------------------------------- noise


@pytest.mark.parametrize(("x", "gain", "read_sigma", "variance"), [
    (0.5, 0.01, 0.02, 0.0054),  # 0.01 * 0.5 + 0.02**2 = 0.005 + 0.0004
    (0.1, 0.01, 0.02, 0.0014),  # 0.001 + 0.0004: the variance follows the signal
    (0.8, 0.002, 0.0, 0.0016),  # shot noise alone: 0.002 * 0.8
    (0.0, 0.01, 0.03, 0.0009),  # no light: read noise alone, 0.03**2
])
def test_poisson_gaussian_moments_on_a_flat_image(x: float, gain: float, read_sigma: float, variance: float) -> None:
    n = 1_000_000
    noisy = add_poisson_gaussian_noise(np.full((1000, 1000), x), gain, read_sigma, np.random.default_rng(7))
    assert noisy.dtype == np.float32 and noisy.shape == (1000, 1000)
    # the mean's standard error is sqrt(var / n); the sample variance's about var * sqrt(2 / n) (0.14 %)
    assert abs(noisy.mean(dtype=np.float64) - x) < 5 * math.sqrt(variance / n)
    assert noisy.var(dtype=np.float64) == pytest.approx(variance, rel=0.01)


def test_poisson_gaussian_is_seeded_and_counts_photons() -> None:
    clean = np.linspace(0, 1, 4096).reshape(64, 64)
    first = add_poisson_gaussian_noise(clean, 0.01, 0.01, np.random.default_rng(3))
    assert np.array_equal(first, add_poisson_gaussian_noise(clean, 0.01, 0.01, np.random.default_rng(3)))
    assert not np.array_equal(first, add_poisson_gaussian_noise(clean, 0.01, 0.01, np.random.default_rng(4)))
    counts = add_poisson_gaussian_noise(clean, 0.25, 0.0, np.random.default_rng(3)) / 0.25
    assert np.allclose(counts, np.round(counts), atol=1e-5)  # without read noise: whole photons of 0.25 each
    with pytest.raises(SwinIRError, match="gain >= 0"):
        add_poisson_gaussian_noise(clean, -0.1, 0.0, np.random.default_rng(0))


def tiff_folder(folder: Path, dtype: str, count: int = 3, size: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Smooth gray TIFFs: uint16 holding 12-bit data (maximum 4000) or float32 in [0, 1]."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    images = []
    for i in range(count):
        smooth = 0.5 + 0.4 * np.sin(x / (4.0 + i) + rng.random() * 6) * np.cos(y / 5.0)
        image = (smooth * 4000).astype(np.uint16) if dtype == "uint16" else smooth.astype(np.float32)
        tifffile.imwrite(folder / f"cells{i}.tif", image, compression="zlib")
        images.append(image)
    return images


def denoise_raw(root: Path, **task: object) -> dict:
    return tiny_raw(root, model=GRAY_DENOISER, task={"name": "gray_dn", "scale": 1, **task})


def test_validation_noise_is_poisson_gaussian_at_the_middle_of_the_ranges(tmp_path: Path) -> None:
    """The config's shot_noise range selects the noise; validation takes the middle gain (0.02) and sigma (10):
    on a flat 12-bit patch of 2000 / 4095 the variance is 0.02 * 2000/4095 + (10/255)**2."""
    config = parse_config(denoise_raw(tmp_path, sigma=[5, 15], shot_noise=[0.01, 0.03]))
    flat = np.full((1024, 1024), 2000 / 4095, np.float32)
    lq = task_behaviour("gray_dn").degrade(flat, np.random.default_rng(0), config.task, 10.0)
    assert lq.var(dtype=np.float64) == pytest.approx(0.02 * 2000 / 4095 + (10 / 255) ** 2, rel=0.01)
    gaussian = parse_config(denoise_raw(tmp_path, sigma=[5, 15]))  # without it: Gaussian, whatever the signal
    lq = task_behaviour("gray_dn").degrade(flat, np.random.default_rng(0), gaussian.task, 10.0)
    assert lq.var(dtype=np.float64) == pytest.approx((10 / 255) ** 2, rel=0.01)
    for bad in ([0.03, 0.01], [-0.1, 0.1]):
        with pytest.raises(SwinIRError, match=r"task\.shot_noise must be"):
            parse_config(denoise_raw(tmp_path, shot_noise=bad))
    with pytest.raises(SwinIRError, match="for a denoising task"):
        parse_config(tiny_raw(tmp_path, task={"name": "classical_sr", "scale": 2, "shot_noise": [0.01, 0.02]}))


@pytest.mark.parametrize(("low", "high", "quartiles"), [
    (0.001, 0.1, (0.001 * 100**0.25, 0.01, 0.001 * 100**0.75)),  # two decades: log-uniform, the median the
    # geometric mean sqrt(0.001 * 0.1) = 0.01 and the quartiles 0.00316 and 0.0316 (a uniform median: 0.0505)
    (0.01, 0.03, (0.015, 0.02, 0.025)),  # ends a factor 3 apart: uniform
    (0.001, 0.01, (0.00325, 0.0055, 0.00775)),  # a factor 10 exactly: still uniform
    (0.0, 0.05, (0.0125, 0.025, 0.0375)),  # from 0: uniform (no logarithm of 0)
])
def test_shot_noise_gain_is_log_uniform_over_decades(low: float, high: float,
                                                     quartiles: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(29)
    gains = np.array([draw_gain(rng, low, high) for _ in range(40_001)])
    assert gains.min() >= low and gains.max() <= high
    # 40,001 draws: a quartile's standard error is under 1.2 % of these values (4 of them inside 5 %)
    assert np.quantile(gains, [0.25, 0.5, 0.75]) == pytest.approx(quartiles, rel=0.05)


@pytest.mark.parametrize(("low", "high", "gain"), [
    (1e-4, 1e-2, 1e-3),  # two decades, drawn log-uniformly: the geometric mean sqrt(1e-6), not 0.00505
    (0.001, 0.1, 0.01),  # the draw's median found above
    (0.01, 0.05, 0.03),  # a factor 5, drawn uniformly: the arithmetic middle
    (0.001, 0.01, 0.0055),  # a factor 10 exactly: still uniform
    (0.0, 0.05, 0.025),  # from 0: uniform
    (0.02, 0.02, 0.02),  # a single gain
])
def test_validation_gain_is_the_median_of_the_draw(tmp_path: Path, low: float, high: float, gain: float) -> None:
    """Validation's fixed gain is where the training draw's median lies, and the validation patch has it: on a
    flat patch of 0.5 with no read noise the variance is gain * 0.5."""
    assert fixed_gain(low, high) == pytest.approx(gain, rel=1e-12)
    config = parse_config(denoise_raw(tmp_path, sigma=[0, 0], shot_noise=[low, high]))
    flat = np.full((512, 512), 0.5, np.float32)
    lq = task_behaviour("gray_dn").degrade(flat, np.random.default_rng(3), config.task, 0.0)
    # 262,144 values: the variance's relative standard error is about sqrt(2 / n) = 0.3 % (Poisson: a bit more)
    assert lq.var(dtype=np.float64) == pytest.approx(gain * 0.5, rel=0.03)


def test_training_patches_draw_the_gain_from_the_shot_noise_range(tmp_path: Path) -> None:
    """A training patch (no fixed level) has read noise of sigma drawn from task.sigma, then shot noise of a
    gain drawn by draw_gain from task.shot_noise, both from the patch's generator in that order."""
    from swinir.training.tasks import poisson_gaussian_noise

    config = parse_config(denoise_raw(tmp_path, sigma=[0, 5], shot_noise=[0.001, 0.1]))
    flat = np.full((16, 16), 0.5, np.float32)
    lq = task_behaviour("gray_dn").degrade(flat, np.random.default_rng(11), config.task, None)
    rng = np.random.default_rng(11)
    sigma = rng.uniform(0, 5)
    assert np.array_equal(lq, poisson_gaussian_noise(flat, rng, draw_gain(rng, 0.001, 0.1), sigma))


# ----------------------------------------------------------------------------------------------- reading


def test_16_bit_and_float_tiffs_read_on_the_restore_scale(tmp_path: Path) -> None:
    twelve = np.array([[0, 1000], [4000, 4095]], np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", np.tile(twelve, (8, 8)))
    got = read_training_image(tmp_path / "a.tif", "gray")
    assert got.dtype == np.float32 and np.allclose(got[:2, :2], twelve / 4095, rtol=0, atol=1e-7)
    tifffile.imwrite(tmp_path / "b.tif", np.full((4, 4), 40000, np.uint16))  # 16 bits used: 0..65535
    assert read_training_image(tmp_path / "b.tif", "gray")[0, 0] == pytest.approx(40000 / 65535)
    tifffile.imwrite(tmp_path / "c.tif", np.array([[0.25, 0.75]], np.float32))  # inside [0, 1]: as it is
    assert read_training_image(tmp_path / "c.tif", "gray").tolist() == [[0.25, 0.75]]
    tifffile.imwrite(tmp_path / "d.tif", np.array([[-100.0, 0.0, 300.0]], np.float32))  # its own min..max
    assert np.allclose(read_training_image(tmp_path / "d.tif", "gray"), [[0.0, 0.25, 1.0]])
    rgb = np.zeros((4, 4, 3), np.uint16)
    rgb[..., 0] = 65535  # pure red: OpenCV's luma weight of red, 0.299
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert read_training_image(tmp_path / "rgb.tif", "gray")[0, 0] == pytest.approx(0.299, abs=1e-6)
    assert read_training_image(tmp_path / "c.tif", "color").shape == (1, 2, 3)  # gray replicated
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((4, 8, 8), np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "nan.tif", np.array([[np.nan, 1.0]], np.float32))
    for name, message in [("stack.tif", "a stack of 4 planes"), ("nan.tif", "NaN or infinite")]:
        with pytest.raises(SwinIRError, match=message):
            read_training_image(tmp_path / name, "gray")
    with pytest.raises(SwinIRError, match="JPEG artifact reduction trains on 8-bit images"):
        task_behaviour("color_car").read(tmp_path / "a.tif")


def test_samples_of_12_bit_tiffs_are_their_values_over_4095(tmp_path: Path) -> None:
    images = tiff_folder(tmp_path / "train", "uint16")
    dataset = TrainDataset(parse_config(denoise_raw(tmp_path, sigma=[0, 0], shot_noise=[0, 0])))
    values = set(np.concatenate([image.ravel() for image in images]).tolist())
    for key in [(0, 0), (2, 3)]:
        lq, hr = dataset[key]
        counts = hr.numpy() * 4095
        assert np.allclose(counts, np.round(counts), atol=1e-3) and set(np.round(counts).ravel()) <= values
        assert np.array_equal(lq, hr)  # zero noise: the input is the patch itself


# ----------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_a_tiny_blind_denoiser_trains_on_tiffs(tmp_path: Path, dtype: str) -> None:
    tiff_folder(tmp_path / "data" / "train", dtype)
    tiff_folder(tmp_path / "data" / "val", dtype, count=1, size=32, seed=1)
    raw = denoise_raw(tmp_path / "data", sigma=[0, 5], shot_noise=[0.001, 0.01])
    raw["val"] = {"folder": "val", "every": 3}
    config = parse_config(raw)
    (val,) = load_validation(config)
    assert val.gt.dtype == np.uint8 and val.gt.shape == (32, 32)  # quantised to 8 bits for the scores
    assert train(config, tmp_path / "run") == 0
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert len(rows) >= 6 and all(math.isfinite(float(r["loss"])) for r in rows if r["loss"])
    assert any(r["val_psnr"] for r in rows)
    model = swinir.load(tmp_path / "run" / "last.safetensors")
    assert model.in_chans == 1 and model.upscale == 1


def test_the_worked_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/scientific.md's three commands, as written, on 16-bit TIFFs made here; training gets a tiny network
    and a few iterations through extra --set flags (the recipe's own network would take hours)."""
    import json
    import shlex

    from swinir.cli import main

    text = (Path(__file__).resolve().parents[1] / "docs" / "scientific.md").read_text()
    block = text.split("## Worked example", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.splitlines() if line.startswith("swinir ")]
    assert [c[1] for c in commands] == ["train", "train", "restore"]
    tiff_folder(tmp_path / "cells" / "clean", "uint16", size=48)
    tiff_folder(tmp_path / "cells" / "held_out", "uint16", count=1, size=32, seed=1)
    stack = (np.random.default_rng(2).random((2, 2, 24, 32)) * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "cells" / "noisy_stack.ome.tif", stack, ome=True,
                     metadata={"axes": "ZCYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1})
    tiny = [f"model.{key}={json.dumps(value)}" for key, value in GRAY_DENOISER.items()] + [
        "data.patch_size=16", "data.batch_size=2", "data.num_workers=0", "train.iterations=4", "train.precision=fp32",
        "val.every=2", "log.tensorboard=false", "log.plot=false"]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        extra = [arg for setting in tiny for arg in ("--set", setting)] if "--recipe" in command else []
        assert main([*command[1:], *extra, "--quiet"] if command[1] == "restore" else [*command[1:], *extra]) == 0
    with tifffile.TiffFile(tmp_path / "cells" / "denoised.ome.tif") as tif:
        assert tif.series[0].axes == "ZCYX" and tif.series[0].shape == stack.shape
        assert tif.series[0].dtype == np.uint16 and tif.asarray().max() <= 4095
