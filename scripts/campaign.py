"""The bundled models' training campaign: continue them, measure them, ship only what measures better.

Every session adds to the same four models. Training continues from the *shipped* weights (their metadata
records iterations, hours and history, so the counters add up across sessions and machines) unless a run
folder of this machine is already further along, which is then resumed exactly. After each slice of
training the candidate is measured with the evaluation protocol of ``swinir eval`` and replaces the shipped
file only when it measures better on the target rows (see ``ships``); every measurement is logged in the
manifest and the model cards.

    python scripts/campaign.py run --hours 2 [--parallel 2] [--slice-minutes 60] [--only NAME] [--runs DIR]
                                   [--past-targets]   # models at their targets too, after the others
    python scripts/campaign.py compare NAME --minutes 30 --variant LABEL=KEY=VALUE[;KEY=VALUE] [--variant ...]
                                   [--from-scratch]   # variants from random weights (another width)
    python scripts/campaign.py consider NAME CANDIDATE.safetensors   # measure; ship if better
    python scripts/campaign.py measure [NAME ...]                    # (re)measure the shipped models
    python scripts/campaign.py complete [NAME ...]                   # measure only the rows not yet measured
    python scripts/campaign.py report                                # models.json, model cards, README table
    python scripts/campaign.py gpu-prepare | gpu --out DIR | gpu-consider DIR   # a lent GPU (see ``run_gpu``)

``run`` trains the models in rounds, the largest gap to its target first (those at target only with
``--past-targets``, the smallest surplus first), one model per CPU core (``--parallel``, each process
pinned to its core with one thread). Slices are counted in CPU time of the training process, so pausing
the campaign or a busy machine does not shorten them. Each trainer runs in its own process group, so pause
them all by name: ``pkill -STOP -f 'swinir.training|campaign.py'`` (``-CONT`` to continue).
Stop it any time (Ctrl-C or SIGTERM): the trainers checkpoint, and the next ``run`` resumes them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from swinir.checkpoints import count_parameters, read_checkpoint, resolve_config, save_safetensors  # noqa: E402
from swinir.errors import SwinIRError  # noqa: E402
from swinir.evaluation import EvalSettings, baseline_method, evaluate, model_method  # noqa: E402
from swinir.fileio import write_bytes_atomic  # noqa: E402
from swinir.hardware import device_summary, machine_summary  # noqa: E402

SHARED = Path(os.environ.get("SWINIR_SHARED", ROOT.parent / "shared"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# What is shipped and how it is measured
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One measured row of a model card: a task setting on one dataset, and the target it should reach."""

    label: str
    settings: EvalSettings
    hr: str  # folder under datasets/
    lr: str | None
    keys: tuple[str, ...]  # metrics shown; the first one is compared
    target: float | None = None  # the campaign's goal for keys[0] (dB); None = reported only
    paper: str = "-"  # the paper's number for the row, for reference
    held_out: bool = False  # images used neither in training, in its validation, nor to choose what ships


@dataclass(frozen=True)
class Bundle:
    """One shipped model: its name, the recipe that trains it, and its rows."""

    name: str
    recipe: str
    task: str  # photo | sr | denoise | jpeg
    scale: int
    description: str
    rows: tuple[Row, ...]
    baseline: str  # bicubic | identity
    start_from: str | None = None  # the bundled model whose weights a first run continues (a fine-tune)
    rivals: tuple[str, ...] = ()  # other bundled models measured on this one's rows (what it must beat)
    limits: str = ("far shorter training than the paper; only bicubic / Gaussian / JPEG degradations seen, so "
                   "real-world photos with other degradations are out of its scope")

    @property
    def target_rows(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.target is not None)


def _sr_rows(scale: int, targets: dict[str, float], paper: dict[str, str]) -> tuple[Row, ...]:
    settings = EvalSettings(task="classical_sr", scale=scale)
    return (*(Row(f"{ds} x{scale}", settings, f"{ds}/HR", f"{ds}/LR_bicubic/X{scale}", ("psnr_y", "ssim_y"),
                  targets[ds], paper[ds]) for ds in ("Set5", "Set14")),
            # Kodak24 has no distributed LR files: ``swinir eval`` makes them with MATLAB's bicubic, as for Set5
            Row(f"Kodak24 x{scale}", settings, "Kodak24", None, ("psnr_y", "ssim_y"), held_out=True))


# The held-out rows: the shared data has no BSD100 / CBSD68 / Urban100 (see datasets/MANIFEST.md), so each model is
# checked on a benchmark set that serves another task here and that it never saw: Kodak24 for SR and JPEG, LIVE1
# for denoising.

def _denoise_rows() -> tuple[Row, ...]:
    targets = {("McMaster", 25): 32.30, ("Kodak24", 25): 32.40}
    paper = {("McMaster", 15): "35.61", ("McMaster", 25): "33.20", ("McMaster", 50): "30.22",
             ("Kodak24", 15): "35.34", ("Kodak24", 25): "32.89", ("Kodak24", 50): "29.79"}
    rows = [Row(f"{ds} sigma {s}", EvalSettings(task="color_dn", sigma=s), ds, None, ("psnr", "ssim"),
                targets.get((ds, s)), paper[ds, s]) for s in (25, 15, 50) for ds in ("McMaster", "Kodak24")]
    rows.append(Row("LIVE1 sigma 25", EvalSettings(task="color_dn", sigma=25), "LIVE1", None, ("psnr", "ssim"),
                    held_out=True))
    return tuple(rows)


def _jpeg_rows() -> tuple[Row, ...]:
    paper = {10: "28.06 / .8089 / 27.76", 20: "30.45 / .8741 / 29.97", 30: "31.82 / .9018 / 31.24",
             40: "32.75 / .9174 / 32.12"}
    keys = ("psnr", "ssim", "psnrb")
    rows = [Row(f"LIVE1 q{q}", EvalSettings(task="color_car", quality=q), "LIVE1", None, keys,
                27.35 if q == 10 else None, paper[q]) for q in (10, 20, 30, 40)]
    rows.append(Row("Kodak24 q10", EvalSettings(task="color_car", quality=10), "Kodak24", None, keys, held_out=True))
    return tuple(rows)


# The photo model must beat the bicubic x4 model by 0.5 dB on photos (issue 25). Measured 2026-12-05 in fp32 on
# bicubic x1/4 + JPEG q75: swinir-s-sr-x4 Set5 28.13, Set14 25.97 (held out: Kodak24 26.66, LIVE1 25.49).
PHOTO_TARGETS = {"Set5": 28.65, "Set14": 26.45}


def _photo_rows(targets: dict[str, float]) -> tuple[Row, ...]:
    """Photo SR x4 on a fixed stand-in for a photo off the web: MATLAB bicubic x1/4, then JPEG quality 75."""
    settings = EvalSettings(task="photo_sr", scale=4, quality=75)
    return tuple(Row(f"{ds} photo q75", settings, hr, None, ("psnr_y", "ssim_y"), targets.get(ds),
                     held_out=ds not in targets)
                 for ds, hr in (("Set5", "Set5/HR"), ("Set14", "Set14/HR"), ("Kodak24", "Kodak24"), ("LIVE1", "LIVE1")))


