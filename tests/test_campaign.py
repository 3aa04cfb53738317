"""The bundled models' campaign (tools/campaign): a shipped file is replaced only by a better one.

A tiny same-size model stands in for a bundled one. Two versions of it are made by hand: one whose last conv
is zero (it returns its input exactly: the identity baseline's PSNR) and one whose last conv adds a large
random perturbation (far below the identity). Which of them is "better" is therefore known without running
the campaign's own code.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from swinir.bundled import BundledModel
from swinir.checkpoints import read_checkpoint, save_safetensors
from swinir.errors import SwinIRError
from swinir.evaluation import EvalSettings
from swinir.training import export_weights, parse_config, train
from swinir.training.config import load_config
from test_training import TINY_MODEL, synthetic_images, tiny_raw
from tools.campaign import bundles, cards, compare, gpu, measuring, policy, shipping, store


def _tiny_denoiser(tmp_path: Path) -> Path:
    """Exported weights (with the trainer's metadata) of a tiny colour denoiser, after 2 iterations."""
    root = tmp_path / "data"
    synthetic_images(root / "train", count=4, size=32)
    raw = tiny_raw(root, model={"upscale": 1, "upsampler": ""}, task={"name": "color_dn", "scale": 1, "sigma": 25},
                   train={"iterations": 2})
    assert train(parse_config(raw), tmp_path / "run") == 0
    return export_weights(tmp_path / "run", tmp_path / "trained.safetensors", "last")


def _variant(src: Path, dst: Path, *, perturb: float, iterations: int) -> Path:
    """``src`` with its last conv replaced: zero (exact identity) or a large random perturbation."""
    state, meta = read_checkpoint(src)
    config_meta = {k: v for k, v in meta.items() if k != "swinir.config"}
    config_meta["swinir.iterations"] = str(iterations)
    g = torch.Generator().manual_seed(0)
    state["conv_last.weight"] = torch.randn(state["conv_last.weight"].shape, generator=g) * perturb
    state["conv_last.bias"] = torch.zeros_like(state["conv_last.bias"])
    from swinir.checkpoints import resolve_config

    save_safetensors(dst, state, resolve_config(state, meta, None), config_meta)
    return dst


@pytest.fixture
def workspace(tmp_path: Path):
    datasets = tmp_path / "datasets"
    folder = datasets / "Tiny"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(small, (40, 40), interpolation=cv2.INTER_CUBIC))
    row = bundles.Row("Tiny sigma 25", EvalSettings(task="color_dn", sigma=25), "Tiny", None, ("psnr", "ssim"),
                       target=60.0)
    bundle = bundles.Bundle("tiny-denoise", "bundled_color_dn", "denoise", 1, "a tiny test denoiser", (row,))
    weights = tmp_path / "weights"
    weights.mkdir()
    ws = bundles.Workspace(weights_dir=weights, report=tmp_path / "cards.md", readme=None, datasets=datasets,
                            bundles=(bundle,))
    return ws, bundle


def test_a_worse_candidate_never_replaces_the_shipped_file(tmp_path: Path, workspace) -> None:
    ws, bundle = workspace
    trained = _tiny_denoiser(tmp_path)
    _variant(trained, ws.shipped(bundle), perturb=0.0, iterations=100)
    worse = _variant(trained, tmp_path / "worse.safetensors", perturb=0.5, iterations=150)
    before = ws.shipped(bundle).read_bytes()

    decision = shipping.consider(bundle, worse, ws)

    assert not decision.shipped
    assert ws.shipped(bundle).read_bytes() == before
    entry = json.loads(ws.manifest.read_text())["models"][0]
    noisy_input = entry["quality"]["Tiny sigma 25"]["identity"]["psnr"]
    assert entry["quality"]["Tiny sigma 25"]["model"]["psnr"] == pytest.approx(noisy_input, abs=1e-3)  # identity
    assert decision.candidate_score < noisy_input - 1.0
    assert entry["training"]["iterations"] == 100
    assert [(r["iterations"], r["shipped"]) for r in entry["ledger"]] == [(150, False)]
    assert "| no |" in ws.report.read_text()


