"""ONNX export and the onnxruntime backend: one graph for every size, equal to eager fp32, usable from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

for _module in ("onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(_module, reason=f"the ONNX features need '{_module}': pip install 'swinir[onnx]'")

import onnx  # noqa: E402

import swinir  # noqa: E402
from swinir.cli import main  # noqa: E402
from swinir.errors import SwinIRError  # noqa: E402
from swinir.export import OnnxRuntimeModel, export_network, open_model, resolve_backend  # noqa: E402

pytestmark = pytest.mark.slow  # exports take seconds each: left out of the quick subset (-m "not slow")

TOL = 1e-4  # the bound against eager fp32 (measured: ~1e-6)


def tiny(**changes: object) -> swinir.SwinIR:
    torch.manual_seed(0)
    base = dict(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                upsampler="pixelshuffle")
    base.update(changes)
    return swinir.ModelConfig(**base).build().eval()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def color_x2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A colour x2 checkpoint and its export written by ``swinir export``."""
    folder = tmp_path_factory.mktemp("onnx")
    model = tiny()
    weights = folder / "tiny_x2.safetensors"
    swinir.save_safetensors(weights, model, model.config, {"task": "classical_sr", "iterations": 7})
    out = folder / "tiny_x2.onnx"
    assert main(["export", str(weights), "--onnx", str(out)]) == 0
    return weights, out


def eager(model: swinir.SwinIR, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.float()(x)


def test_one_graph_takes_two_sizes_within_1e4_of_eager_fp32(color_x2: tuple[Path, Path]) -> None:
    weights, path = color_x2
    model = swinir.load(weights)
    backend = OnnxRuntimeModel(path, threads=1)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # batch, height, width symbolic
    for shape in [(1, 3, 24, 40), (2, 3, 37, 29)]:  # a window multiple, and a size the backend pads
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        got, want = backend(x), eager(model, x)
        assert got.shape == want.shape == (shape[0], 3, shape[2] * 2, shape[3] * 2)
        assert (got - want).abs().max().item() < TOL


def test_the_export_carries_config_and_metadata(color_x2: tuple[Path, Path]) -> None:
    weights, path = color_x2
    backend = OnnxRuntimeModel(path)
    assert backend.config == swinir.load(weights).config
    assert backend.metadata["swinir.task"] == "classical_sr" and backend.metadata["swinir.iterations"] == "7"
    assert (backend.upscale, backend.in_chans, backend.window_size) == (2, 3, 8)


def test_gray_window7_same_size_model_exports(tmp_path: Path) -> None:
    model = tiny(upscale=1, in_chans=1, window_size=7, img_size=14, upsampler="")
    summary = export_network(model, tmp_path / "gray.onnx")
    assert summary.max_abs_diff < TOL
    backend = OnnxRuntimeModel(summary.path, threads=1)
    for shape in [(1, 1, 21, 35), (1, 1, 30, 19)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(shape[2]))
        got, want = backend(x), eager(model, x)
        assert got.shape == shape and (got - want).abs().max().item() < TOL


def test_restore_with_onnxruntime_equals_torch_fp32(tmp_path: Path, color_x2: tuple[Path, Path]) -> None:
    weights, path = color_x2
    img = (np.random.default_rng(3).random((23, 30, 3)) * 255).astype(np.uint8)
    PILImage.fromarray(img).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "ort"), "--weights", str(path), "-q"]) == 0
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "pt"), "--weights", str(weights),
                 "--precision", "fp32", "-q"]) == 0
    ort = np.asarray(PILImage.open(tmp_path / "ort" / "a.png")).astype(int)
    pt = np.asarray(PILImage.open(tmp_path / "pt" / "a.png")).astype(int)
    assert ort.shape == (46, 60, 3)
    assert np.abs(ort - pt).max() <= 1  # 1e-6 apart before rounding to 8 bits


def test_eval_with_onnxruntime_equals_torch_fp32(tmp_path: Path, color_x2: tuple[Path, Path]) -> None:
    weights, path = color_x2
    hr = tmp_path / "hr"
    hr.mkdir()
    for i in range(2):
        img = (np.random.default_rng(i).random((32, 48, 3)) * 255).astype(np.uint8)
        PILImage.fromarray(img).save(hr / f"{i}.png")
    scores = {}
    for name, w, extra in [("ort", path, ["--backend", "onnxruntime"]), ("pt", weights, ["--precision", "fp32"])]:
        out = tmp_path / f"{name}.json"
        assert main(["eval", "--task", "classical_sr", "--scale", "2", "--hr", str(hr), "--weights", str(w),
                     "--json", str(out), "-q", *extra]) == 0
        scores[name] = json.loads(out.read_text())
    got = [r["psnr"] for r in scores["ort"]["images"]]
    want = [r["psnr"] for r in scores["pt"]["images"]]
    assert len(got) == 2 and got == pytest.approx(want, abs=0.01)


def test_backend_choice_and_refusals(tmp_path: Path, color_x2: tuple[Path, Path],
                                     capsys: pytest.CaptureFixture) -> None:
    weights, path = color_x2
    assert resolve_backend("auto", path) == "onnxruntime" and resolve_backend("auto", weights) == "torch"
    with pytest.raises(SwinIRError, match="--backend onnxruntime"):
        resolve_backend("torch", path)
    with pytest.raises(SwinIRError, match="fp32"):
        open_model(path, backend="onnxruntime", precision="bf16")
    model, precision = open_model(path, precision="auto")
    assert isinstance(model, OnnxRuntimeModel) and precision == "fp32"
    PILImage.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", str(path),
                 "--backend", "torch", "-q"]) == 1
    assert "--backend onnxruntime" in capsys.readouterr().err
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(path.read_bytes()[:1000])
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", str(bad), "-q"]) == 1
    assert "not a readable ONNX model" in capsys.readouterr().err
    assert not (tmp_path / "o" / "a.png").exists()


def test_an_onnx_file_not_written_by_swinir_is_refused(tmp_path: Path) -> None:
    node = onnx.helper.make_node("Identity", ["input"], ["output"])
    tensor = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    graph = onnx.helper.make_graph([node], "g", [tensor], [onnx.helper.make_tensor_value_info(
        "output", onnx.TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp_path / "other.onnx"
    onnx.save_model(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(SwinIRError, match="not a swinir export"):
        OnnxRuntimeModel(path)


def test_export_refuses_a_folder_and_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match="is a folder"):
        export_network(tiny(), tmp_path)
    assert list(tmp_path.iterdir()) == []