BUNDLES: tuple[Bundle, ...] = (
    Bundle("swinir-s-photo-x4", "bundled_photo_x4", "photo", 4,
           "x4 super-resolution of photos as people have them (resized, JPEG-compressed, a little noise), "
           "SwinIR-S architecture, fine-tuned on this CPU from swinir-s-sr-x4",
           _photo_rows(PHOTO_TARGETS), "bicubic", start_from="swinir-s-sr-x4", rivals=("swinir-s-sr-x4",),
           limits="far shorter training than the paper; trained for mild blur, resizing, light sensor noise and JPEG "
                  "quality 30-95: heavy noise, strong motion blur or old scans are out of its scope; no GAN, so it "
                  "sharpens what the photo holds rather than inventing texture"),
    Bundle("swinir-s-sr-x2", "bundled_sr_x2", "sr", 2,
           "classical (bicubic) super-resolution x2, SwinIR-S architecture, trained on this CPU",
           _sr_rows(2, {"Set5": 37.40, "Set14": 32.90}, {"Set5": "38.14 / .9611 (S)", "Set14": "33.86 / .9206 (S)"}),
           "bicubic"),
    Bundle("swinir-s-sr-x4", "bundled_sr_x4", "sr", 4,
           "classical (bicubic) super-resolution x4, SwinIR-S architecture, trained on this CPU",
           _sr_rows(4, {"Set5": 31.40, "Set14": 28.05}, {"Set5": "32.44 / .8976 (S)", "Set14": "28.77 / .7858 (S)"}),
           "bicubic"),
    Bundle("swinir-c-denoise", "bundled_color_dn", "denoise", 1,
           "blind color denoising (Gaussian, sigma 0-50), compact SwinIR, trained on this CPU", _denoise_rows(),
           "identity"),
    Bundle("swinir-c-jpeg", "bundled_color_car", "jpeg", 1,
           "blind color JPEG artifact reduction (quality 10-40), compact SwinIR, trained on this CPU", _jpeg_rows(),
           "identity"),
)


def bundle_named(name: str, bundles: Sequence[Bundle] = BUNDLES) -> Bundle:
    for b in bundles:
        if b.name == name:
            return b
    raise SwinIRError(f"unknown bundled model {name!r}; choose one of: {', '.join(b.name for b in bundles)}")


@dataclass(frozen=True)
class Workspace:
    """Where the campaign reads and writes: the shipped weights, their manifest, the cards, the data."""

    weights_dir: Path = ROOT / "src" / "swinir" / "weights"
    report: Path | None = ROOT / "docs" / "bundled_models.md"
    readme: Path | None = ROOT / "README.md"
    datasets: Path = SHARED / "datasets"
    bundles: tuple[Bundle, ...] = BUNDLES

    @property
    def manifest(self) -> Path:
        return self.weights_dir / "models.json"

    def shipped(self, bundle: Bundle) -> Path:
        return self.weights_dir / f"{bundle.name}.safetensors"

    def start_weights(self, bundle: Bundle) -> Path:
        """What training continues: the shipped file, or before one exists, that of ``bundle.start_from``."""
        if self.shipped(bundle).is_file() or bundle.start_from is None:
            return self.shipped(bundle)
        return self.shipped(bundle_named(bundle.start_from, self.bundles))