def test_a_better_candidate_is_shipped_with_its_counters(tmp_path: Path, workspace) -> None:
    ws, bundle = workspace
    trained = _tiny_denoiser(tmp_path)
    _variant(trained, ws.shipped(bundle), perturb=0.5, iterations=100)
    better = _variant(trained, tmp_path / "better.safetensors", perturb=0.0, iterations=160)

    decision = shipping.consider(bundle, better, ws)

    assert decision.shipped and decision.candidate_score > decision.shipped_score + 1.0
    shipped, meta = read_checkpoint(ws.shipped(bundle))
    expected, _ = read_checkpoint(better)
    assert all(torch.equal(shipped[k], expected[k]) for k in expected)
    assert meta["swinir.iterations"] == "160" and meta["swinir.bundled_name"] == "tiny-denoise"
    entry = json.loads(ws.manifest.read_text())["models"][0]
    assert entry["training"]["iterations"] == 160
    assert entry["quality"]["Tiny sigma 25"]["model"]["psnr"] == pytest.approx(decision.candidate_score)
    assert [(r["iterations"], r["shipped"]) for r in entry["ledger"]] == [(160, True)]
    card = ws.report.read_text()
    assert "## tiny-denoise" in card and "160 iterations" in card.replace(",", "")


def _entry(bundle, **fields) -> BundledModel:
    """A manifest entry of ``bundle`` with the given fields (the rest empty)."""
    return BundledModel(bundle.name, bundle.task, bundle.scale, f"{bundle.name}.safetensors", "", **fields)


def _x2_with_targets(set5: float, set14: float):
    """The x2 bundle with hand-chosen targets, so that these tests do not follow the campaign's current ones."""
    x2 = bundles.bundle_named("swinir-s-sr-x2")
    return dataclasses.replace(x2, rows=bundles.sr_rows(2, {"Set5": set5, "Set14": set14},
                                                          {"Set5": "-", "Set14": "-"}))


def test_a_candidate_that_misses_a_target_the_shipped_model_meets_is_not_shipped() -> None:
    x2 = _x2_with_targets(37.0, 32.6)

    def values(set5: float, set14: float) -> dict[str, dict[str, float]]:
        return {"Set5 x2": {"psnr_y": set5}, "Set14 x2": {"psnr_y": set14}}

    shipped = values(37.03, 32.65)
    assert not policy.ships(values(36.99, 32.80), shipped, x2)  # mean +0.055 dB, but Set5 falls below 37.0
    assert policy.ships(values(37.00, 32.70), shipped, x2)  # mean +0.01 dB, every target still met
    assert not policy.ships(values(37.00, 32.70), shipped, x2, min_gain=0.02)
    below = values(36.90, 32.50)  # a shipped model below its targets: the mean alone decides
    assert policy.ships(values(36.95, 32.48), below, x2)
    assert not policy.ships(values(36.80, 32.55), below, x2)


