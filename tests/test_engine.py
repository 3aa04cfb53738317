"""The inference engine: reference padding, tiling, dtypes, ensemble, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import swinir
from swinir import ModelConfig, SwinIRError
from swinir.engine import count_tiles, pad_reference, plan_tiling, tile_origins


def tiny_model(upscale: int = 2, in_chans: int = 3) -> swinir.SwinIR:
    torch.manual_seed(0)
    cfg = ModelConfig(upscale=upscale, in_chans=in_chans, img_size=32, window_size=8, depths=(2, 2), embed_dim=24,
                      num_heads=(2, 2), upsampler="pixelshuffledirect" if upscale > 1 else "")
    return cfg.build().eval()


def test_pad_reference_hand_case() -> None:
    x = torch.arange(3.0).view(1, 1, 1, 3).expand(1, 1, 3, 3) + 10 * torch.arange(3.0).view(1, 1, 3, 1)
    out = pad_reference(x, 4)  # 3 -> 4 rows/cols: the edge row/col is repeated (symmetric), not reflected
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 3].tolist() == [20, 21, 22, 22]
    assert out[0, 0, :, 3].tolist() == [2, 12, 22, 22]
    assert pad_reference(torch.zeros(1, 1, 8, 8), 8).shape == (1, 1, 16, 16)  # a whole window when already a multiple


def test_tile_origins_as_reference() -> None:
    assert tile_origins(40, 16, 12) == [0, 12, 24]
    assert tile_origins(16, 16, 12) == [0]
    assert count_tiles(70, 90, 8, 32, 8) == len(tile_origins(72, 32, 24)) * len(tile_origins(96, 32, 24))


@pytest.mark.parametrize("tile", [32, 48])
def test_tiled_equals_untiled_within_one_level(tile: int) -> None:
    model = tiny_model()
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(1))
    full = swinir.restore(model, x, max_memory=1 << 40)
    tiled = swinir.restore(model, x, tile=tile, tile_overlap=2 * model.window_size)
    assert full.shape == tiled.shape == (1, 3, 140, 180)
    assert (tiled - full).abs().max() < 1 / 255
    # the reference's uniform average leaves visible seams with the same overlap: the blend matters
    seams = swinir.restore(model, x, tile=tile, tile_overlap=2 * model.window_size, blend="average")
    assert (seams - full).abs().max() > 4 / 255


def test_auto_tile_respects_memory_budget() -> None:
    model = tiny_model()
    tile, overlap = plan_tiling(model, 500, 700, max_memory=8 << 20)
    assert tile is not None and tile % 8 == 0 and tile < 500 and overlap < tile
    assert plan_tiling(model, 50, 70, max_memory=1 << 34)[0] is None  # fits whole
    x = torch.rand(1, 3, 100, 120)
    small = swinir.restore(model, x, max_memory=4 << 20)
    assert (small - swinir.restore(model, x, max_memory=1 << 40)).abs().max() < 1 / 255


@pytest.mark.parametrize("dtype,peak", [(np.uint8, 255), (np.uint16, 65535)])
@pytest.mark.parametrize("shape", [(20, 27, 3), (20, 27)])
def test_numpy_images_keep_dtype_and_layout(dtype: type, peak: int, shape: tuple[int, ...]) -> None:
    chans = 3 if len(shape) == 3 else 1
    model = tiny_model(in_chans=chans)
    img = (np.random.default_rng(0).random(shape) * peak).astype(dtype)
    out = swinir.restore(model, img)
    assert out.dtype == dtype and out.shape == (40, 54, *shape[2:])
    x = torch.from_numpy(img.astype(np.float32) / peak).reshape(*shape[:2], chans).permute(2, 0, 1)[None]
    expected = swinir.restore(model, x)[0].permute(1, 2, 0).numpy().reshape(40, 54, *shape[2:])
    assert np.abs(out.astype(np.float64) - expected * peak).max() <= 0.5 + 1e-3


class Shift(nn.Module):
    """Stand-in network: nearest x2 upscaling plus a ramp along the width (not flip-equivariant)."""

    upscale, in_chans, window_size = 2, 1, 4

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = x.repeat_interleave(2, -2).repeat_interleave(2, -1)
        ramp = torch.linspace(0, 0.2, up.shape[-1])
        return up + ramp


def test_ensemble_averages_the_eight_transforms() -> None:
    x = torch.full((1, 1, 8, 8), 0.5)
    single = swinir.restore(Shift(), x)
    ens = swinir.restore(Shift(), x, ensemble=True)
    assert single[0, 0, 0, -1] > single[0, 0, 0, 0] + 0.1  # the ramp is there without ensemble
    # The ramp runs over the padded width (8 -> 12 px, 24 after x2: 0.2 * i / 23). The 8 transforms put it
    # along both axes in both directions; a direction and its flip add up to 0.2 * 15 / 23 at every kept
    # pixel (i and 15 - i), so the ensemble is flat: 0.5 + 0.1 * 15 / 23 everywhere.
    assert torch.allclose(ens, torch.full_like(ens, 0.5 + 0.1 * 15 / 23), atol=1e-6)


def test_bf16_stays_close_to_fp32() -> None:
    model = tiny_model()
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(3))
    a = swinir.restore(model, x)
    b = swinir.restore(model, x, precision="bf16")
    mse = (a - b).square().mean().item()
    assert b.dtype == torch.float32 and 10 * np.log10(1 / mse) > 40


def test_channel_mismatch_and_bad_arguments() -> None:
    model = tiny_model()
    with pytest.raises(SwinIRError, match="channels"):
        swinir.restore(model, torch.rand(1, 1, 16, 16))
    with pytest.raises(SwinIRError, match="uint8, uint16 or float"):
        swinir.restore(model, np.zeros((8, 8, 3), np.int16))
    with pytest.raises(SwinIRError, match="too small: use at least 16"):
        swinir.restore(model, torch.rand(1, 3, 16, 16), tile=4)
    with pytest.raises(SwinIRError, match="fp16 is for CUDA"):
        swinir.restore(model, torch.rand(1, 3, 16, 16), precision="fp16")


def test_default_threads_leave_the_cores_other_processes_keep_busy(monkeypatch) -> None:
    """Hand-made CPU use: core 0 at 90 %, core 1 at 10 % -> one busy core, so a single restore takes one thread
    of two; processes started by torchrun keep their equal share (they would count each other)."""
    import psutil

    from swinir.processes import ProcessPlace, busy_cpus

    monkeypatch.setattr(psutil, "cpu_percent", lambda interval, percpu: [90.0, 10.0])
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert busy_cpus({0, 1}) == 1 and busy_cpus({1}) == 0
    assert ProcessPlace().default_threads() == 2
    assert ProcessPlace().default_threads(leave_busy_cores=True) == 1
    assert ProcessPlace(0, 2, 0, 2).default_threads(leave_busy_cores=True) == 1  # 2 cores / 2 processes
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval, percpu: [95.0, 97.0])
    assert ProcessPlace().default_threads(leave_busy_cores=True) == 1  # never below one thread
