"""Issue 30 item 7: one vocabulary and one set of defaults across the commands, the server and the docs."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import swinir
from swinir.cli import main
from swinir.errors import SwinIRError
from swinir.evaluation import add_eval_arguments
from swinir.evaluation.command import resolve_task
from swinir.tasks import evaluation_task

ROOT = Path(__file__).resolve().parents[1]


def tiny(path: Path, meta: dict | None = None, **changes: object) -> Path:
    torch.manual_seed(0)
    base = dict(upscale=2, img_size=16, window_size=8, depths=(1,), embed_dim=8, num_heads=(2,),
                upsampler="pixelshuffledirect")
    base.update(changes)
    config = swinir.ModelConfig(**base)  # type: ignore[arg-type]
    swinir.save_safetensors(path, config.build(), config, meta or {})
    return path


def parse(*argv: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


# ------------------------------------------------------------------------------------------------
# eval speaks restore's task words, and reads the task from the weights


@pytest.mark.parametrize(("word", "channels", "trained_as", "task"), [
    ("photo", 3, None, "photo_sr"), ("sr", 3, None, "classical_sr"), ("upscale", 3, None, "classical_sr"),
    ("sr", 3, "lightweight_sr", "lightweight_sr"), ("photo", 3, "real_sr", "real_sr"),
    ("denoise", 3, None, "color_dn"), ("denoise", 1, None, "gray_dn"), ("dn", 1, None, "gray_dn"),
    ("jpeg", 3, None, "color_car"), ("car", 1, None, "gray_car"), ("gray_car", None, None, "gray_car"),
    ("sr", 3, "color_dn", "classical_sr"),  # a trained-as of another family does not decide
])
def test_eval_task_words(word: str, channels: int | None, trained_as: str | None, task: str) -> None:
    assert evaluation_task(word, channels, trained_as) == task


def test_ambiguous_eval_task_words_are_refused() -> None:
    with pytest.raises(SwinIRError, match="color_dn or gray_dn"):
        evaluation_task("denoise")  # a baseline: no channels to decide
    with pytest.raises(SwinIRError, match="no super-resolution task takes 1-channel"):
        evaluation_task("sr", 1)
    with pytest.raises(SwinIRError, match="unknown task 'colorize'"):
        evaluation_task("colorize", 3)


def test_eval_task_and_scale_from_the_weights(tmp_path: Path) -> None:
    x4 = tiny(tmp_path / "x4.safetensors", {"task": "classical_sr"}, upscale=4)
    gray = tiny(tmp_path / "g.safetensors", upscale=1, in_chans=1, upsampler="")
    for argv, task, scale in [
        (("--weights", x4), "classical_sr", 4),  # no --task: what the weights were trained for, and their scale
        (("--weights", x4, "--task", "sr"), "classical_sr", 4),
        (("--weights", gray), "gray_dn", None),  # same-size, 8x8 windows on 0..1: a denoiser, gray
        (("--weights", gray, "--task", "denoise"), "gray_dn", None),
        (("--task", "jpeg"), "color_car", None),  # the bundled JPEG model is RGB
        (("--task", "classical_sr", "--weights", tmp_path / "absent.pth"), "classical_sr", None),  # not read
        (("--task", "denoise", "--method", "identity"), None, None),
    ]:
        args = parse(*argv)
        if task is None:
            with pytest.raises(SwinIRError, match="color_dn or gray_dn"):
                resolve_task(args)
            continue
        resolve_task(args)
        assert (args.task, args.scale) == (task, scale), argv
    with pytest.raises(SwinIRError, match="name what to evaluate"):
        resolve_task(parse("--method", "bicubic"))


def test_eval_without_task_runs_the_weights_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    PILImage.fromarray((np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)).save(hr / "a.png")
    weights = tiny(tmp_path / "m.safetensors", {"task": "classical_sr"})
    assert main(["eval", "--weights", str(weights), "--hr", str(hr), "--precision", "fp32", "-q"]) == 0
    assert "m on classical_sr x2 (border 2, fp32)" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# --help: a line for every argument, the presets listed


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    from swinir.cli import _subcommands, build_parser

    parsers = {}
    for name, *_ in _subcommands():
        try:
            parser = build_parser(name)
        except SwinIRError:  # an optional part not installed here
            continue
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parsers[name] = sub.choices[name]
    return parsers


def test_every_argument_has_a_help_line() -> None:
    parsers = subcommand_parsers()
    assert {"restore", "info", "convert", "export", "eval", "serve"} <= set(parsers)
    missing = [f"{name} {action.option_strings or action.dest}" for name, p in parsers.items()
               for action in p._actions if not action.help]
    assert missing == []


def test_preset_values_are_listed_in_help() -> None:
    from swinir.presets import PRESETS

    for name, parser in subcommand_parsers().items():
        preset = next((a for a in parser._actions if "--preset" in a.option_strings), None)
        if preset is not None:
            assert all(p in preset.help for p in PRESETS), name


# ------------------------------------------------------------------------------------------------
# info shows no paths of the machine that wrote the file, nor of the installation


def test_info_shows_no_internal_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tiny(tmp_path / "m.safetensors", {"training_data": ["/home/someone/data/train/T91"],
                                                "val_dataset": "/srv/x/bench/Set5/HR", "task": "classical_sr"})
    assert main(["info", str(weights)]) == 0
    out = capsys.readouterr().out
    assert 'swinir.training_data: ["train/T91"]' in out and "swinir.val_dataset: Set5/HR" in out
    assert "/home/" not in out and "/srv/" not in out
    from swinir.bundled import bundled_models

    bundled = bundled_models()[0]
    assert main(["info", bundled.name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model:       {bundled.name} ({bundled.file})")
    assert str(bundled.path.parent) not in out


# ------------------------------------------------------------------------------------------------
# the server and its page default to the model restore defaults to


def test_server_defaults_to_the_cli_default_model() -> None:
    from swinir.bundled import bundled_model, bundled_models
    from swinir.service.registry import ModelRegistry
    from swinir.service.settings import Settings

    if not bundled_models():
        pytest.skip("no bundled models in this installation")
    registry = ModelRegistry.from_settings(Settings())
    default = bundled_model()  # what swinir restore runs with no --task/--scale
    assert bundled_models()[0].name == default.name  # the page selects the first model /v1/models lists
    assert registry.resolve(None, None).name == default.name
    if any(m.task == "sr" for m in bundled_models()):
        assert registry.resolve("sr", None).scale == bundled_model("sr").scale == 4


# ------------------------------------------------------------------------------------------------
# the web page: its status line, and the figures docs/web.md quotes


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="runs the page's script with node")
def test_page_status_line_for_one_pass_and_for_tiles() -> None:
    """A job restored in one model call has no tile count stuck at "0 of 1": the line says one pass (and the bar
    is indeterminate); tiled jobs count their tiles."""
    script = (ROOT / "src" / "swinir" / "static" / "app.js").read_text()
    probe = """