def test_the_ship_decision_is_made_on_fp32_values_even_when_bf16_ones_pass(tmp_path: Path, monkeypatch) -> None:
    """The withdrawn x2 candidate of 2026-12-05: 37.002 in bf16 but 36.98 in fp32, against a shipped model at
    37.01 in fp32 and a 37.0 target. Measuring is faked with these hand-made values per (file, precision)."""
    x2 = _x2_with_targets(37.0, 32.6)
    ws = bundles.Workspace(weights_dir=tmp_path, report=tmp_path / "cards.md", readme=None, datasets=tmp_path,
                            bundles=(x2,))
    made = {("shipped", "fp32"): (37.01, 32.65), ("shipped", "bf16"): (37.03, 32.66),
            ("candidate", "fp32"): (36.98, 32.70), ("candidate", "bf16"): (37.002, 32.72)}
    measured = []

    def fake_method(weights: Path, settings: EvalSettings, precision: str):
        measured.append(precision)
        return weights.stem, precision

    def fake_mean(method, row, ws):
        return {"psnr_y": made[method][0 if row.label.startswith("Set5") else 1], "ssim_y": 0.9}

    monkeypatch.setattr(measuring, "model_method", fake_method)
    monkeypatch.setattr(measuring, "mean_metrics", fake_mean)
    monkeypatch.setattr(measuring, "measure_references",
                        lambda *a, **k: {"bicubic": {"psnr_y": 33.7, "ssim_y": 0.93}})
    monkeypatch.setattr(store, "read_checkpoint", lambda p: ({}, {"swinir.iterations": "1"}))
    monkeypatch.setattr(shipping, "write_docs", lambda ws: None)
    monkeypatch.setattr(store, "new_entry", lambda b, p: BundledModel(b.name, b.task, b.scale, f"{b.name}.safetensors",
                                                                      "", training={"iterations": 1}))
    shipped = tmp_path / "shipped.safetensors"
    shipped.write_bytes(b"shipped")
    monkeypatch.setattr(bundles.Workspace, "shipped", lambda self, b: shipped)
    candidate = tmp_path / "candidate.safetensors"
    candidate.write_bytes(b"candidate")

    decision = shipping.consider(x2, candidate, ws, full_table=False)

    assert set(measured) == {"fp32"}
    assert not decision.shipped
    assert shipped.read_bytes() == b"shipped"
    bf16 = {"Set5 x2": {"psnr_y": 37.002}, "Set14 x2": {"psnr_y": 32.72}}
    assert policy.ships(bf16, {"Set5 x2": {"psnr_y": 37.01}, "Set14 x2": {"psnr_y": 32.65}}, x2)  # bf16 would


def test_gap_orders_models_by_their_shortfall() -> None:
    x2, x4 = _x2_with_targets(37.0, 32.6), bundles.bundle_named("swinir-s-sr-x4")
    values = {"Set5 x2": {"psnr_y": 36.0}, "Set14 x2": {"psnr_y": 32.5}}
    assert policy.gap(values, x2) == pytest.approx(1.0)  # Set5's 37.0 target is the furthest
    assert policy.gap({}, x4) == float("inf")  # not measured: first in line
    assert policy.score(values, x2) == pytest.approx(34.25)


def test_the_photo_model_starts_from_the_shipped_bicubic_x4_weights(tmp_path: Path) -> None:
    photo = bundles.bundle_named("swinir-s-photo-x4")
    x4 = bundles.bundle_named("swinir-s-sr-x4")
    ws = bundles.Workspace(weights_dir=tmp_path, report=tmp_path / "cards.md", readme=None, datasets=tmp_path)
    assert ws.start_weights(photo) == ws.shipped(x4)  # nothing of its own yet: a fine-tune of the x4 model
    ws.shipped(photo).write_bytes(b"x")
    assert ws.start_weights(photo) == ws.shipped(photo)  # later runs continue its own file
    assert ws.start_weights(x4) == ws.shipped(x4)
    assert {r.label for r in photo.rows if r.held_out} == {"Kodak24 photo q75", "LIVE1 photo q75"}


def test_variants_parse_into_overrides() -> None:
    assert compare.parse_variant("hi=train.lr=8e-4;train.warmup=200") == ("hi", ["train.lr=8e-4", "train.warmup=200"])
    assert compare.parse_variant("recipe=") == ("recipe", [])


def test_held_out_rows_use_images_the_model_never_saw() -> None:
    """Each bundled model has a held-out row, on a folder outside its recipe's training data and validation
    folder and outside the target rows; the held-out rows never count in the score that decides shipping."""
    from swinir.training.config import load_config

    for b in bundles.BUNDLES:
        held = [r for r in b.rows if r.held_out]
        assert held, b.name
        config = load_config(recipe=b.recipe)
        seen = {Path(p).name for p in config.data.train} | {Path(config.val.folder).parts[0]}
        seen |= {Path(r.hr).parts[0] for r in b.target_rows}
        for r in held:
            assert Path(r.hr).parts[0] not in seen, (b.name, r.label)
            assert r.target is None and r not in b.target_rows
        values = {r.label: {r.keys[0]: 30.0} for r in b.target_rows}
        with_held = {**values, **{r.label: {r.keys[0]: 99.0} for r in held}}
        assert policy.score(with_held, b) == policy.score(values, b) == pytest.approx(30.0)


