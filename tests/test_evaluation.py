"""The evaluation runner: published baselines through it, its outputs, its inputs per task, its errors."""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared_path
from swinir.datasets import dataset_name
from swinir.degradations import add_gaussian_noise, rgb_to_y_uint8
from swinir.errors import SwinIRError
from swinir.evaluation import (
    COMPARE_GAP,
    COMPARE_LABEL_HEIGHT,
    EvalSettings,
    add_eval_arguments,
    baseline_method,
    bicubic_method,
    evaluate,
    evaluate_dataset,
    load_sample,
    model_method,
    run_eval_command,
)
from swinir.metrics import psnr, quantize

BICUBIC = {  # PAPER_RESULTS.md: (dataset, scale) -> (PSNR_Y, SSIM_Y)
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}
GRAY_LUMA_GAIN = 20 * math.log10(255 / 219)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def sr_pairs(scale: int) -> list[tuple[Path, Path]]:
    return [(shared_path("datasets", d, "HR"), shared_path("datasets", d, "LR_bicubic", f"X{scale}"))
            for d in ("Set5", "Set14")]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_through_the_runner_matches_published(scale: int) -> None:
    raw = evaluate(bicubic_method(scale), EvalSettings("classical_sr", scale, gray_luma="raw"), sr_pairs(scale),
                   progress=False)
    for res in raw:
        want_psnr, want_ssim = BICUBIC[(res.dataset, scale)]
        assert res.mean["psnr_y"] == pytest.approx(want_psnr, abs=0.02), res.dataset
        assert res.mean["ssim_y"] == pytest.approx(want_ssim, abs=0.0015), res.dataset
    # the reference script's reading (default) scores gray bridge on the luma of its RGB replica
    replicate = evaluate(bicubic_method(scale), EvalSettings("classical_sr", scale), sr_pairs(scale)[1:],
                         progress=False)[0]
    by_name = {r.name: r.metrics for r in replicate.images}
    raw_by_name = {r.name: r.metrics for r in raw[1].images}
    assert by_name["bridge"]["psnr_y"] - raw_by_name["bridge"]["psnr_y"] == pytest.approx(GRAY_LUMA_GAIN, abs=1e-9)
    assert replicate.mean["psnr_y"] - raw[1].mean["psnr_y"] == pytest.approx(GRAY_LUMA_GAIN / 14, abs=1e-9)
    assert by_name["man"] == raw_by_name["man"]


def test_cli_outputs_json_csv_and_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr, lr = sr_pairs(4)[0]
    out = tmp_path / "out"
    rc = run_eval_command(parse("--task", "classical_sr", "--scale", 4, "--hr", hr, "--lr", lr, "--method", "bicubic",
                                "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv", "--save", out, "-q"))
    assert rc == 0
    printed = capsys.readouterr().out
    assert "psnr_y" in printed and "mean" in printed and "28.4" in printed

    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data["mean"]) == {"psnr_y", "ssim_y", "psnr", "ssim"}
    assert [img["name"] for img in data["images"]] == ["baby", "bird", "butterfly", "head", "woman"]
    assert set(data["images"][0]) == {"name", "psnr_y", "ssim_y", "psnr", "ssim"}
    assert data["dataset"] == "Set5" and data["scale"] == 4 and data["border"] == 4
    assert data["mean"]["psnr_y"] == pytest.approx(np.mean([i["psnr_y"] for i in data["images"]]))

    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert list(rows[0]) == ["dataset", "name", "psnr_y", "ssim_y", "psnr", "ssim"]
    assert [r["name"] for r in rows] == ["baby", "bird", "butterfly", "head", "woman", "mean"]
    assert float(rows[-1]["psnr_y"]) == pytest.approx(data["mean"]["psnr_y"])

    restored = cv2.imread(str(out / "Set5" / "woman.png"))
    assert restored.shape == (344 // 4 * 4, 228 // 4 * 4, 3)  # LR * scale
    panel = cv2.imread(str(out / "Set5" / "compare" / "woman.png"))
    tile = 96 * 3  # ground truth | input | bicubic | method, 96 px crops enlarged x3
    assert panel.shape == (tile + COMPARE_LABEL_HEIGHT, 4 * tile + 3 * COMPARE_GAP, 3)
    assert not list(out.rglob("*.tmp"))


def test_several_datasets_give_a_json_keyed_by_dataset(tmp_path: Path) -> None:
    (s5, l5), (s14, l14) = sr_pairs(3)
    run_eval_command(parse("--task", "classical_sr", "--scale", 3, "--hr", s5, "--lr", l5, "--hr", s14, "--lr", l14,
                           "--method", "bicubic", "--json", tmp_path / "r.json", "-q"))
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) == {"Set5", "Set14"}
    assert len(data["Set14"]["images"]) == 14 and "psnr_y" in data["Set14"]["mean"]