# --------------------------------------------------------------------------------------------------
# The manifest (models.json): read-modify-write under a file lock, several processes may finish at once
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def locked_manifest(ws: Workspace) -> Iterator[dict[str, Any]]:
    """The manifest as a dict {name: entry}; written back (atomically) when the block ends without error."""
    ws.weights_dir.mkdir(parents=True, exist_ok=True)
    with open(ws.weights_dir / ".models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = read_manifest(ws)
        yield entries
        order = [b.name for b in ws.bundles if b.name in entries] + [n for n in entries if n not in
                                                                      {b.name for b in ws.bundles}]
        text = json.dumps({"models": [entries[n] for n in order]}, indent=2) + "\n"
        write_bytes_atomic(ws.manifest, text.encode())


def read_manifest(ws: Workspace) -> dict[str, Any]:
    if not ws.manifest.is_file():
        return {}
    return {m["name"]: m for m in json.loads(ws.manifest.read_text())["models"]}


def training_info(weights: Path, bundle: Bundle) -> dict[str, Any]:
    """The manifest's ``training`` block, read from the weights' own metadata."""
    state, meta = read_checkpoint(weights)
    config = resolve_config(state, meta, None)
    training = json.loads(meta["swinir.training_config"])
    history = json.loads(meta.get("swinir.history", "[]"))
    hours = float(meta.get("swinir.train_hours", sum(h.get("hours", 0) for h in history)))
    return {
        "data": ", ".join(training["data"]["train"]),
        "recipe": f"src/swinir/training/recipes/{bundle.recipe}.yaml",
        "iterations": int(meta["swinir.iterations"]),
        "batch": training["data"]["batch_size"], "patch": training["data"]["patch_size"],
        "precision": training["train"]["precision"],
        "wall_hours": round(hours, 2),
        "cpu_hours": round(float(meta.get("swinir.cpu_hours", hours)), 2),
        "parameters": count_parameters(config.build()),
        "history": history,
    }


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------


def eval_precision() -> str:
    """fp32, always: what ships is decided on exact values. bf16 moves PSNR by up to 0.02 dB, enough to ship a
    model that misses a target in fp32 (the x2 candidate at 6,441 iterations read 37.002 in bf16, 36.98 in fp32)."""
    return "fp32"


def measure_rows(weights: Path, bundle: Bundle, rows: Sequence[Row], ws: Workspace,
                 precision: str | None = None) -> dict[str, dict[str, float]]:
    """``{label: {metric: value}}`` of a weights file on ``rows``, with the protocol of ``swinir eval``."""
    out = {}
    for row in rows:
        method = model_method(weights, row.settings, precision=precision or eval_precision())
        out[row.label] = _mean(method, row, ws)
        print(f"{bundle.name} {weights.name} {row.label}: {_fmt_metrics(out[row.label])}", flush=True)
    return out


def measure_baseline(bundle: Bundle, row: Row, ws: Workspace) -> dict[str, float]:
    return _mean(baseline_method(bundle.baseline, row.settings), row, ws)


def measure_references(bundle: Bundle, row: Row, ws: Workspace, known: dict[str, Any] | None = None
                       ) -> dict[str, dict[str, float]]:
    """The row's baseline and rivals (``{name: metrics}``), measured where ``known`` (a quality row of the
    manifest) lacks the baseline. Rivals (the shipped files of other bundled models, which may have changed
    since) are measured every time, in fp32 as well."""
    known = known or {}
    out = {bundle.baseline: known.get(bundle.baseline) or measure_baseline(bundle, row, ws)}
    for rival in bundle.rivals:
        weights = ws.shipped(bundle_named(rival, ws.bundles))
        if weights.is_file():
            out[rival] = _mean(model_method(weights, row.settings, precision=eval_precision()), row, ws)
    return out


def _mean(method: Any, row: Row, ws: Workspace) -> dict[str, float]:
    lr = ws.datasets / row.lr if row.lr else None
    results = evaluate(method, row.settings, [(ws.datasets / row.hr, lr)], method_name="m", progress=False)
    return {k: round(results[0].mean[k], 4) for k in row.keys}


def score(values: dict[str, dict[str, float]], bundle: Bundle) -> float | None:
    """Mean of the first metric over the target rows (None when a target row is missing)."""
    rows = bundle.target_rows
    if any(r.label not in values for r in rows):
        return None
    return sum(values[r.label][r.keys[0]] for r in rows) / len(rows)


def gap(values: dict[str, dict[str, float]], bundle: Bundle) -> float:
    """How far the model is below its targets: the largest shortfall in dB (<= 0: every target met)."""
    rows = bundle.target_rows
    if any(r.label not in values for r in rows):
        return math.inf
    return max(r.target - values[r.label][r.keys[0]] for r in rows)  # type: ignore[operator]


def training_order(bundles: Sequence[Bundle], entries: dict[str, Any], *, past_targets: bool = False) -> list[Bundle]:
    """The models to train next, the largest gap to its targets first. Models that meet every target are left
    out, unless ``past_targets``: then they follow, the smallest surplus first (quality users see keeps rising)."""
    gaps = {b.name: gap(model_values(entries.get(b.name)), b) for b in bundles}
    return sorted((b for b in bundles if past_targets or gaps[b.name] > 0), key=lambda b: -gaps[b.name])


def model_values(entry: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """``{label: metrics}`` of the model itself from a manifest entry's quality block."""
    return {label: q["model"] for label, q in (entry or {}).get("quality", {}).items()}


# --------------------------------------------------------------------------------------------------
# Shipping: a candidate replaces the shipped file only when it measures better
# --------------------------------------------------------------------------------------------------


@dataclass
class Decision:
    shipped: bool
    candidate_score: float
    shipped_score: float | None
    values: dict[str, dict[str, float]] = field(default_factory=dict)


def ensure_shipped_measured(bundle: Bundle, ws: Workspace) -> dict[str, dict[str, float]]:
    """The shipped model's values on its target rows, measured now (and recorded) where the manifest lacks them."""
    entry = read_manifest(ws).get(bundle.name)
    values = model_values(entry)
    missing = [r for r in bundle.target_rows if r.label not in values]
    if missing and ws.shipped(bundle).is_file():
        measured = measure_rows(ws.shipped(bundle), bundle, missing, ws)
        references = {r.label: measure_references(bundle, r, ws) for r in missing}
        with locked_manifest(ws) as entries:
            entry = entries.setdefault(bundle.name, new_entry(bundle, ws.shipped(bundle)))
            quality = _drop_stale_rows(entry.get("quality", {}), bundle)
            for r in missing:
                quality[r.label] = {"model": measured[r.label], **references[r.label]}
            entry["quality"] = _ordered_quality(quality, bundle)
            entry["quality_measured"] = f"{date.today().isoformat()}, swinir eval, {eval_precision()}"
        values.update(measured)
    return values


def new_entry(bundle: Bundle, weights: Path) -> dict[str, Any]:
    return {"name": bundle.name, "task": bundle.task, "scale": bundle.scale, "file": f"{bundle.name}.safetensors",
            "description": bundle.description, "training": training_info(weights, bundle), "quality": {},
            "quality_measured": "", "ledger": [], "comparisons": []}


def _drop_stale_rows(quality: dict[str, Any], bundle: Bundle) -> dict[str, Any]:
    """Rows of an older table (other labels) go: every row on a card is measured with the current protocol."""
    labels = {r.label for r in bundle.rows}
    return {k: v for k, v in quality.items() if k in labels}


def _ordered_quality(quality: dict[str, Any], bundle: Bundle) -> dict[str, Any]:
    return {r.label: quality[r.label] for r in bundle.rows if r.label in quality}


def ships(candidate: dict[str, dict[str, float]], shipped: dict[str, dict[str, float]], bundle: Bundle,
          min_gain: float = 0.0) -> bool:
    """Whether a candidate replaces the shipped model: its score is higher by more than ``min_gain`` dB, and it
    meets every target if the shipped model does (a gain on one set never buys a miss on another)."""
    cand_score, shipped_score = score(candidate, bundle), score(shipped, bundle)
    assert cand_score is not None and shipped_score is not None
    if gap(shipped, bundle) <= 0 < gap(candidate, bundle):
        return False
    return cand_score > shipped_score + min_gain


def consider(bundle: Bundle, candidate: Path, ws: Workspace, *, min_gain: float = 0.0,
             full_table: bool = True, note: str = "") -> Decision:
    """Measure ``candidate`` on the target rows; ship it when :func:`ships` says so, and then measure its other
    rows too (``full_table``; otherwise they are left for :func:`complete_tables`, so that a campaign spends its
    time training). Either way the measurement is logged in the ledger."""
    shipped_values = ensure_shipped_measured(bundle, ws)
    shipped_score = score(shipped_values, bundle) if ws.shipped(bundle).is_file() else None
    values = measure_rows(candidate, bundle, bundle.target_rows, ws)
    cand_score = score(values, bundle)
    assert cand_score is not None
    better = not ws.shipped(bundle).is_file() or ships(values, shipped_values, bundle, min_gain)
    _, meta = read_checkpoint(candidate)
    if better and full_table:
        rest = [r for r in bundle.rows if r.target is None]
        values.update(measure_rows(candidate, bundle, rest, ws))
    references = {}
    if better:
        known = read_manifest(ws).get(bundle.name, {}).get("quality", {})
        references = {r.label: measure_references(bundle, r, ws, known.get(r.label))
                      for r in bundle.rows if r.label in values}
        ship(bundle, candidate, ws)
    with locked_manifest(ws) as entries:
        entry = entries.get(bundle.name) or new_entry(bundle, ws.shipped(bundle))
        entries[bundle.name] = entry
        entry.setdefault("ledger", []).append({
            "date": datetime.now().strftime("%Y-%m-%d %H:%M"), "iterations": int(meta["swinir.iterations"]),
            "cpu_hours": round(float(meta.get("swinir.cpu_hours", 0.0)), 2),
            "wall_hours": round(float(meta.get("swinir.train_hours", 0.0)), 2),
            "values": {r.label: values[r.label][r.keys[0]] for r in bundle.target_rows},
            "score": round(cand_score, 4), "shipped_score": None if shipped_score is None else round(shipped_score, 4),
            "shipped": better, "machine": machine_summary(), "precision": eval_precision(),
            **({"note": note} if note else {}),
        })
        if better:
            entry.update({k: v for k, v in new_entry(bundle, ws.shipped(bundle)).items()
                          if k in ("task", "scale", "file", "description", "training")})
            entry["quality"] = _ordered_quality(
                {label: {"model": values[label], **references[label]} for label in values}, bundle)
            entry["quality_measured"] = f"{date.today().isoformat()}, swinir eval, {eval_precision()}"
    write_docs(ws)
    verdict = "shipped" if better else "kept the shipped model"
    print(f"{bundle.name}: candidate {cand_score:.4f} dB vs shipped "
          f"{'none' if shipped_score is None else f'{shipped_score:.4f}'} dB -> {verdict}", flush=True)
    return Decision(better, cand_score, shipped_score, values)


def complete_tables(bundles: Sequence[Bundle], ws: Workspace) -> None:
    """Measure the rows the manifest lacks for the shipped models (after a campaign shipped on target rows)."""
    for b in bundles:
        entry = read_manifest(ws).get(b.name)
        if entry is None or not ws.shipped(b).is_file():
            continue
        missing = [r for r in b.rows if r.label not in entry.get("quality", {})]
        if not missing:
            continue
        values = measure_rows(ws.shipped(b), b, missing, ws)
        references = {r.label: measure_references(b, r, ws) for r in missing}
        with locked_manifest(ws) as entries:
            quality = entries[b.name].setdefault("quality", {})
            for r in missing:
                quality[r.label] = {"model": values[r.label], **references[r.label]}
            entries[b.name]["quality"] = _ordered_quality(quality, b)
    write_docs(ws)


def ship(bundle: Bundle, candidate: Path, ws: Workspace) -> None:
    """Copy the candidate's weights into the package (atomically), with the bundled name in its metadata."""
    state, meta = read_checkpoint(candidate)
    config = resolve_config(state, meta, None)
    keep = {k: v for k, v in meta.items() if k.startswith("swinir.") and k != "swinir.config"}
    keep["swinir.bundled_name"] = bundle.name
    size = sum(t.numel() * t.element_size() for t in state.values())
    if size > 5_000_000:
        raise SwinIRError(f"{candidate}: {size / 1e6:.1f} MB of weights; bundled files must stay under 5 MB")
    save_safetensors(ws.shipped(bundle), state, config, keep)


# --------------------------------------------------------------------------------------------------
# Training slices
# --------------------------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _latest_iteration(run_dir: Path) -> int:
    from swinir.training.state import list_checkpoints

    found = list_checkpoints(run_dir)
    return found[-1][0] if found else -1


def _continues_shipped(run_dir: Path, shipped: Path) -> bool:
    """Whether this machine's run is the shipped weights' own lineage, at or past them: either it continues
    the shipped file (same history before it), or the shipped file was exported from it (same history, plus
    a last segment that began where the run's optimiser segment began)."""
    from swinir.training.state import latest_checkpoint

    if _latest_iteration(run_dir) < 0:
        return False
    _, meta = read_checkpoint(shipped)
    _, state = latest_checkpoint(run_dir)
    progress = state.get("progress", {})
    if int(state["iteration"]) < int(meta["swinir.iterations"]):
        return False

    def spans(history: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
        return [(int(h["start"]), int(h["end"])) for h in history]

    shipped_history = spans(json.loads(meta.get("swinir.history", "[]")))
    run_history = spans(progress.get("history", []))
    continues_it = run_history == shipped_history
    exported_from_it = (bool(shipped_history) and run_history == shipped_history[:-1]
                        and shipped_history[-1][0] == int(progress.get("segment_start", 0)))
    return continues_it or exported_from_it


def train_command(bundle: Bundle, run_dir: Path, ws: Workspace, threads: int, overrides: Sequence[str] = (),
                  *, from_scratch: bool = False) -> list[str]:
    """The ``swinir train`` command of the next slice: resume this machine's run when it is ahead of the
    shipped weights and still has the recipe's config; else continue the shipped weights in a fresh run
    (or, ``from_scratch``, start the recipe from random weights: for variants whose shapes differ)."""
    from swinir.training.config import load_config
    from swinir.training.state import check_resumable, latest_checkpoint, run_config

    base = [sys.executable, "-m", "swinir.training"]
    runtime = [f"train.threads={threads}", "data.num_workers=0", "log.progress=false"]
    sets = [*runtime, f"data.root={ws.datasets}", *overrides]
    if from_scratch:
        if run_dir.exists():
            raise SwinIRError(f"{run_dir} exists; a from-scratch variant starts in a new folder")
        return [*base, "--recipe", bundle.recipe, "--out", str(run_dir), *(a for s in sets for a in ("--set", s))]
    if _continues_shipped(run_dir, ws.start_weights(bundle)):
        _, state = latest_checkpoint(run_dir)
        start = run_dir / "start.safetensors"
        wanted = load_config(recipe=bundle.recipe, overrides=[*sets, f"train.continue_from={start}"])
        try:
            check_resumable(run_config(state), wanted)
            return [*base, "--resume", str(run_dir), *(a for s in runtime for a in ("--set", s))]
        except SwinIRError as err:
            print(f"{bundle.name}: not resuming {run_dir} ({str(err)[:160]}...); continuing the shipped weights",
                  flush=True)
    if run_dir.exists():
        previous = run_dir.with_name(run_dir.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        run_dir.rename(previous)
    run_dir.mkdir(parents=True)
    start = run_dir / "start.safetensors"
    shutil.copy2(ws.start_weights(bundle), start)
    sets.append(f"train.continue_from={start}")
    return [*base, "--recipe", bundle.recipe, "--out", str(run_dir), *(a for s in sets for a in ("--set", s))]


class Stop:
    """Set by SIGINT/SIGTERM: the lanes stop their trainers (which checkpoint) and finish."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.event.set())


def train_slice(command: list[str], log_path: Path, core: int | None, cpu_seconds: float, deadline: float,
                stop: Stop) -> int:
    """Run one trainer until it used ``cpu_seconds`` of CPU (or the deadline / a stop), then SIGTERM it."""
    with open(log_path, "a") as log:
        log.write(f"\n# {datetime.now():%Y-%m-%d %H:%M} {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_pinned_to(core))
        while proc.poll() is None:
            try:
                used = process_cpu_seconds(proc.pid)
            except OSError:
                used = 0.0
            if used >= cpu_seconds or time.time() >= deadline or stop.event.is_set():
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(5)
        return proc.wait()


def _pinned_to(core: int | None) -> Callable[[], None]:
    """A child's first act: its own process group (the campaign's signals reach it only as the campaign
    decides) and, in a lane, that lane's core, so two lanes never share one."""
    def pin() -> None:
        os.setpgrp()
        if core is not None:
            os.sched_setaffinity(0, {core})
    return pin


def _call_self(arguments: list[str], core: int | None, threads: int, log_path: Path) -> int:
    """Run one of this script's own commands in a child pinned to the lane's core, its output appended to the log."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, str(Path(__file__).resolve()), *arguments, "--threads", str(threads)]
    with open(log_path, "a") as log:
        return subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_pinned_to(core), env=env)


def consider_in_process(bundle: Bundle, candidate: Path, core: int | None, threads: int, log_path: Path,
                        note: str) -> int:
    """``consider`` in a child pinned to the lane's core."""
    return _call_self(["consider", bundle.name, str(candidate), "--note", note, "--target-rows-only"],
                      core, threads, log_path)


def score_in_process(bundle: Bundle, weights: Path, core: int | None, threads: int, out: Path,
                     log_path: Path) -> dict[str, dict[str, float]]:
    """The target rows of ``weights``, measured in a child pinned to the lane's core."""
    _call_self(["score", bundle.name, str(weights), "--out", str(out)], core, threads, log_path)
    return json.loads(out.read_text()) if out.is_file() else {}


def run_campaign(args: argparse.Namespace, ws: Workspace) -> int:
    """Rounds over the models (largest gap first), ``--parallel`` lanes, one slice per model and round."""
    from swinir.training.state import export_weights

    stop = Stop()
    stop.install()
    deadline = time.time() + args.hours * 3600
    runs = args.runs
    runs.mkdir(parents=True, exist_ok=True)
    chosen = [bundle_named(n, ws.bundles) for n in args.only] if args.only else list(ws.bundles)
    cores = sorted(os.sched_getaffinity(0))
    lanes = max(1, min(args.parallel, len(cores)))
    threads = max(1, len(cores) // lanes)
    queue: list[Bundle] = []
    busy: set[str] = set()
    lock = threading.Lock()

    def next_bundle() -> Bundle | None:
        with lock:
            if not queue:
                queue.extend(training_order(chosen, read_manifest(ws), past_targets=args.past_targets))
            for b in list(queue):
                if b.name not in busy:
                    queue.remove(b)
                    busy.add(b.name)
                    return b
            return None

    def lane(index: int) -> None:
        core = cores[index * threads] if lanes > 1 else None
        while not stop.event.is_set() and time.time() < deadline - 300:
            bundle = next_bundle()
            if bundle is None:
                return
            try:
                run_dir = runs / bundle.name
                log_path = runs / f"{bundle.name}.log"
                command = train_command(bundle, run_dir, ws, threads, args.set_for(bundle.name))
                print(f"lane {index}: {bundle.name} for {args.slice_minutes:g} CPU-minutes", flush=True)
                code = train_slice(command, log_path, core, args.slice_minutes * 60 * threads, deadline, stop)
                if code not in (0, 143) or _latest_iteration(run_dir) < 0:
                    print(f"lane {index}: {bundle.name} trainer exited with {code}; see {log_path}", flush=True)
                    continue
                if stop.event.is_set():  # measured by the next run, which resumes this one
                    return
                candidate = runs / f"{bundle.name}.candidate.safetensors"
                export_weights(run_dir, candidate, "last")
                consider_in_process(bundle, candidate, core, threads, log_path, note="campaign slice")
            finally:
                with lock:
                    busy.discard(bundle.name)

    workers = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(lanes)]
    for w in workers:
        w.start()
        time.sleep(2)
    for w in workers:
        while w.is_alive():
            w.join(timeout=1.0)
    if not stop.event.is_set():
        import torch

        torch.set_num_threads(len(cores))
        complete_tables(chosen, ws)
    print("campaign finished: " + ", ".join(
        f"{b.name} {score(model_values(read_manifest(ws).get(b.name)), b) or float('nan'):.3f} dB" for b in chosen))
    return 0


# --------------------------------------------------------------------------------------------------
# A lent GPU: one device call continues every model there; the weights come back and are measured here
# --------------------------------------------------------------------------------------------------

GPU_DATA = ROOT / "gpu_data"  # ignored by git; `gpu-prepare` fills it and the device call carries it
DEVICE_TREE_LIMIT = 64 * 2**20  # what may travel with a device call: the tracked tree and the carried folders


def training_folders(bundles: Sequence[Bundle]) -> list[str]:
    """The training folders of the bundled recipes, relative to the datasets folder."""
    from swinir.training.config import load_config

    return sorted({folder for b in bundles for folder in load_config(recipe=b.recipe).data.train})


def prepare_gpu_data(ws: Workspace, dest: Path) -> int:
    """Copy the recipes' training folders (only those: validation and measuring stay here) into ``dest``, the
    folder a device call carries; returns its size in bytes."""
    for folder in training_folders(ws.bundles):
        src = ws.datasets / folder
        if not src.is_dir():
            raise SwinIRError(f"{src}: missing; the GPU run trains on the recipes' folders, so they must exist")
        shutil.copytree(src, dest / folder, dirs_exist_ok=True)
    return sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())


def tracked_bytes() -> int:
    """The size of the files git tracks (they travel with every device call)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / n).stat().st_size for n in names.decode().split("\0") if n and (ROOT / n).is_file())


def run_gpu(args: argparse.Namespace, ws: Workspace) -> int:
    """On the lent machine: continue every bundled model (the largest gap first, those at target too) for
    ``--minutes`` of wall clock each on ``--device``, with large batches and without validation (the weights
    are measured back here), and write each model's exported weights, ``gpu_summary.json`` and the trainers'
    log into ``--out``, the folder that comes back."""
    import torch

    from swinir.training.state import export_weights

    stop = Stop()
    stop.install()
    ws = replace(ws, datasets=args.data.resolve())
    order = training_order(ws.bundles, read_manifest(ws), past_targets=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "gpu_train.log"
    summary: dict[str, Any] = {"device": device_summary(torch.device(args.device)), "machine": machine_summary(),
                               "date": datetime.now().strftime("%Y-%m-%d %H:%M"), "batch": args.batch,
                               "minutes_each": args.minutes, "models": {}}
    sets = [f"data.batch_size={args.batch}", f"data.num_workers={args.workers}", "val.folder=null", *args.set]
    for b in order:
        if stop.event.is_set():
            break
        run_dir = args.runs / b.name
        _, shipped_meta = read_checkpoint(ws.start_weights(b))
        command = [*train_command(b, run_dir, ws, args.threads, sets), "--device", args.device]
        began = time.time()
        code = train_slice(command, log_path, None, math.inf, began + args.minutes * 60, stop)
        record: dict[str, Any] = {"start": int(shipped_meta["swinir.iterations"]), "exit": code,
                                  "seconds": round(time.time() - began, 1)}
        if code in (0, 143) and _latest_iteration(run_dir) >= 0:
            out = export_weights(run_dir, args.out / f"{b.name}.safetensors", "last")
            record["end"] = int(read_checkpoint(out)[1]["swinir.iterations"])
        summary["models"][b.name] = record
        write_bytes_atomic(args.out / "gpu_summary.json", json.dumps(summary, indent=1).encode())
        print(f"{b.name}: {record.get('end', '-')} iterations (from {record['start']:,}) in {record['seconds']:.0f} s,"
              f" trainer exit {code}", flush=True)
    return 0 if all("end" in r for r in summary["models"].values()) and summary["models"] else 1


def consider_gpu_results(folder: Path, ws: Workspace) -> int:
    """Measure here what a GPU call brought back (``NAME.safetensors`` beside ``gpu_summary.json``) and ship
    each model that measures better; the other rows wait for ``complete``."""
    summary = json.loads((folder / "gpu_summary.json").read_text())
    considered = 0
    for b in ws.bundles:
        weights = folder / f"{b.name}.safetensors"
        if weights.is_file():
            consider(b, weights, ws, full_table=False,
                     note=f"GPU segment ({summary['device']}, batch {summary['batch']}, {summary['date']})")
            considered += 1
    if not considered:
        raise SwinIRError(f"{folder}: no bundled model's weights (NAME.safetensors) to measure")
    return 0


# --------------------------------------------------------------------------------------------------
# Recipe comparisons: variants from the same start, equal CPU time, measured the same way
# --------------------------------------------------------------------------------------------------


def run_compare(args: argparse.Namespace, ws: Workspace) -> int:
    """Train each variant for the same CPU minutes from the shipped weights, measure, plot, record; the best
    candidate then goes through :func:`consider` like any other (on the target rows; `complete` fills the rest).

    With ``--from-scratch`` every variant starts from random weights instead (to compare model widths, whose
    shapes the shipped file cannot seed); nothing is shipped then, since such a short run cannot compete with
    the shipped model: the comparison says which start learns faster per CPU minute, and is recorded as such."""
    from swinir.training.monitor import plot_curves
    from swinir.training.state import export_weights

    bundle = bundle_named(args.name, ws.bundles)
    stop = Stop()
    stop.install()
    variants = [parse_variant(v) for v in args.variant]
    cores = sorted(os.sched_getaffinity(0))
    lanes = max(1, min(args.parallel, len(cores), len(variants)))
    threads = max(1, len(cores) // lanes)
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    folder = args.runs / f"compare-{bundle.name}-{stamp}"
    folder.mkdir(parents=True)
    _, shipped_meta = read_checkpoint(ws.start_weights(bundle))
    start_iterations = 0 if args.from_scratch else int(shipped_meta["swinir.iterations"])
    results: dict[str, dict[str, Any]] = {}
    pending = list(variants)
    lock = threading.Lock()

    def lane(index: int) -> None:
        core = cores[index * threads] if lanes > 1 else None
        while not stop.event.is_set():
            with lock:
                if not pending:
                    return
                label, sets = pending.pop(0)
            run_dir = folder / label
            command = train_command(bundle, run_dir, ws, threads, [*sets, f"val.every={args.val_every}"],
                                    from_scratch=args.from_scratch)
            train_slice(command, folder / f"{label}.log", core, args.minutes * 60 * threads, math.inf, stop)
            if _latest_iteration(run_dir) < 0:
                continue
            candidate = folder / f"{label}.safetensors"
            export_weights(run_dir, candidate, "last")
            values = score_in_process(bundle, candidate, core, threads, folder / f"{label}.json",
                                      folder / f"{label}.log")
            if not values:
                continue
            rows = _csv_rows(run_dir / "log.csv")
            with lock:
                results[label] = {"overrides": sets, "iterations": _latest_iteration(run_dir) - start_iterations,
                                  "values": {k: v[next(iter(v))] for k, v in values.items()},
                                  "score": round(score(values, bundle) or math.nan, 4), "curve": rows,
                                  "candidate": str(candidate)}

    workers = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(lanes)]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(timeout=1.0)
    if not results:
        print("no variant finished")
        return 1
    image = f"compare_{bundle.name}_{stamp}.png"
    curves = {label: [(r["minutes"], r["val_psnr"]) for r in res["curve"] if r["val_psnr"] is not None]
              for label, res in results.items()}
    if ws.report is not None:
        plot_curves(ws.report.parent / "images" / image, curves, x_label="minutes of training (wall clock)",
                    y_label="validation PSNR (dB, EMA weights)", title=f"{bundle.name}: recipe comparison")
    winner = max(results, key=lambda k: results[k]["score"])
    with locked_manifest(ws) as entries:
        entry = entries.setdefault(bundle.name, new_entry(bundle, ws.shipped(bundle)))
        entry.setdefault("comparisons", []).append({
            "date": date.today().isoformat(), "cpu_minutes": args.minutes, "start_iterations": start_iterations,
            "machine": machine_summary(), "image": f"images/{image}", "winner": winner,
            "variants": [{"label": k, **{f: v[f] for f in ("overrides", "iterations", "values", "score")}}
                         for k, v in results.items()],
            "validation_at": validation_at_common_iteration({k: v["curve"] for k, v in results.items()}),
            **({"from_scratch": True} if args.from_scratch else {}),
            **({"note": args.note} if args.note else {}),
        })
    for label, res in sorted(results.items(), key=lambda kv: -kv[1]["score"]):
        print(f"{label:24s} {res['score']:.4f} dB  +{res['iterations']} it  {'; '.join(res['overrides'])}")
    if args.from_scratch:
        write_docs(ws)
        return 0
    # the other rows wait for `complete`, as in a campaign: measuring them here would double the comparison's time
    consider(bundle, Path(results[winner]["candidate"]), ws, full_table=False, note=f"comparison winner {winner}")
    return 0


def validation_at_common_iteration(curves: dict[str, list[dict[str, float | None]]]) -> dict[str, Any] | None:
    """The validation PSNR of every variant at the last iteration all of them validated at: the comparison at
    equal iterations, beside the one at equal CPU time (which a machine whose speed drifts makes noisy)."""
    validated = {label: {int(r["iteration"]): r["val_psnr"] for r in rows if r["val_psnr"] is not None}
                 for label, rows in curves.items()}
    common = set.intersection(*(set(v) for v in validated.values())) if validated else set()
    if not common:
        return None
    at = max(common)
    return {"iteration": at, "values": {label: v[at] for label, v in validated.items()}}


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``LABEL=KEY=VALUE;KEY=VALUE`` -> (label, ["KEY=VALUE", ...]); ``LABEL=`` is the recipe unchanged."""
    label, sep, rest = text.partition("=")
    if not sep or not label:
        raise SwinIRError(f"--variant expects LABEL=KEY=VALUE[;KEY=VALUE], got {text!r}")
    return label, [s.strip() for s in rest.split(";") if s.strip()]


def _csv_rows(path: Path) -> list[dict[str, float | None]]:
    import csv

    rows = []
    if not path.is_file():
        return rows
    with path.open() as f:
        for r in csv.DictReader(f):
            rows.append({"iteration": float(r["iteration"]), "minutes": float(r["seconds"]) / 60,
                         "val_psnr": float(r["val_psnr"]) if r.get("val_psnr") else None})
    if rows:
        first = rows[0]["minutes"]
        for r in rows:
            r["minutes"] = r["minutes"] - first  # type: ignore[operator]
    return rows


# --------------------------------------------------------------------------------------------------
# Reports: the model cards (docs/bundled_models.md) and the README table
# --------------------------------------------------------------------------------------------------

README_START, README_END = "<!-- bundled-models:start -->", "<!-- bundled-models:end -->"


def _fmt_metrics(values: dict[str, float]) -> str:
    return " / ".join(f"{v:.4f}".lstrip("0") if v < 1 else f"{v:.2f}" for v in values.values())


def _target_cell(row: Row) -> str:
    return "held out" if row.held_out else "-" if row.target is None else f"{row.target:g}"


def _curve_image(bundle: Bundle) -> str:
    """The campaign curve's path, relative to the model cards' folder."""
    return f"images/campaign_{bundle.name}.png"


def campaign_curves(entry: dict[str, Any], bundle: Bundle) -> dict[str, list[tuple[float, float]]]:
    """Per target row, (iterations, dB above its target) of every measured candidate, in order of iterations:
    one scale for all rows, so that the dashed line at 0 is every row's target."""
    ledger = sorted(entry.get("ledger", []), key=lambda r: r["iterations"])
    return {f"{r.label} (target {r.target:g})": [(float(m["iterations"]), m["values"][r.label] - r.target)
                                               for m in ledger if r.label in m["values"]]
            for r in bundle.target_rows if r.target is not None}


# Photos off the web for the photo model's card: held-out LIVE1 pictures saved as JPEG quality 75 (OpenCV, as a
# phone or a website would), then a textured 96x96 piece of the JPEG (on its 8x8 block grid) upscaled x4.
CROP_PHOTOS = ("LIVE1/bikes.bmp", "LIVE1/parrots.bmp", "LIVE1/buildings.bmp")
CROP_SIZE, CROP_QUALITY = 96, 75


def _textured_corner(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (on the 8x8 JPEG grid) of the ``size`` square with the most detail (Laplacian energy)."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    energy = cv2.integral(np.abs(cv2.Laplacian(gray, cv2.CV_64F)))
    best, corner = -1.0, (0, 0)
    for y in range(0, img.shape[0] - size + 1, 8):
        for x in range(0, img.shape[1] - size + 1, 8):
            e = energy[y + size, x + size] - energy[y, x + size] - energy[y + size, x] + energy[y, x]
            if e > best:
                best, corner = e, (y, x)
    return corner


def real_jpeg_crops(bundle: Bundle, ws: Workspace) -> str | None:
    """Write (when the shipped file is newer) side-by-side crops of real JPEGs through bicubic, the rivals and
    the shipped model, one row per photo; returns the image's path relative to the cards, or None."""
    import swinir
    from swinir.degradations import imresize, jpeg_compress
    from swinir.evaluation.report import comparison_panel, write_png

    rel = f"images/crops_{bundle.name}.png"
    shipped = ws.shipped(bundle)
    if ws.report is None or not bundle.rivals or not shipped.is_file():
        return None
    out = ws.report.parent / rel
    if out.is_file() and out.stat().st_mtime >= shipped.stat().st_mtime:
        return rel
    models = [(name, swinir.load(ws.shipped(bundle_named(name, ws.bundles)))) for name in bundle.rivals]
    models.append((bundle.name, swinir.load(shipped)))
    rows = []
    for photo in CROP_PHOTOS:
        img = cv2.imread(str(ws.datasets / photo), cv2.IMREAD_COLOR)[..., ::-1]
        y, x = _textured_corner(img, CROP_SIZE)
        piece = jpeg_compress(np.ascontiguousarray(img), CROP_QUALITY)[y : y + CROP_SIZE, x : x + CROP_SIZE]
        s = bundle.scale
        panels = [(f"{Path(photo).name} JPEG q{CROP_QUALITY}", np.repeat(np.repeat(piece, s, 0), s, 1)),
                  ("bicubic", np.clip(np.round(imresize(piece.astype(np.float64), float(s))), 0, 255).astype(np.uint8))]
        panels += [(name, swinir.restore(model, piece, precision="fp32")) for name, model in models]
        rows.append(comparison_panel(panels, (0, 0), CROP_SIZE * s, zoom=1))
    gap = np.full((8, rows[0].shape[1], 3), 255, np.uint8)
    write_png(out, np.concatenate([r for row in rows for r in (row, gap)][:-1], axis=0))
    return rel


def write_docs(ws: Workspace) -> None:
    """Regenerate the model cards (with each model's campaign curve as PNG) and the README's table."""
    from swinir.training.monitor import plot_curves

    entries = read_manifest(ws)
    if ws.report is not None:
        for b in ws.bundles:
            if entries.get(b.name, {}).get("ledger"):
                plot_curves(ws.report.parent / _curve_image(b), campaign_curves(entries[b.name], b),
                            x_label="iterations (every candidate the campaign measured)",
                            y_label="PSNR - target (dB)", title=f"{b.name}: campaign", reference=0.0,
                            reference_label="target")
            real_jpeg_crops(b, ws)
        write_bytes_atomic(ws.report, card_text(entries, ws).encode())
    if ws.readme is not None and ws.readme.is_file():
        text = ws.readme.read_text()
        if README_START in text and README_END in text:
            head, rest = text.split(README_START, 1)
            _, tail = rest.split(README_END, 1)
            write_bytes_atomic(ws.readme, (head + README_START + "\n" + readme_table(entries, ws) + README_END
                                           + tail).encode())


def readme_table(entries: dict[str, Any], ws: Workspace) -> str:
    lines = ["| model | task | size | iterations | measured | baseline | target | paper |",
             "|---|---|---:|---:|---|---|---|---|"]
    for b in ws.bundles:
        e = entries.get(b.name)
        if e is None:
            continue
        size = ws.shipped(b).stat().st_size / 1e6 if ws.shipped(b).is_file() else 0
        shown = [r for r in b.rows if r.label in e["quality"]][:2] or list(b.target_rows)
        q = e["quality"]
        measured = ", ".join(f"{r.label} {q[r.label]['model'][r.keys[0]]:.2f}" for r in shown if r.label in q)
        base = ", ".join(f"{q[r.label][b.baseline][r.keys[0]]:.2f}" for r in shown if r.label in q)
        measured = measured or "not measured yet"
        target = ", ".join("-" if r.target is None else f"{r.target:g}" for r in shown)  # one per row shown
        paper = ", ".join(r.paper.split(" ")[0] for r in shown)
        task = f"SR x{b.scale}" if b.task == "sr" else f"{b.task} x{b.scale}" if b.scale > 1 else b.task
        lines.append(f"| `{b.name}` | {task} | {size:.1f} MB | {e['training']['iterations']:,} | {measured} | "
                     f"{b.baseline} {base} | {target} | {paper} |")
    return "\n".join(lines) + "\n"


def card_text(entries: dict[str, Any], ws: Workspace) -> str:
    lines = ["# Bundled models", "",
             "Trained on this project's CPU machines with `swinir train` (recipes in `src/swinir/training/recipes`),",
             "continued session after session by `scripts/campaign.py`, which ships a candidate only when it",
             "measures better than the shipped file with the evaluation protocol of `swinir eval`. SR rows: PSNR /",
             "SSIM on Y, border = scale; denoising: PSNR / SSIM on RGB (noise seed 0); JPEG: PSNR / SSIM / PSNR-B",
             "on RGB. The paper's numbers (SwinIR-S for SR, SwinIR-M trained per level for the others, on",
             "DIV2K-scale data for hundreds of thousands of iterations) are for reference only.", ""]
    for b in ws.bundles:
        e = entries.get(b.name)
        if e is None:
            continue
        t = e["training"]
        lines += [f"## {b.name}", "", b.description + ".", "",
                  f"- task: `{b.task}`" + (f" x{b.scale}" if b.task == "sr" else "")
                  + f"; file `src/swinir/weights/{e['file']}`; {t['parameters']:,} parameters",
                  f"- data: {t['data']} (no DIV2K: none is available here)",
                  f"- recipe: `{t['recipe']}` (batch {t['batch']}, LR patch {t['patch']}, {t['precision']})",
                  f"- trained: {t['iterations']:,} iterations, {t['wall_hours']} wall-clock hours, "
                  f"{t.get('cpu_hours', t['wall_hours'])} CPU hours",
                  "- intended use: a working default on any machine; for best quality use the authors' checkpoints",
                  f"- limits: {b.limits}",
                  f"- measured: {e.get('quality_measured', '')}", ""]
        if e["quality"]:
            rivals = "".join(f" {name} | gain over it (dB) |" for name in b.rivals)
            lines += [f"| set | this model | {b.baseline} | gain (dB) |{rivals} target | paper |",
                      "|---|---|---|---:|" + "---|---:|" * len(b.rivals) + "---:|---|"]
            for r in b.rows:
                q = e["quality"].get(r.label)
                if q is None:
                    continue
                mv, bv = q["model"], q[b.baseline]
                against = "".join(f" {_fmt_metrics(q[n])} | {mv[r.keys[0]] - q[n][r.keys[0]]:+.2f} |" if n in q
                                  else " - | - |" for n in b.rivals)
                lines.append(f"| {r.label} | {_fmt_metrics(mv)} | {_fmt_metrics(bv)} | "
                             f"{mv[r.keys[0]] - bv[r.keys[0]]:+.2f} |{against} {_target_cell(r)} | {r.paper} |")
            lines.append("")
            held = [r.label for r in b.rows if r.held_out and r.label in e["quality"]]
            if held:
                lines += [f"Held out: {', '.join(held)} — images this model never saw, in training, in the "
                          "validation during training, or when the campaign chose what to ship.", ""]
        history = t.get("history", [])
        if history:
            lines += ["Training history (one row per segment; a new segment starts with a fresh optimiser):", "",
                      "| iterations | hours | CPU hours | it / CPU hour | date | machine | lr, schedule | "
                      "batch x patch | notes |",
                      "|---|---:|---:|---:|---|---|---|---|---|"]
            for h in history:
                recipe = f"{h.get('lr', '-')}, {h.get('schedule', '-')}" + (
                    f", warm-up {h['warmup']}" if h.get("warmup") else "")
                on_gpu = h.get("device", "cpu") != "cpu"  # then the machine is the GPU's host, the rate "-"
                rate = f"{(h['end'] - h['start']) / h['cpu_hours']:,.0f}" if h.get("cpu_hours") and not on_gpu else "-"
                machine = h.get("machine", "-") + (f"; {h['device']}" if on_gpu else "")
                lines.append(f"| {h['start']:,} -> {h['end']:,} | {h.get('hours', '-')} | {h.get('cpu_hours', '-')} "
                             f"| {rate} | {h.get('date', '-')} | {machine} | {recipe} | "
                             f"{h.get('batch_size', '-')} x {h.get('patch_size', '-')} | {h.get('note', '')} |")
            lines.append("")
        ledger = e.get("ledger", [])
        if ledger:
            labels = [r.label for r in b.target_rows]
            lines += ["Campaign log (every candidate measured; shipped only when better):", "",
                      f"| date | iterations | CPU hours | {' | '.join(labels)} | score | shipped | machine |",
                      "|---|---:|---:|" + "---:|" * len(labels) + "---:|---|---|"]
            for row in ledger:
                vals = " | ".join(f"{row['values'].get(lab, math.nan):.2f}" for lab in labels)
                lines.append(f"| {row['date']} | {row['iterations']:,} | {row['cpu_hours']} | {vals} | "
                             f"{row['score']:.3f} | {'yes' if row['shipped'] else 'no'} | {row['machine']} |")
            lines += ["", f"![{b.name} campaign curve]({_curve_image(b)})", ""]
        crops = f"images/crops_{b.name}.png"
        if b.rivals and ws.report is not None and (ws.report.parent / crops).is_file():
            lines += [f"Real JPEGs (held-out LIVE1 photos saved at JPEG quality {CROP_QUALITY}, a {CROP_SIZE}x"
                      f"{CROP_SIZE} piece upscaled x{b.scale}; fp32): the input enlarged, bicubic, "
                      + ", ".join(b.rivals) + ", this model.", "", f"![{b.name} on real JPEGs]({crops})", ""]
        for c in e.get("comparisons", []):
            start = ("from random weights (nothing shipped from it)" if c.get("from_scratch") else
                     f"from iteration {c['start_iterations']:,} of the shipped weights")
            lines += [f"Recipe comparison, {c['date']}: {c['cpu_minutes']} CPU-minutes per variant {start} "
                      f"({c['machine']}); winner `{c['winner']}`.", "",
                      "| variant | changes | iterations | score (dB) | validation at the same iteration (dB) |",
                      "|---|---|---:|---:|---:|"]
            common = c.get("validation_at") or {"iteration": None, "values": {}}
            for v in sorted(c["variants"], key=lambda v: -v["score"]):
                val = common["values"].get(v["label"])
                lines.append(f"| {v['label']} | {'; '.join(v['overrides']) or 'the recipe'} | {v['iterations']:,} | "
                             f"{v['score']:.3f} | {'-' if val is None else f'{val:.3f}'} |")
            lines.append("")
            if common["iteration"] is not None:
                lines += [f"Score: the mean of the target rows after the CPU budget (what decides). Validation: the "
                          f"trainer's EMA weights on its validation crops at iteration {common['iteration']:,}, the "
                          "last one every variant reached (equal work per iteration only where batch and patch are "
                          "equal).", ""]
            if c.get("note"):
                lines += [c["note"], ""]
            lines += [f"![{b.name} recipe comparison]({c['image']})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train, measure and ship in rounds for a wall-clock budget")
    r.add_argument("--hours", type=float, required=True)
    r.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "campaign",
                   help="run folders (outside the repository; default ../runs/campaign)")
    r.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)), help="models trained at once")
    r.add_argument("--slice-minutes", type=float, default=60.0, help="CPU-minutes per core of one slice")
    r.add_argument("--only", action="append", help="train only these models (repeatable)")
    r.add_argument("--past-targets", action="store_true",
                   help="also train the models that meet their targets (after those that do not)")
    r.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE",
                   help="a config override for one model's runs, e.g. swinir-s-sr-x2:train.lr=5e-4")
    c = sub.add_parser("compare", help="recipe variants from the same start, equal CPU time")
    c.add_argument("name")
    c.add_argument("--variant", action="append", required=True, metavar="LABEL=KEY=VALUE[;KEY=VALUE]")
    c.add_argument("--minutes", type=float, default=30.0, help="CPU-minutes per core for each variant")
    c.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)))
    c.add_argument("--val-every", type=int, default=100)
    c.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "campaign")
    c.add_argument("--note", default="", help="a remark printed under the comparison on the model card")
    c.add_argument("--from-scratch", action="store_true",
                   help="start every variant from random weights (e.g. another width); ships nothing")
    k = sub.add_parser("consider", help="measure a candidate and ship it if it is better")
    k.add_argument("name")
    k.add_argument("candidate", type=Path)
    k.add_argument("--threads", type=int, default=None)
    k.add_argument("--min-gain", type=float, default=0.0, help="dB the candidate must gain (default 0)")
    k.add_argument("--note", default="")
    k.add_argument("--target-rows-only", action="store_true", help="leave the other rows for later")
    sc = sub.add_parser("score", help="measure a weights file on a model's target rows (JSON)")
    sc.add_argument("name")
    sc.add_argument("weights", type=Path)
    sc.add_argument("--threads", type=int, default=None)
    sc.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("measure", help="measure the shipped models on every row and record the results")
    m.add_argument("names", nargs="*")
    cm = sub.add_parser("complete", help="measure only the rows the manifest lacks for the shipped models")
    cm.add_argument("names", nargs="*")
    sub.add_parser("report", help="rewrite the model cards and the README table from the manifest")
    sub.add_parser("gpu-prepare", help=f"copy the training folders into {GPU_DATA.name}/ and print the device call")
    g = sub.add_parser("gpu", help="(on a lent GPU machine) continue every model for --minutes each")
    g.add_argument("--data", type=Path, default=GPU_DATA, help="the carried training folders")
    g.add_argument("--out", type=Path, required=True, help="where the weights, summary and log go ($OUT)")
    g.add_argument("--minutes", type=float, default=1.7, help="wall-clock minutes per model")
    g.add_argument("--batch", type=int, default=64)
    g.add_argument("--workers", type=int, default=6, help="data-loading processes")
    g.add_argument("--threads", type=int, default=4, help="torch CPU threads of each trainer")
    g.add_argument("--device", default="cuda")
    g.add_argument("--runs", type=Path, default=Path("/tmp/swinir-gpu-runs"))
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe override for all")
    gc = sub.add_parser("gpu-consider", help="measure the weights a GPU call brought back; ship the better ones")
    gc.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    ws = Workspace()
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    if args.command == "run":
        overrides: dict[str, list[str]] = {}
        for item in args.set:
            name, sep, setting = item.partition(":")
            if not sep:
                raise SwinIRError(f"--set expects NAME:KEY=VALUE, got {item!r}")
            overrides.setdefault(bundle_named(name).name, []).append(setting)
        args.set_for = lambda name: overrides.get(name, [])
        return run_campaign(args, ws)
    if args.command == "compare":
        return run_compare(args, ws)
    if args.command == "gpu-prepare":
        size = prepare_gpu_data(ws, GPU_DATA) + tracked_bytes()
        print(f"{GPU_DATA.name}/ and the tracked files: {size / 2**20:.1f} MiB of {DEVICE_TREE_LIMIT / 2**20:.0f}")
        if size > DEVICE_TREE_LIMIT:
            raise SwinIRError("too much to carry to the device; drop a training folder from gpu_data/")
        print("device call: run(command='PYTHONUNBUFFERED=1 python3 scripts/campaign.py gpu --out $OUT', "
              f"carry=['{GPU_DATA.name}'], timeout_s=570); then: python scripts/campaign.py gpu-consider FILES_AT")
        return 0
    if args.command == "gpu":
        return run_gpu(args, ws)
    if args.command == "gpu-consider":
        return consider_gpu_results(args.folder, ws)
    if args.command == "consider":
        consider(bundle_named(args.name), args.candidate, ws, min_gain=args.min_gain, note=args.note,
                 full_table=not args.target_rows_only)
        return 0
    if args.command == "score":
        b = bundle_named(args.name)
        values = measure_rows(args.weights, b, b.target_rows, ws)
        write_bytes_atomic(args.out, json.dumps(values).encode())
        return 0
    if args.command == "complete":
        complete_tables([bundle_named(n) for n in args.names] or list(ws.bundles), ws)
        return 0
    if args.command == "measure":
        for b in [bundle_named(n) for n in args.names] or list(ws.bundles):
            values = measure_rows(ws.shipped(b), b, b.rows, ws)
            with locked_manifest(ws) as entries:
                entry = entries.setdefault(b.name, new_entry(b, ws.shipped(b)))
                old = entry.get("quality", {})
                entry["training"] = training_info(ws.shipped(b), b)
                entry["quality"] = {r.label: {"model": values[r.label],
                                              **measure_references(b, r, ws, old.get(r.label))} for r in b.rows}
                entry["quality_measured"] = f"{date.today().isoformat()}, swinir eval, {eval_precision()}"
        write_docs(ws)
        return 0
    write_docs(ws)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SwinIRError as err:
        print(f"campaign: error: {err}", file=sys.stderr)
        sys.exit(1)