def test_campaign_curves_are_distances_to_each_target_in_iteration_order() -> None:
    x2 = _x2_with_targets(37.0, 32.6)
    entry = _entry(x2, ledger=[{"iterations": 300, "values": {"Set5 x2": 36.5, "Set14 x2": 32.0}},
                               {"iterations": 100, "values": {"Set5 x2": 36.0, "Set14 x2": 31.5}}])
    curves = cards.campaign_curves(entry, x2)
    assert curves == {"Set5 x2 (target 37)": [(100.0, pytest.approx(-1.0)), (300.0, pytest.approx(-0.5))],
                      "Set14 x2 (target 32.6)": [(100.0, pytest.approx(-1.1)), (300.0, pytest.approx(-0.6))]}


def test_the_card_shows_the_campaign_curve_and_complete_measures_only_missing_rows(tmp_path: Path, workspace) -> None:
    ws, bundle = workspace
    held = bundles.Row("Tiny sigma 10", EvalSettings(task="color_dn", sigma=10), "Tiny", None, ("psnr", "ssim"),
                        held_out=True)
    bundle = bundles.Bundle(bundle.name, bundle.recipe, bundle.task, 1, bundle.description, (*bundle.rows, held))
    ws = bundles.Workspace(weights_dir=ws.weights_dir, report=ws.report, readme=None, datasets=ws.datasets,
                            bundles=(bundle,))
    trained = _tiny_denoiser(tmp_path)
    _variant(trained, ws.shipped(bundle), perturb=0.5, iterations=100)
    shipping.consider(bundle, _variant(trained, tmp_path / "zero.safetensors", perturb=0.0, iterations=160), ws,
                      full_table=False)
    quality = json.loads(ws.manifest.read_text())["models"][0]["quality"]
    assert list(quality) == ["Tiny sigma 25"]  # the held-out row is left for later
    before = quality["Tiny sigma 25"]

    shipping.complete_tables([bundle], ws)

    quality = json.loads(ws.manifest.read_text())["models"][0]["quality"]
    assert list(quality) == ["Tiny sigma 25", "Tiny sigma 10"] and quality["Tiny sigma 25"] == before
    # the shipped model is the exact identity: its PSNR is the noisy input's at sigma 10 too
    assert quality["Tiny sigma 10"]["model"]["psnr"] == pytest.approx(quality["Tiny sigma 10"]["identity"]["psnr"],
                                                                      abs=1e-3)
    card = ws.report.read_text()
    assert "| Tiny sigma 10 |" in card and "| held out |" in card and "Held out: Tiny sigma 10" in card
    image = ws.report.parent / "images" / "campaign_tiny-denoise.png"
    assert "(images/campaign_tiny-denoise.png)" in card and image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_and_baselines_follow_the_task_table() -> None:
    """The campaign restates no task fact: SR rows lead with luma PSNR/SSIM against bicubic, denoising with
    RGB PSNR/SSIM against the noisy input, JPEG adds PSNR-B (written out by hand from the paper's tables)."""
    by_name = {b.name: b for b in bundles.BUNDLES}
    assert by_name["swinir-s-sr-x2"].rows[0].keys == ("psnr_y", "ssim_y")
    assert by_name["swinir-s-sr-x2"].baseline == "bicubic" and by_name["swinir-s-photo-x4"].baseline == "bicubic"
    assert by_name["swinir-c-denoise"].rows[0].keys == ("psnr", "ssim")
    assert by_name["swinir-c-denoise"].baseline == "identity"
    assert by_name["swinir-c-jpeg"].rows[0].keys == ("psnr", "ssim", "psnrb")
    assert [b.label for b in bundles.BUNDLES] == ["photo x4", "sr x2", "sr x4", "denoise", "jpeg"]