def test_sr_without_lr_folder_downscales_the_hr(tmp_path: Path) -> None:
    # MATLAB bicubic of the modcropped HR equals the distributed LR files, so the numbers are the same
    hr, lr = sr_pairs(4)[0]
    settings = EvalSettings("classical_sr", 4)
    with_lr = evaluate_dataset(bicubic_method(4), settings, hr_dir=hr, lr_dir=lr, progress=False)
    without = evaluate_dataset(bicubic_method(4), settings, hr_dir=hr, progress=False)
    assert with_lr.mean == without.mean


def test_denoising_inputs_use_seed_zero_for_every_image() -> None:
    folder = shared_path("datasets", "Set12")
    res = evaluate_dataset(baseline_method("identity", EvalSettings("gray_dn", sigma=25)),
                           EvalSettings("gray_dn", sigma=25), hr_dir=folder, progress=False)
    assert len(res.images) == 12 and set(res.mean) == {"psnr", "ssim"}
    for img in res.images[:2]:  # each image gets its own seed-0 draw, not the continuation of the stream
        gt = cv2.imread(str(folder / f"{img.name}.png"), cv2.IMREAD_GRAYSCALE)
        noisy = gt.astype(np.float32) / 255 + np.random.RandomState(0).normal(0, 25 / 255, gt.shape)
        assert img.metrics["psnr"] == pytest.approx(psnr(quantize(noisy), gt), abs=1e-12)
    sample = load_sample(folder / "01.png", EvalSettings("gray_dn", sigma=15))
    assert sample.lq.dtype == np.float64 and sample.lq.ndim == 2 and sample.lq.min() < 0  # not clipped


def test_color_denoising_input_is_the_protocol_draw() -> None:
    path = shared_path("datasets", "McMaster", "1.tif")
    sample = load_sample(path, EvalSettings("color_dn", sigma=50))
    rgb = cv2.imread(str(path))[..., ::-1]
    assert np.array_equal(sample.gt, rgb)
    assert np.array_equal(sample.lq, add_gaussian_noise(rgb.astype(np.float32) / 255, 50, seed=0))


def test_gray_jpeg_through_the_runner_matches_published() -> None:
    settings = EvalSettings("gray_car", quality=10)
    res = evaluate_dataset(baseline_method("identity", settings), settings,
                           hr_dir=shared_path("datasets", "classic5"), progress=False)
    assert res.mean["psnr"] == pytest.approx(27.82, abs=0.01)
    assert res.mean["ssim"] == pytest.approx(0.7595, abs=0.001)
    assert res.mean["psnrb"] == pytest.approx(25.21, abs=0.01)


def test_jpeg_inputs_for_color_files(tmp_path: Path) -> None:
    src = shared_path("datasets", "LIVE1", "parrots.bmp")
    rgb = cv2.imread(str(src))[..., ::-1]
    gray = load_sample(src, EvalSettings("gray_car", quality=20))
    assert np.array_equal(gray.gt, rgb_to_y_uint8(rgb))  # gray JPEG runs on the rounded Y
    assert gray.lq.shape == rgb.shape[:2] and gray.lq.dtype == np.uint8
    shutil.copy(src, tmp_path / "parrots.bmp")
    settings = EvalSettings("color_car", quality=20)
    res = evaluate_dataset(baseline_method("identity", settings), settings, hr_dir=tmp_path, progress=False)
    assert list(res.images[0].metrics) == ["psnr", "ssim", "psnrb", "psnr_y", "ssim_y", "psnrb_y"]
    assert res.images[0].metrics["psnr_y"] > res.images[0].metrics["psnr"]  # chroma loses more


def test_real_sr_saves_outputs_without_metrics(tmp_path: Path) -> None:
    lr = shared_path("datasets", "Set5", "LR_bicubic", "X4")
    rc = run_eval_command(parse("--task", "real_sr", "--scale", 4, "--lr", lr, "--method", "bicubic",
                                "--save", tmp_path, "--json", tmp_path / "r.json", "-q"))
    assert rc == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["dataset"] == "Set5" and data["mean"] == {} and len(data["images"]) == 5
    assert cv2.imread(str(tmp_path / "Set5" / "babyx4.png")).shape == (512, 512, 3)
    panel = cv2.imread(str(tmp_path / "Set5" / "compare" / "babyx4.png"))
    assert panel.shape[1] == 3 * 288 + 2 * COMPARE_GAP  # input | bicubic | method


