"""Training validation measures as ``swinir eval`` measures: the same engine, padding, 8-bit outputs and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from swinir.checkpoints import save_safetensors
from swinir.engine import pad_reference
from swinir.evaluation import EvalSettings, bicubic_method, evaluate_dataset, model_method
from swinir.metrics import psnr, quantize
from swinir.training import RunConfig, parse_config
from swinir.training.data import load_validation
from swinir.training.validation import Validation, restore_for_validation
from test_training import data_root, tiny_raw  # noqa: F401  (fixture)


def _model(config: RunConfig) -> nn.Module:
    """A tiny untrained network (seeded): validation only needs fixed weights."""
    torch.manual_seed(1)
    return config.model.build().eval()


def test_validation_scores_are_the_numbers_swinir_eval_gives(data_root: Path, tmp_path: Path) -> None:  # noqa: F811
    config = parse_config(tiny_raw(data_root))
    model = _model(config)
    validation = Validation(config, load_validation(config, log=lambda m: None))
    scores = validation.model_scores(model)
    weights = tmp_path / "w.safetensors"
    save_safetensors(weights, model, config.model)
    settings = EvalSettings("classical_sr", 2)
    measured = evaluate_dataset(model_method(weights, settings, precision="fp32"), settings,
                                hr_dir=data_root / "val", progress=False).mean
    assert scores["psnr"] == pytest.approx(measured["psnr_y"], abs=1e-9)
    assert scores["ssim"] == pytest.approx(measured["ssim_y"], abs=1e-9)
    bicubic = evaluate_dataset(bicubic_method(2), settings, hr_dir=data_root / "val", progress=False).mean
    assert validation.baseline_scores()["psnr"] == pytest.approx(bicubic["psnr_y"], abs=1e-9)


def test_validation_pads_as_the_reference_not_as_the_network(data_root: Path) -> None:  # noqa: F811
    config = parse_config(tiny_raw(data_root))
    model = _model(config)
    image = load_validation(config, log=lambda m: None)[0]
    h, w = image.lq.shape[1:]
    assert h % 4 == 0 and w % 4 == 0  # the network alone would not pad; the reference adds one whole window
    with torch.no_grad():
        padded = model(pad_reference(image.lq[None], 4))[..., : 2 * h, : 2 * w].clamp(0, 1)
    expected = quantize(padded[0].numpy().transpose(1, 2, 0))
    assert np.array_equal(restore_for_validation(model, image), expected)


def test_gray_denoising_scores_its_own_channel_without_a_border(data_root: Path) -> None:  # noqa: F811
    raw = tiny_raw(data_root, task={"name": "gray_dn", "scale": 1, "sigma": [25, 25]},
                   model={"upscale": 1, "in_chans": 1, "upsampler": ""})
    config = parse_config(raw)
    model = _model(config)
    images = load_validation(config, log=lambda m: None)
    validation = Validation(config, images)
    assert (validation.border, validation.y_channel, validation.baseline_name) == (0, False, "degraded input")
    outputs = [restore_for_validation(model, image) for image in images]
    pairs = list(zip(outputs, images, strict=True))
    assert all(out.shape == image.gt.shape and out.dtype == np.uint8 for out, image in pairs)
    expected = np.mean([psnr(out, image.gt) for out, image in pairs])
    assert validation.model_scores(model)["psnr"] == pytest.approx(expected, abs=1e-12)
    noisy = [quantize(image.lq[0].numpy()) for image in images]
    baseline = np.mean([psnr(n, image.gt) for n, image in zip(noisy, images, strict=True)])
    assert validation.baseline_scores()["psnr"] == pytest.approx(baseline, abs=1e-12)