def test_the_readme_table_gives_each_shown_row_its_own_target_column_entry(workspace) -> None:
    ws, bundle = workspace
    reported = bundles.Row("Tiny sigma 50", EvalSettings(task="color_dn", sigma=50), "Tiny", None, ("psnr",))
    bundle = bundles.Bundle(bundle.name, bundle.recipe, bundle.task, 1, bundle.description, (*bundle.rows, reported))
    ws = bundles.Workspace(weights_dir=ws.weights_dir, report=ws.report, readme=None, datasets=ws.datasets,
                            bundles=(bundle,))
    quality = {"Tiny sigma 25": {"model": {"psnr": 61.0}, "identity": {"psnr": 20.0}},
               "Tiny sigma 50": {"model": {"psnr": 55.0}, "identity": {"psnr": 14.0}}}
    table = cards.readme_table({bundle.name: _entry(bundle, quality=quality, training={"iterations": 1200})}, ws)
    row = table.splitlines()[2].split(" | ")
    # measured, baseline, target, paper: two entries each, in the same order (the second row has no target)
    assert row[4:] == ["Tiny sigma 25 61.00, Tiny sigma 50 55.00", "degraded input 20.00, 14.00", "60, -", "-, - |"]


def test_validation_at_the_last_iteration_every_variant_reached() -> None:
    def rows(points):
        return [{"iteration": float(i), "minutes": 0.0, "val_psnr": v} for i, v in points]

    curves = {"a": rows([(100, 30.0), (150, None), (200, 30.2), (300, 30.3)]),
              "b": rows([(100, 29.9), (200, 30.1), (250, 30.4)])}
    assert compare.validation_at_common_iteration(curves) == {"iteration": 200, "values": {"a": 30.2, "b": 30.1}}
    assert compare.validation_at_common_iteration({"a": rows([(100, 30.0)]), "b": rows([(200, 30.1)])}) is None


def _recipe_model_sets() -> list[str]:
    """Overrides that shrink the colour denoising recipe's network to the tests' tiny one."""
    model = {**TINY_MODEL, "upscale": 1, "upsampler": ""}
    return [f"model.{key}={json.dumps(value)}" for key, value in model.items()]


def test_the_gpu_data_holds_exactly_the_recipes_training_folders(tmp_path: Path, workspace) -> None:
    ws, _ = workspace
    wanted = ["train/BSD200", "train/BSDS500_test200", "train/T91"]  # bundled_color_dn's data.train
    assert gpu.training_folders(ws.bundles) == wanted
    with pytest.raises(SwinIRError, match="train/BSD200: missing"):
        gpu.prepare_gpu_data(ws, tmp_path / "gpu_data")
    for i, folder in enumerate(wanted):
        synthetic_images(ws.datasets / folder, count=1, size=16, seed=i)
    size = gpu.prepare_gpu_data(ws, tmp_path / "gpu_data")
    copied = sorted(p.relative_to(tmp_path / "gpu_data").as_posix() for p in (tmp_path / "gpu_data").rglob("*.png"))
    assert copied == [f"{folder}/img00.png" for folder in wanted]
    assert size == sum((ws.datasets / name).stat().st_size for name in copied)
    assert not (tmp_path / "gpu_data" / "Tiny").exists()  # validation and measuring folders stay behind


@pytest.mark.slow
def test_a_gpu_call_continues_each_model_and_brings_back_weights_measured_here(tmp_path: Path, workspace) -> None:
    """The device call's path end to end, on the CPU: continue the shipped weights in a subprocess trainer,
    export them with their counters into the folder that comes back, then measure them like any candidate."""
    ws, bundle = workspace
    synthetic_images(tmp_path / "gpu_data" / "train", count=4, size=32)
    small = [*_recipe_model_sets(), "data.train=[train]", "data.patch_size=16", "val.folder=null", "log.plot=false"]
    first = load_config(recipe=bundle.recipe, overrides=[*small, f"data.root={tmp_path / 'gpu_data'}",
                                                         "data.batch_size=2", "train.iterations=2"])
    assert train(first, tmp_path / "first") == 0
    shipping.ship(bundle, export_weights(tmp_path / "first", tmp_path / "first.safetensors", "last"), ws)
    args = argparse.Namespace(data=tmp_path / "gpu_data", out=tmp_path / "out", minutes=10.0, batch=3, workers=0,
                              threads=1, device="cpu", runs=tmp_path / "gpu_runs", set=[*small, "train.iterations=5"])

    assert gpu.run_gpu(args, ws) == 0

    _, meta = read_checkpoint(tmp_path / "out" / "tiny-denoise.safetensors")
    history = json.loads(meta["swinir.history"])
    assert meta["swinir.iterations"] == "5" and [(h["start"], h["end"]) for h in history] == [(0, 2), (2, 5)]
    assert [(h["batch_size"], h["device"]) for h in history] == [(2, "cpu"), (3, "cpu")]
    summary = json.loads((tmp_path / "out" / "gpu_summary.json").read_text())
    assert summary["device"] == "cpu" and summary["batch"] == 3
    assert {k: v for k, v in summary["models"]["tiny-denoise"].items() if k != "seconds"} == {
        "start": 2, "exit": 0, "end": 5}
    assert "--device cpu" in (tmp_path / "out" / "gpu_train.log").read_text()

    assert gpu.consider_gpu_results(tmp_path / "out", ws) == 0
    ledger = json.loads(ws.manifest.read_text())["models"][0]["ledger"]
    assert ledger[-1]["iterations"] == 5 and ledger[-1]["note"].startswith("GPU segment (cpu, batch 3")


