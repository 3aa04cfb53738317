"""ONNX export and the onnxruntime backend: one graph for every size, equal to eager fp32, usable from the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

for _module in ("onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(_module, reason=f"the ONNX features need '{_module}': pip install 'swinir[onnx]'")

import onnx  # noqa: E402

import swinir  # noqa: E402
from swinir import engine  # noqa: E402
from swinir.backends import open_model, resolve_backend  # noqa: E402
from swinir.checkpoints import count_parameters  # noqa: E402
from swinir.cli import main  # noqa: E402
from swinir.descriptor import BACKENDS  # noqa: E402
from swinir.errors import OptionRefused, SwinIRError  # noqa: E402
from swinir.export import EXPORT_STAGES, OnnxRuntimeModel, export_network  # noqa: E402

pytestmark = pytest.mark.slow  # exports take seconds each: left out of the quick subset (-m "not slow")

TOL = 1e-4  # the bound against eager fp32 (measured: ~1e-6)


def tiny(**changes: object) -> swinir.SwinIR:
    torch.manual_seed(0)
    base = dict(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                upsampler="pixelshuffle")
    base.update(changes)
    return swinir.ModelConfig(**base).build().eval()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A colour x2 checkpoint, its export written by ``swinir export``, and what the command said on stderr."""
    folder = tmp_path_factory.mktemp("onnx")
    model = tiny()
    weights = folder / "tiny_x2.safetensors"
    swinir.save_safetensors(weights, model, swinir.ModelConfig.of(model), {"task": "classical_sr", "iterations": 7})
    out = folder / "tiny_x2.onnx"
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["export", str(weights), "--onnx", str(out)]) == 0
    return weights, out, err.getvalue()


@pytest.fixture(scope="module")
def color_x2(exported: tuple[Path, Path, str]) -> tuple[Path, Path]:
    return exported[0], exported[1]


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
    assert (backend.config.upscale, backend.config.in_chans, backend.config.window_size) == (2, 3, 8)


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
    with pytest.raises(OptionRefused, match="ONNX export") as refused:
        resolve_backend("torch", path)
    assert (refused.value.option, refused.value.accepted) == ("backend", ("onnxruntime",))
    with pytest.raises(OptionRefused, match="fp32") as refused:
        open_model(path, backend="onnxruntime", precision="bf16")
    assert (refused.value.option, refused.value.value, refused.value.accepted) == ("precision", "bf16", ("fp32",))
    model, precision = open_model(path, precision="auto")
    assert isinstance(model.network, OnnxRuntimeModel) and precision == "fp32"
    assert (model.backend, model.precisions, model.info.family, model.info.scale) == ("onnxruntime", ("fp32",), "sr", 2)
    PILImage.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", str(path),
                 "--backend", "torch", "-q"]) == 1
    assert "--backend torch does not apply: tiny_x2.onnx is an ONNX export; use --backend onnxruntime" in (
        capsys.readouterr().err)
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


def test_export_says_what_it_is_doing(exported: tuple[Path, Path, str]) -> None:
    """Minutes of tracing for a full-size model: every stage is announced with the time so far (stderr is not a
    terminal here, so one line each), in order, and the end."""
    said = exported[2].splitlines()
    stages = [line for line in said if line.startswith("export: ") and "... (" in line]
    assert [line.split("export: ")[1].split("... (")[0] for line in stages] == list(EXPORT_STAGES)
    assert all(re.search(r"\.\.\. \(\d+ s\)$", line) for line in stages)
    assert re.fullmatch(r"export: done in \d+ s", said[-1])


def test_info_describes_an_export(tmp_path: Path, exported: tuple[Path, Path, str],
                                  capsys: pytest.CaptureFixture) -> None:
    weights, path, _ = exported
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ONNX, opset 18; fp32 input (*, 3, *, *)" in out  # what swinir export writes: dynamic batch/H/W
    assert "upscale          2" in out and "embed_dim        12" in out and "window_size      8" in out
    assert "task:        super-resolution x2 (trained as classical_sr)" in out
    assert f"parameters:  {count_parameters(swinir.load(weights)):,}" in out
    assert "swinir.source: tiny_x2.safetensors" in out
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(path.read_bytes()[:1000])
    assert main(["info", str(bad)]) == 1
    assert "not a readable ONNX file" in capsys.readouterr().err


def test_onnxruntime_is_tiled_from_its_own_memory_estimate(monkeypatch: pytest.MonkeyPatch,
                                                           color_x2: tuple[Path, Path]) -> None:
    """The whole-image graph takes ~4x PyTorch's memory: with 64 GiB free, PyTorch runs a 1000x1500 image
    whole, onnxruntime in tiles whose estimated activations fit its default budget (2 GiB)."""
    weights, path = color_x2
    monkeypatch.setattr(engine, "available_memory", lambda: 64 << 30)
    backend, _ = open_model(path, threads=1)
    assert engine.plan_restore(swinir.load(weights), 1000, 1500).tile is None
    plan = engine.plan_restore(backend, 1000, 1500)
    assert plan.tile is not None and plan.calls > 1
    assert plan.tile**2 * engine.bytes_per_pixel(backend) <= BACKENDS["onnxruntime"].memory_cap == 2 << 30
    assert engine.plan_restore(backend, 1000, 1500, max_memory=64 << 30).tile is None  # --max-memory raises it


PEAK_SCRIPT = """
import sys, torch
from swinir.backends import open_model
def peak():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
model, _ = open_model(sys.argv[1], threads=1)
model(torch.rand(1, 3, 16, 16))
before = peak()
model(torch.rand(1, 3, 256, 256))
print(peak() - before, model.activation_bytes_per_pixel() * 256 * 256)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc")
def test_the_onnxruntime_memory_estimate_is_honest(color_x2: tuple[Path, Path]) -> None:
    """The estimate the tiles are planned from covers the measured peak of one pass, without doubling it."""
    run = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(color_x2[1])], capture_output=True, text=True,
                         check=True)
    measured, estimate = map(float, run.stdout.split())
    assert measured <= estimate <= 2 * measured, (measured, estimate)