const vm = require("vm");
const context = {document: {addEventListener() {}}, window: {addEventListener() {}}, console};
vm.runInNewContext(process.argv[1] + `
console.log(JSON.stringify([
  progressText({state: "running", done: 0, total: 1}, "2.5"),
  progressText({state: "running", done: 3, total: 12}, "4.0"),
  progressText({state: "running", done: 0, total: 0}, "0.3"),
]));`, context);
"""
    run = subprocess.run([NODE, "-e", probe, script], capture_output=True, text=True, check=True)
    one, tiles, loading = json.loads(run.stdout)
    assert "one pass" in one and "0 of 1" not in one and "2.5 s" in one
    assert tiles == "restoring: 3 of 12 tiles · 4.0 s"
    assert loading.startswith("decoding and loading the model")


def test_docs_quote_the_figures_the_server_shows() -> None:
    """docs/web.md quotes the bundled x2 model's measured rows as the page shows them ("Set5 x2: 37.01 dB
    (bicubic 33.67)", the format of app.js's qualityText); a campaign that changes them updates the doc."""
    from swinir.bundled import bundled_models

    x2 = next((m for m in bundled_models() if m.task == "sr" and m.scale == 2), None)
    if x2 is None:
        pytest.skip("no bundled x2 SR model")
    doc = (ROOT / "docs" / "web.md").read_text()
    quoted = re.search(r"`Measured: ([^`]+)`", doc)
    assert quoted is not None
    shown = " · ".join(f"{row}: {value:.2f} dB ({base_name} {base:.2f})" for row, value, base_name, base
                       in x2.quality_rows())
    assert quoted.group(1) == shown, "docs/web.md: update the Measured example to what the page shows"
    model = x2.quality["Set5 x2"]["model"]
    assert f'"model": {{"psnr_y": {model["psnr_y"]}, "ssim_y": {model["ssim_y"]}}}' in doc