@pytest.mark.slow
def test_a_from_scratch_comparison_trains_each_width_from_random_weights_and_ships_nothing(
        tmp_path: Path, workspace, monkeypatch) -> None:
    """Widths the shipped file cannot seed: both variants start at iteration 0, the comparison is recorded on
    the card as from random weights, and the shipped file stays what it was."""
    ws, bundle = workspace
    synthetic_images(ws.datasets / "train", count=4, size=32)
    small = [*_recipe_model_sets(), "data.train=[train]", "data.patch_size=16", "data.batch_size=2",
             "val.folder=null", "log.plot=false", "train.iterations=3"]
    first = load_config(recipe=bundle.recipe, overrides=[*small, f"data.root={ws.datasets}"])
    assert train(first, tmp_path / "first") == 0
    shipping.ship(bundle, export_weights(tmp_path / "first", tmp_path / "first.safetensors", "last"), ws)
    before = ws.shipped(bundle).read_bytes()
    # the scorer runs in a child with the real workspace; here it measures in process with the test's
    monkeypatch.setattr(compare, "score_in_process", lambda b, weights, *a: measuring.measure_rows(
        weights, b, b.target_rows, ws))
    args = argparse.Namespace(name=bundle.name, minutes=10.0, parallel=1, val_every=100, runs=tmp_path / "runs",
                              note="", from_scratch=True,
                              variant=[f"narrow={';'.join(small)}", f"wide={';'.join(small)};model.embed_dim=24"])

    assert compare.run_compare(args, ws) == 0

    record = json.loads(ws.manifest.read_text())["models"][0]["comparisons"][-1]
    assert record["from_scratch"] is True and record["start_iterations"] == 0
    assert {v["label"]: v["iterations"] for v in record["variants"]} == {"narrow": 3, "wide": 3}
    wide = read_checkpoint(tmp_path / "runs" / next((tmp_path / "runs").iterdir()).name / "wide.safetensors")[0]
    assert wide["conv_first.weight"].shape[0] == 24  # the variant's own width, not the shipped one's
    assert ws.shipped(bundle).read_bytes() == before
    assert "from random weights (nothing shipped from it)" in ws.report.read_text()


def test_training_order_leaves_models_at_target_out_unless_asked() -> None:
    x2, x4 = bundles.bundle_named("swinir-s-sr-x2"), bundles.bundle_named("swinir-s-sr-x4")
    dn, car = bundles.bundle_named("swinir-c-denoise"), bundles.bundle_named("swinir-c-jpeg")

    def entry(bundle, **offsets: float) -> BundledModel:  # each target row at its target plus an offset (dB)
        return _entry(bundle, quality={r.label: {"model": {r.keys[0]: r.target + offsets[r.label.split(" ")[0]]}}
                                       for r in bundle.target_rows})

    entries = {  # x2: 0.2 dB above both targets; x4: 0.05 above; denoise 0.3 short (Kodak24); JPEG 0.1 short
        x2.name: entry(x2, Set5=0.2, Set14=0.2), x4.name: entry(x4, Set5=0.05, Set14=0.05),
        dn.name: entry(dn, McMaster=0.1, Kodak24=-0.3), car.name: entry(car, LIVE1=-0.1),
    }
    models = [x2, x4, dn, car]
    assert [b.name for b in policy.training_order(models, entries)] == [dn.name, car.name]
    assert [b.name for b in policy.training_order(models, entries, past_targets=True)] == [
        dn.name, car.name, x4.name, x2.name]
    assert set(policy.training_order(models, {})) == set(models)  # nothing measured: every model is due


