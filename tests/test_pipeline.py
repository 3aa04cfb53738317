"""The image-level pipeline every caller shares, ``--precision auto``, and options that do not apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import swinir
from swinir import SwinIRError
from swinir.checkpoints import ModelInfo
from swinir.cli import main
from swinir.images import Image
from swinir.pipeline import RestoreOptions, resize_alpha, restore_image
from swinir.precision import resolve_precision


def tiny(upscale: int = 2, in_chans: int = 3) -> swinir.SwinIR:
    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=upscale, in_chans=in_chans, img_size=16, window_size=8, depths=(2,),
                             embed_dim=12, num_heads=(2,), upsampler="pixelshuffledirect" if upscale > 1 else "")
    return cfg.build().eval()


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx512f", "avx512_bf16"}, "bf16"), ({"amx_bf16", "amx_tile"}, "bf16"), ({"avx2", "avx512f"}, "fp32"),
    (set(), "fp32"),
])
def test_auto_precision_follows_the_cpu_flags(flags: set[str], expected: str) -> None:
    assert resolve_precision("auto", "cpu", cpu_flags=flags) == expected
    assert resolve_precision("fp32", "cpu", cpu_flags=flags) == "fp32"  # explicit choices are kept
    with pytest.raises(SwinIRError, match="fp16 is for CUDA"):
        resolve_precision("fp16", "cpu", cpu_flags=flags)


def test_gray_image_through_a_colour_model_comes_back_gray_with_alpha() -> None:
    model = tiny()
    rng = np.random.default_rng(0)
    gray = (rng.random((20, 27)) * 255).astype(np.uint8)
    alpha = np.full((20, 27), 90, np.uint8)
    calls: list[tuple[int, int]] = []
    out = restore_image(model, Image(gray, alpha, 8, "LA"), RestoreOptions(precision="fp32"),
                        progress=lambda done, total: calls.append((done, total)))
    replicated = swinir.restore(model, np.repeat(gray[..., None], 3, axis=2))
    luma = np.floor(replicated.astype(np.float64) @ [0.299, 0.587, 0.114] + 0.5).astype(np.uint8)
    assert out.pixels.shape == (40, 54) and np.array_equal(out.pixels, luma)
    assert np.array_equal(out.alpha, resize_alpha(alpha, 2)) and np.all(out.alpha == 90)
    assert out.notices == ["converted gray image to RGB for a 3-channel model"]
    assert calls == [(0, 1), (1, 1)]  # the plan's total is known before the first model call


def test_tiles_and_ensemble_are_planned_once_and_counted() -> None:
    model = tiny()
    img = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    calls: list[tuple[int, int]] = []
    options = RestoreOptions(tile=16, tile_overlap=8, precision="fp32", ensemble=True)
    out = restore_image(model, img, options, progress=lambda d, t: calls.append((d, t)))
    direct = swinir.restore(model, img, tile=16, tile_overlap=8, ensemble=True)
    assert np.array_equal(out.pixels, direct)
    total = calls[0][1]
    assert total == out.plan.calls and total % 8 == 0 and calls[-1] == (total, total)


def test_float_arrays_go_through_unclipped_and_come_back_float() -> None:
    model = tiny(upscale=1)
    noisy = np.random.default_rng(2).normal(0.5, 0.3, (16, 24, 3))  # values outside [0, 1]
    out = restore_image(model, noisy, RestoreOptions(precision="fp32"))
    x = torch.from_numpy(noisy.astype(np.float32)).permute(2, 0, 1)[None]
    expected = swinir.restore(model, x)[0].permute(1, 2, 0).numpy()
    assert out.pixels.dtype == np.float32 and np.array_equal(out.pixels, expected)


@pytest.mark.parametrize(("info", "options", "message"), [
    (ModelInfo("denoise", 1, 3, (0, 50)), {"scale": 3}, "keeps the image size"),
    (ModelInfo("sr", 2, 3), {"scale": 3}, "upscale x2"),
    (ModelInfo("denoise", 1, 3, (0, 50)), {"sigma": 25}, "blind"),
    (ModelInfo("jpeg", 1, 3, (10, 40)), {"quality": 10}, "blind"),
    (ModelInfo("denoise", 1, 3, (25, 25)), {"sigma": 50}, "trained for sigma 25 only"),
    (ModelInfo("sr", 4, 3), {"quality": 10}, "for jpeg models"),
])
def test_options_that_do_not_apply_are_refused(info: ModelInfo, options: dict, message: str) -> None:
    with pytest.raises(SwinIRError, match=message):
        info.check_options(**options)


def test_options_that_apply_pass() -> None:
    ModelInfo("denoise", 1, 3, (25, 25)).check_options(sigma=25)
    ModelInfo("sr", 4, 3).check_options(scale=4)
    ModelInfo("jpeg", 1, 3, None).check_options(quality=30)  # level unknown: nothing to check against


def test_cli_refuses_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = Path(__file__).resolve().parents[1] / "examples" / "astronaut_lr.png"
    cases = [
        (["--task", "denoise", "--scale", "3"], "keeps the image size"),
        (["--task", "denoise", "--sigma", "25"], "blind"),
        (["--task", "sr", "--quality", "10"], "for jpeg models"),
        (["--scale", "3"], "no bundled model for task sr x3"),
    ]
    for extra, message in cases:
        code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--quiet", *extra])
        err = capsys.readouterr().err.strip()
        assert code == 1 and message in err and len(err.splitlines()) == 1, (extra, err)
    assert not (tmp_path / "out").exists()
