"""Export the bundled models from their training runs, measure them with the evaluation protocol, and write
the manifest (``src/swinir/weights/models.json``) and the results table (``docs/bundled_models.md``).

    python scripts/bundle_models.py --runs /work/runs [--which best|last] [--precision fp32|bf16] [--only NAME]

Every number it writes comes from :mod:`swinir.evaluation` (the paper's protocol), next to the baseline
(bicubic or the degraded input) measured in the same run and the paper's numbers for reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from swinir import load  # noqa: E402
from swinir.checkpoints import count_parameters, read_checkpoint, save_safetensors  # noqa: E402
from swinir.evaluation import EvalSettings, baseline_method, evaluate, model_method  # noqa: E402
from swinir.training.state import export_weights  # noqa: E402

WEIGHTS = ROOT / "src" / "swinir" / "weights"
SHARED = Path(os.environ.get("SWINIR_SHARED", ROOT.parent / "shared")) / "datasets"


@dataclass(frozen=True)
class Evaluation:
    """One row of the table: a task setting on some datasets ((HR, LR or None) folders under datasets/)."""

    label: str
    settings: EvalSettings
    datasets: tuple[tuple[str, str | None], ...]
    keys: tuple[str, ...]  # metrics shown


@dataclass(frozen=True)
class Bundle:
    name: str
    run: str
    task: str  # sr | denoise | jpeg
    scale: int
    description: str
    evaluations: tuple[Evaluation, ...]
    baseline: str  # bicubic | identity


def _sr(scale: int) -> tuple[Evaluation, ...]:
    return tuple(
        Evaluation(f"{ds} x{scale}", EvalSettings(task="classical_sr", scale=scale),
                   ((f"{ds}/HR", f"{ds}/LR_bicubic/X{scale}"),), ("psnr_y", "ssim_y"))
        for ds in ("Set5", "Set14")
    )


BUNDLES = (
    Bundle("swinir-s-sr-x2", "bundled_sr_x2", "sr", 2,
           "classical (bicubic) super-resolution x2, SwinIR-S architecture, trained on this CPU", _sr(2), "bicubic"),
    Bundle("swinir-s-sr-x4", "bundled_sr_x4", "sr", 4,
           "classical (bicubic) super-resolution x4, SwinIR-S architecture, trained on this CPU", _sr(4), "bicubic"),
    Bundle("swinir-c-denoise", "bundled_color_dn", "denoise", 1,
           "blind color denoising (Gaussian, sigma 0-50), compact SwinIR, trained on this CPU",
           tuple(Evaluation(f"{ds} sigma {s}", EvalSettings(task="color_dn", sigma=s), ((ds, None),), ("psnr", "ssim"))
                 for ds in ("McMaster", "Kodak24") for s in (15, 25, 50)), "identity"),
    Bundle("swinir-c-jpeg", "bundled_color_car", "jpeg", 1,
           "blind color JPEG artifact reduction (quality 10-40), compact SwinIR, trained on this CPU",
           tuple(Evaluation(f"{ds} q{q}", EvalSettings(task="color_car", quality=q), ((ds, None),),
                            ("psnr", "ssim", "psnrb"))
                 for ds in ("LIVE1", "classic5") for q in (10, 20, 30, 40)), "identity"),
)


def run_hours(run_dir: Path) -> float:
    """Wall-clock hours the run has trained (the log's last 'seconds' entry, summed over resumed segments)."""
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    return float(rows[-1]["seconds"]) / 3600 if rows else 0.0


def measure(method, ev: Evaluation) -> dict[str, float]:  # noqa: ANN001 - an evaluation Method
    pairs = [(SHARED / hr, SHARED / lr if lr else None) for hr, lr in ev.datasets]
    results = evaluate(method, ev.settings, pairs, method_name="m", progress=False)
    return {k: round(results[0].mean[k], 4) for k in ev.keys}


def bundle(b: Bundle, runs: Path, which: str, precision: str, skip_eval: bool) -> dict:
    out = WEIGHTS / f"{b.name}.safetensors"
    tmp = out.with_suffix(".export.safetensors")
    export_weights(runs / b.run, tmp, which)  # type: ignore[arg-type]
    state, meta = read_checkpoint(tmp)
    tmp.unlink()
    model = load_config_model(state, meta)
    config = model.config
    training = json.loads(meta["swinir.training_config"])
    training_info = {
        "data": ", ".join(training["data"]["train"]),
        "recipe": f"src/swinir/training/recipes/{b.run}.yaml",
        "iterations": int(meta["swinir.iterations"]),
        "batch": training["data"]["batch_size"], "patch": training["data"]["patch_size"],
        "precision": training["train"]["precision"],
        "wall_hours": round(run_hours(runs / b.run), 2),
        "parameters": count_parameters(model),
    }
    keep = {k: v for k, v in meta.items() if k.startswith("swinir.") and k not in ("swinir.config", "swinir.training_data")}
    keep["swinir.training_data"] = training_info["data"]
    keep["swinir.bundled_name"] = b.name
    save_safetensors(out, model, config, keep)
    entry = {"name": b.name, "task": b.task, "scale": b.scale, "file": out.name, "description": b.description,
             "training": training_info, "quality": {}}
    if not skip_eval:
        for ev in b.evaluations:
            method = model_method(out, ev.settings, precision=precision)
            base = baseline_method(b.baseline, ev.settings)
            entry["quality"][ev.label] = {"model": measure(method, ev), b.baseline: measure(base, ev)}
            print(f"{b.name} {ev.label}: {entry['quality'][ev.label]}", flush=True)
    return entry


def load_config_model(state: dict, meta: dict):  # noqa: ANN201 - a SwinIR
    from swinir.checkpoints import resolve_config

    model = resolve_config(state, meta, None).build()
    model.load_state_dict(state, strict=True)
    return model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, required=True, help="folder holding the training runs")
    p.add_argument("--which", choices=("best", "last"), default="best")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="precision of the evaluation")
    p.add_argument("--only", action="append", help="bundle only these names (repeatable)")
    p.add_argument("--skip-eval", action="store_true")
    args = p.parse_args()
    manifest_path = WEIGHTS / "models.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": []}
    entries = {m["name"]: m for m in manifest["models"]}
    for b in BUNDLES:
        if args.only and b.name not in args.only:
            continue
        entries[b.name] = bundle(b, args.runs, args.which, args.precision, args.skip_eval)
        entries[b.name]["quality_measured"] = f"{date.today().isoformat()}, swinir eval, {args.precision}"
        manifest["models"] = [entries[x.name] for x in BUNDLES if x.name in entries]
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    load(WEIGHTS / f"{BUNDLES[0].name}.safetensors")  # the manifest's files load
    return 0


if __name__ == "__main__":
    sys.exit(main())