def test_restore_factory_builds_the_weights_method() -> None:
    hr, lr = sr_pairs(2)[0]
    seen = {}

    def factory(args: argparse.Namespace, settings: EvalSettings):
        seen["weights"], seen["settings"] = args.weights, settings
        return bicubic_method(settings.scale)

    rc = run_eval_command(parse("--task", "classical_sr", "--scale", 2, "--hr", hr, "--lr", lr, "--weights", "m.pth",
                                "-q"), restore_factory=factory)
    assert rc == 0 and seen["weights"] == "m.pth" and seen["settings"].scale == 2


def tiny_checkpoint(tmp_path: Path, **config: object) -> Path:
    from swinir import ModelConfig, save_safetensors

    cfg = ModelConfig(img_size=16, window_size=4, depths=(1,), embed_dim=8, num_heads=(2,), **config)
    path = tmp_path / "tiny.safetensors"
    save_safetensors(path, cfg.build(), cfg)
    return path


def test_model_method_runs_a_checkpoint(tmp_path: Path) -> None:
    hr_dir = tmp_path / "tiny" / "HR"
    hr_dir.mkdir(parents=True)
    baby = cv2.imread(str(shared_path("datasets", "Set5", "HR", "baby.png")))
    cv2.imwrite(str(hr_dir / "a.png"), baby[:42, :38])
    weights = tiny_checkpoint(tmp_path, upscale=2, upsampler="pixelshuffledirect")
    settings = EvalSettings("classical_sr", 2)
    res = evaluate_dataset(model_method(weights, settings), settings, hr_dir=hr_dir, progress=False)
    assert res.dataset == "tiny" and all(math.isfinite(v) for v in res.mean.values())
    with pytest.raises(SwinIRError, match="x2"):
        model_method(weights, EvalSettings("classical_sr", 3))

    gray = tmp_path / "gray"
    gray.mkdir()
    cv2.imwrite(str(gray / "g.png"), cv2.cvtColor(baby[:24, :20], cv2.COLOR_BGR2GRAY))
    dn_weights = tiny_checkpoint(tmp_path / "dn", in_chans=1)
    settings = EvalSettings("gray_dn", sigma=15)
    res = evaluate_dataset(model_method(dn_weights, settings), settings, hr_dir=gray, progress=False)
    assert set(res.mean) == {"psnr", "ssim"}
    with pytest.raises(SwinIRError, match="1-channel images but color_dn is measured on 3-channel"):
        model_method(dn_weights, EvalSettings("color_dn", sigma=15))


def test_precision_defaults_to_auto() -> None:
    assert parse("--task", "classical_sr", "--scale", 2).precision == "auto"
    assert parse("--task", "color_dn", "--sigma", 25, "--precision", "bf16").precision == "bf16"
    with pytest.raises(SystemExit):
        parse("--task", "classical_sr", "--precision", "fp64")


def test_user_errors(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match="unknown task"):
        EvalSettings("deblur")
    with pytest.raises(SwinIRError, match="--sigma"):
        EvalSettings("gray_dn")
    with pytest.raises(SwinIRError, match="--quality"):
        EvalSettings("color_car")
    with pytest.raises(SwinIRError, match="not found"):
        evaluate_dataset(bicubic_method(2), EvalSettings("classical_sr", 2), hr_dir=tmp_path / "nope")
    with pytest.raises(SwinIRError, match="bicubic"):
        baseline_method("identity", EvalSettings("classical_sr", 2))
    with pytest.raises(SwinIRError, match="identity"):
        baseline_method("bicubic", EvalSettings("gray_dn", sigma=25))
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr_dir.mkdir()
    lr_dir.mkdir()
    cv2.imwrite(str(hr_dir / "a.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(SwinIRError, match="LR file missing"):
        evaluate_dataset(bicubic_method(2), EvalSettings("classical_sr", 2), hr_dir=hr_dir, lr_dir=lr_dir,
                         progress=False)
    with pytest.raises(SwinIRError, match="one --lr per --hr"):
        run_eval_command(parse("--task", "classical_sr", "--scale", 2, "--hr", hr_dir, "--hr", hr_dir,
                               "--lr", lr_dir, "--method", "bicubic"))
    with pytest.raises(SwinIRError, match="--scale"):
        run_eval_command(parse("--task", "classical_sr", "--hr", hr_dir, "--method", "bicubic"))


def test_dataset_names() -> None:
    assert dataset_name(Path("/data/Set5/HR")) == "Set5"
    assert dataset_name(Path("/data/Set5/LR_bicubic/X4")) == "Set5"
    assert dataset_name(Path("/data/classic5")) == "classic5"
