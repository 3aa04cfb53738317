"""``swinir convert MODEL OUT --to reference``: the official code's state dict, derived buffers included.

The oracle's weights files were written by the reference ``SwinIR.state_dict()`` itself, so their key set,
shapes and buffer values are what a strict reference load (the official scripts, spandrel) demands. The
buffers are also checked against a small independent implementation of their definition, written here
with plain loops.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import swinir
from conftest import SHARED, shared_path
from swinir.bundled import bundled_models
from swinir.checkpoints import read_checkpoint, save_safetensors
from swinir.cli import main
from swinir.presets import ModelConfig

CASES = sorted(p.name.removesuffix(".json") for p in (SHARED / "oracle").glob("*.json")) or ["<no oracle>"]


def read_reference_file(path: Path) -> dict[str, torch.Tensor]:
    """The state dict as the official scripts read it (``.pth``: under ``params``; plain tensors only)."""
    if path.suffix == ".pth":
        obj = torch.load(path, map_location="cpu", weights_only=True)
        assert set(obj) == {"params"}
        return obj["params"]
    return load_file(path)


def hand_relative_position_index(ws: int) -> torch.Tensor:
    """index[p, q] for window positions p = (yp, xp), q = (yq, xq): row of the (2ws-1)² bias table."""
    index = torch.empty(ws * ws, ws * ws, dtype=torch.int64)
    for p in range(ws * ws):
        for q in range(ws * ws):
            dy, dx = p // ws - q // ws, p % ws - q % ws
            index[p, q] = (dy + ws - 1) * (2 * ws - 1) + (dx + ws - 1)
    return index


def hand_attn_mask(side: int, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws², ws²): -100 between two pixels of a window that came from different regions of the cyclically
    shifted side x side map (regions: rows [0, side-ws), [side-ws, side-shift), [side-shift, side), the same
    along columns), 0 otherwise; windows in row-major order."""

    def region(i: int) -> int:
        return 0 if i < side - ws else 1 if i < side - shift else 2

    n = side // ws
    mask = torch.zeros(n * n, ws * ws, ws * ws)
    for w in range(n * n):
        top, left = (w // n) * ws, (w % n) * ws
        labels = [3 * region(top + p // ws) + region(left + p % ws) for p in range(ws * ws)]
        for p in range(ws * ws):
            for q in range(ws * ws):
                if labels[p] != labels[q]:
                    mask[w, p, q] = -100.0
    return mask


def expected_buffers(config: ModelConfig) -> dict[str, torch.Tensor]:
    """The derived buffers the reference constructor registers for ``config`` (patch size 1)."""
    ws, side = config.window_size, config.img_size
    shifted_allowed = side > ws
    ws = ws if shifted_allowed else side  # the reference shrinks the window (and drops the shift) here
    buffers = {}
    for i, depth in enumerate(config.depths):
        for j in range(depth):
            prefix = f"layers.{i}.residual_group.blocks.{j}."
            buffers[prefix + "attn.relative_position_index"] = hand_relative_position_index(ws)
            if j % 2 and shifted_allowed:
                buffers[prefix + "attn_mask"] = hand_attn_mask(side, ws, ws // 2)
    return buffers


def assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        assert torch.equal(got[key], value), key


def load_case(name: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    base = shared_path("oracle") / name
    if not base.with_suffix(".json").exists():
        pytest.skip(f"oracle case {name} not found under {base.parent}")
    meta = json.loads(base.with_suffix(".json").read_text())
    return meta, load_file(f"{base}.weights.safetensors"), load_file(f"{base}.io.safetensors")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("case", CASES)
def test_reference_file_equals_the_reference_state_dict(case: str, suffix: str, tmp_path: Path) -> None:
    """From this package's file (parameters only, no buffers) back to exactly the reference's state dict."""
    meta, weights, io = load_case(case)
    config = ModelConfig.from_dict(meta["constructor_kwargs"])
    ours = tmp_path / "ours.safetensors"
    save_safetensors(ours, swinir.load(f"{shared_path('oracle') / case}.weights.safetensors", config), config)
    assert not any(k.endswith(("relative_position_index", "attn_mask")) for k in read_checkpoint(ours)[0])

    out = tmp_path / f"reference{suffix}"
    assert swinir.convert(ours, out, to="reference") == config
    got = read_reference_file(out)
    assert_same_state(got, weights)
    buffers = expected_buffers(config)
    assert len(buffers) == sum(meta["buffers_in_state_dict"].values())
    assert_same_state({k: v for k, v in got.items() if k in buffers}, buffers)

    model = swinir.load(out).double()
    assert model.config == config  # .pth: inferred from the weights, img_size read from the mask
    h, w = io["output"].shape[-2:]
    with torch.inference_mode():
        out64 = model(io["input_padded"].double())[..., :h, :w]
    assert (out64 - io["output"]).abs().max() < 1e-9  # float64, as test_oracle
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


@pytest.mark.parametrize(("img_size", "window"), [(8, 4), (12, 4), (4, 8)])
def test_buffers_follow_the_definition(img_size: int, window: int, tmp_path: Path) -> None:
    """Without the oracle: the buffers equal the hand-written definition, including a model whose img_size
    does not exceed the window (the reference then shrinks the window and registers no mask)."""
    config = ModelConfig(upscale=1, in_chans=1, img_size=img_size, window_size=window, depths=(3, 2),
                         embed_dim=8, num_heads=(2, 2))
    src = tmp_path / "model.safetensors"
    save_safetensors(src, config.build(), config)
    assert main(["convert", str(src), str(tmp_path / "ref.pth"), "--to", "reference"]) == 0
    got = read_reference_file(tmp_path / "ref.pth")
    buffers = expected_buffers(config)
    assert sum(k.endswith("attn_mask") for k in buffers) == (2 if img_size > window else 0)
    assert_same_state({k: v for k, v in got.items() if k in buffers}, buffers)
    assert sorted(got) == sorted([*buffers, *read_checkpoint(src)[0]])


def test_bundled_model_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = bundled_models()
    if not models:
        pytest.skip("no bundled models in this installation")
    bundled = models[-1]
    out = tmp_path / "ref.pth"
    assert main(["convert", bundled.name, str(out), "--to", "reference"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out} (") and "reference format" in printed and "note:" not in printed
    state = read_reference_file(out)  # weights_only=True
    model = swinir.load(bundled.path)
    side, ws = model.config.img_size, model.config.window_size
    assert state["layers.0.residual_group.blocks.1.attn_mask"].shape == ((side // ws) ** 2, ws * ws, ws * ws)
    assert "layers.0.residual_group.blocks.0.attn_mask" not in state
    back = swinir.load(out)
    assert back.config == model.config
    x = torch.rand(1, model.config.in_chans, 19, 21)
    with torch.inference_mode():
        assert torch.equal(back(x), model(x))


def test_unrecordable_config_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A window-7 same-size model with img_range 1: the weights look like a JPEG model (img_range 255)."""
    config = ModelConfig(upscale=1, in_chans=1, img_size=14, window_size=7, img_range=1.0, depths=(2,),
                         embed_dim=8, num_heads=(2,))
    src = tmp_path / "model.safetensors"
    save_safetensors(src, config.build(), config)
    assert main(["convert", str(src), str(tmp_path / "ref.pth"), "--to", "reference"]) == 0
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith("note:") and "img_range=1.0" in note and "img_range=255.0" in note
    assert main(["convert", str(src), str(tmp_path / "ref.safetensors"), "--to", "reference"]) == 0
    assert swinir.load(tmp_path / "ref.safetensors").config == config  # the header keeps what weights cannot


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "onnx", "OUT.pth"], "--to onnx is an unknown format; use --to swinir (this package's"),
        (["--to", "reference", "OUT.bin"], "--to reference writes .pth or .safetensors files, not '.bin'; use an "
                                           "output named .pth or .safetensors"),
        (["--to", "reference", "OUT"], "not 'no extension'"),
        (["OUT.pth"], "--to swinir writes .safetensors files, not '.pth'; use --to reference or an output named "
                      ".safetensors"),
    ],
)
def test_bad_target_is_one_line(argv: list[str], message: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    config = ModelConfig(upscale=1, in_chans=1, img_size=8, window_size=4, depths=(2,), embed_dim=8, num_heads=(2,))
    src = tmp_path / "model.safetensors"
    save_safetensors(src, config.build(), config)
    out = argv[-1]
    assert main(["convert", str(src), str(tmp_path / out), *argv[:-1]]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("swinir: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_unknown_model_names_the_bundled_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "no-such-model", str(tmp_path / "x.pth"), "--to", "reference"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-model: no such file, nor a bundled model" in err
    assert all(m.name in err for m in bundled_models())
