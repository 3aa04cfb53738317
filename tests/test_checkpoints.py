"""Checkpoints: reference .pth layouts, safetensors with config, config inference, refusals."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

import swinir
from swinir import PRESETS, ModelConfig, SwinIRError
from swinir.checkpoints import read_checkpoint, reference_state_dict
from swinir.cli import main


def shrink(cfg: ModelConfig) -> ModelConfig:
    """The same family (head, scale, channels, window, range, residual conv) at test size."""
    return cfg.replace(depths=(2, 1), num_heads=(2, 2), embed_dim=16, img_size=2 * cfg.window_size)


FAMILIES = ["classical_sr_x2", "classical_sr_x3", "classical_sr_x4", "classical_sr_x8", "lightweight_sr_x3",
            "real_sr_x4_m", "real_sr_x4_l", "gray_dn", "color_dn", "gray_car", "color_car"]


@pytest.mark.parametrize("name", FAMILIES)
def test_config_inference_round_trip(name: str, tmp_path: os.PathLike) -> None:
    cfg = shrink(PRESETS[name].config)
    model = cfg.build()
    path = tmp_path / "model.pth"
    torch.save({"params": reference_state_dict(model)}, path)
    loaded = swinir.load(path)
    assert loaded.config == cfg
    for a, b in zip(model.state_dict().values(), loaded.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_safetensors_round_trip_keeps_config_and_metadata(tmp_path: os.PathLike) -> None:
    cfg = shrink(PRESETS["color_car"].config)  # img_range 255 cannot be inferred from weights alone
    model = cfg.replace(window_size=8, img_size=16).build()  # window 8 + range 255: only metadata can tell
    model.config = cfg.replace(window_size=8, img_size=16)
    path = tmp_path / "m.safetensors"
    swinir.save_safetensors(path, model, model.config, {"task": "color_car", "iterations": 12})
    loaded = swinir.load(path)
    assert loaded.config == model.config and loaded.img_range == 255.0
    assert loaded.metadata["swinir.task"] == "color_car" and loaded.metadata["swinir.iterations"] == "12"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_params_ema_wins_over_params(tmp_path: os.PathLike) -> None:
    cfg = shrink(PRESETS["lightweight_sr_x2"].config)
    a, b = cfg.build().state_dict(), cfg.build().state_dict()
    path = tmp_path / "both.pth"
    torch.save({"params": a, "params_ema": b}, path)
    state, _ = read_checkpoint(path)
    assert all(torch.equal(state[k], b[k]) for k in b)
    torch.save(a, tmp_path / "bare.pth")
    assert all(torch.equal(read_checkpoint(tmp_path / "bare.pth")[0][k], a[k]) for k in a)


class Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_is_refused(tmp_path: os.PathLike) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"params": Evil()}, f)
    with pytest.raises(SwinIRError, match="refused to load"):
        swinir.load(path)
    torch.save({"params": {"x": Evil()}}, tmp_path / "evil2.pth")
    with pytest.raises(SwinIRError, match="refused to load"):
        swinir.load(tmp_path / "evil2.pth")


def test_not_a_state_dict_and_garbage_files(tmp_path: os.PathLike) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(SwinIRError, match="not a SwinIR state dict"):
        swinir.load(tmp_path / "list.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(SwinIRError, match="not a readable safetensors"):
        swinir.load(tmp_path / "junk.safetensors")
    with pytest.raises(SwinIRError, match="no such weights file"):
        swinir.load(tmp_path / "missing.pth")


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path: os.PathLike) -> None:
    cfg = shrink(PRESETS["classical_sr_x2"].config)
    state = cfg.build().state_dict()
    state.pop("conv_last.weight")
    state["extra.weight"] = torch.zeros(1)
    state["conv_first.bias"] = torch.zeros(5)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    with pytest.raises(SwinIRError) as err:
        swinir.load(path, cfg)
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 missing (conv_last.weight)" in msg and "1 unexpected (extra.weight)" in msg
    assert "conv_first.bias (5,) vs (16,)" in msg
    with pytest.raises(SwinIRError, match="unknown preset"):
        swinir.load(path, "classical_sr_x5")


def test_unknown_config_keys_are_errors() -> None:
    with pytest.raises(SwinIRError, match="unknown model config keys \\['embed_dims'\\]"):
        ModelConfig.from_dict({"embed_dims": 60})


def test_convert_and_info_cli(tmp_path: os.PathLike, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = shrink(PRESETS["gray_car"].config)
    torch.save({"params_ema": reference_state_dict(cfg.build())}, tmp_path / "in.pth")
    assert main(["convert", str(tmp_path / "in.pth"), str(tmp_path / "out.safetensors")]) == 0
    assert swinir.load(tmp_path / "out.safetensors").config == cfg
    assert main(["info", str(tmp_path / "out.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "window_size      7" in out and "img_range        255.0" in out and "(metadata)" in out
    assert main(["info", str(tmp_path / "nope.pth")]) == 1
    assert "no such weights file" in capsys.readouterr().err