def test_the_quality_block_keeps_the_bundles_rows_in_order_and_drops_other_weights_rows() -> None:
    x2 = _x2_with_targets(37.0, 32.6)  # rows: Set5 x2, Set14 x2, Kodak24 x2
    old = _entry(x2, quality={"Kodak24 x2": {"model": {"psnr_y": 1.0}}, "Urban100 x2": {"model": {"psnr_y": 2.0}},
                              "Set14 x2": {"model": {"psnr_y": 3.0}}}, quality_measured="2026-01-01, swinir eval, fp32")
    measured = {"Set5 x2": {"model": {"psnr_y": 4.0}}, "Set14 x2": {"model": {"psnr_y": 5.0}}}

    merged = store.with_quality(old, x2, measured, stamp=False)
    assert list(merged.quality) == ["Set5 x2", "Set14 x2", "Kodak24 x2"]  # the table's order; Urban100 gone
    assert [q["model"]["psnr_y"] for q in merged.quality.values()] == [4.0, 5.0, 1.0]
    assert merged.quality_measured == "2026-01-01, swinir eval, fp32"
    fresh = store.with_quality(old, x2, measured, new_weights=True)
    assert list(fresh.quality) == ["Set5 x2", "Set14 x2"]  # rows of the old weights do not describe new ones
    assert fresh.quality_measured == f"{datetime.date.today().isoformat()}, swinir eval, fp32"
    assert old.quality["Set14 x2"]["model"]["psnr_y"] == 3.0  # the entry itself is not changed


def test_the_campaign_writes_the_manifest_that_swinir_reads(tmp_path: Path, monkeypatch) -> None:
    """One entry type for both sides: what the store writes is the hand-written JSON below, ``swinir models``
    reads it back field for field, and a key a newer campaign wrote is dropped with a warning by both."""
    import swinir.bundled as bundled

    x2 = _x2_with_targets(37.0, 32.6)
    ws = bundles.Workspace(weights_dir=tmp_path, report=None, readme=None, datasets=tmp_path, bundles=(x2,))
    (tmp_path / "swinir-s-sr-x2.safetensors").write_bytes(b"")
    with store.locked_entries(ws) as entries:
        entries[x2.name] = _entry(x2, training={"iterations": 7})
    assert ws.manifest.read_text() == (
        '{\n  "models": [\n    {\n      "name": "swinir-s-sr-x2",\n      "task": "sr",\n      "scale": 2,\n'
        '      "file": "swinir-s-sr-x2.safetensors",\n      "description": "",\n      "training": {\n'
        '        "iterations": 7\n      },\n      "quality": {},\n      "quality_measured": "",\n'
        '      "ledger": [],\n      "comparisons": []\n    }\n  ]\n}\n')
    monkeypatch.setattr(bundled, "weights_dir", lambda: tmp_path)
    assert bundled.bundled_models() == [_entry(x2, training={"iterations": 7})]

    newer = json.loads(ws.manifest.read_text())
    newer["models"][0]["future_key"] = 1
    ws.manifest.write_text(json.dumps(newer))
    with pytest.warns(UserWarning, match="future_key"):
        assert [m.label for m in bundled.bundled_models()] == ["sr x2"]
    with pytest.warns(UserWarning, match="future_key"), store.locked_entries(ws) as entries:
        assert entries[x2.name].training == {"iterations": 7}
    assert "future_key" not in ws.manifest.read_text()


def test_the_old_script_path_runs_the_package_from_any_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "campaign.py"
    out = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m tools.campaign") and "gpu-consider" in out.stdout
    bad = subprocess.run([sys.executable, str(script), "consider", "no-such-model", "x.safetensors"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("campaign: error: unknown bundled model 'no-such-model'")
