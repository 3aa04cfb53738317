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
from swinir.fileio import write_bytes_atomic  # noqa: E402
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


def measure(method, ev: Evaluation) -> dict[str, float]:
    pairs = [(SHARED / hr, SHARED / lr if lr else None) for hr, lr in ev.datasets]
    results = evaluate(method, ev.settings, pairs, method_name="m", progress=False)
    return {k: round(results[0].mean[k], 4) for k in ev.keys}


def bundle(b: Bundle, runs: Path, which: str, precision: str, skip_eval: bool, rows: list[str] | None) -> dict:
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
    dropped = ("swinir.config", "swinir.training_data")
    keep = {k: v for k, v in meta.items() if k.startswith("swinir.") and k not in dropped}
    keep["swinir.training_data"] = training_info["data"]
    keep["swinir.bundled_name"] = b.name
    save_safetensors(out, model, config, keep)
    entry = {"name": b.name, "task": b.task, "scale": b.scale, "file": out.name, "description": b.description,
             "training": training_info, "quality": {}}
    if not skip_eval:
        for ev in b.evaluations:
            if rows and ev.label not in rows:
                continue
            method = model_method(out, ev.settings, precision=precision)
            base = baseline_method(b.baseline, ev.settings)
            entry["quality"][ev.label] = {"model": measure(method, ev), b.baseline: measure(base, ev)}
            print(f"{b.name} {ev.label}: {entry['quality'][ev.label]}", flush=True)
    return entry


def load_config_model(state: dict, meta: dict):
    from swinir.checkpoints import resolve_config

    model = resolve_config(state, meta, None).build()
    model.load_state_dict(state, strict=True)
    return model


# The paper's numbers for the same rows (PAPER_RESULTS.md): SwinIR-S for SR, SwinIR(-M) for the others.
PAPER = {
    "Set5 x2": "38.14 / .9611 (S)", "Set14 x2": "33.86 / .9206 (S)", "Set5 x4": "32.44 / .8976 (S)",
    "Set14 x4": "28.77 / .7858 (S)", "McMaster sigma 15": "35.61", "McMaster sigma 25": "33.20",
    "McMaster sigma 50": "30.22", "Kodak24 sigma 15": "35.34", "Kodak24 sigma 25": "32.89",
    "Kodak24 sigma 50": "29.79", "LIVE1 q10": "28.06 / .8089 / 27.76", "LIVE1 q20": "30.45 / .8741 / 29.97",
    "LIVE1 q30": "31.82 / .9018 / 31.24", "LIVE1 q40": "32.75 / .9174 / 32.12",
}


def write_report(manifest: dict, path: Path) -> None:
    """docs/bundled_models.md: per model, a card (data, recipe, iterations, hours) and its quality table."""
    lines = ["# Bundled models", "",
             "Trained on this project's CPU machine with `swinir train` (recipes in `src/swinir/training/recipes`),",
             "exported and measured by `scripts/bundle_models.py` with the evaluation protocol of `swinir eval`.",
             "SR rows: PSNR / SSIM on Y, border = scale; denoising: PSNR / SSIM on RGB; JPEG: PSNR / SSIM / PSNR-B on",
             "RGB (classic5 is gray content through the color model). Paper: SwinIR-S (SR) or SwinIR-M trained per",
             "level on DIV2K-scale data for hundreds of thousands of iterations, for reference only.", ""]
    for m in manifest["models"]:
        t = m["training"]
        lines += [f"## {m['name']}", "", m["description"] + ".", "",
                  f"- task: `{m['task']}`" + (f" x{m['scale']}" if m["task"] == "sr" else "")
                  + f"; file `src/swinir/weights/{m['file']}`; {t['parameters']:,} parameters",
                  f"- data: {t['data']} (no DIV2K: none is available here)",
                  f"- recipe: `{t['recipe']}` (batch {t['batch']}, LR patch {t['patch']}, {t['precision']})",
                  f"- trained: {t['iterations']:,} iterations, {t['wall_hours']} wall-clock hours, 2 shared CPU cores",
                  "- intended use: a working default on any machine; for best quality use the authors' checkpoints",
                  "- limits: far shorter training than the paper; only bicubic / Gaussian / JPEG degradations seen,",
                  "  so real-world photos with other degradations are out of its scope",
                  f"- measured: {m.get('quality_measured', '')}", ""]
        if m["quality"]:
            baseline = next(k for k in next(iter(m["quality"].values())) if k != "model")
            lines += [f"| set | this model | {baseline} | gain (dB) | paper |", "|---|---|---|---:|---|"]
            for label, q in m["quality"].items():
                fmt = " / ".join
                mv, bv = q["model"], q[baseline]
                first = next(iter(mv))
                lines.append(f"| {label} | {fmt(f'{v:.4g}' if v < 1 else f'{v:.2f}' for v in mv.values())} | "
                             f"{fmt(f'{v:.4g}' if v < 1 else f'{v:.2f}' for v in bv.values())} | "
                             f"{mv[first] - bv[first]:+.2f} | {PAPER.get(label, '-')} |")
            lines.append("")
    path.write_text("\n".join(lines))


def read_manifest(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"models": []}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, required=True, help="folder holding the training runs")
    p.add_argument("--which", choices=("best", "last"), default="best")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="precision of the evaluation")
    p.add_argument("--only", action="append", help="bundle only these names (repeatable)")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--rows", action="append", help="measure only these rows, e.g. 'McMaster sigma 25' (repeatable)")
    args = p.parse_args()
    manifest_path = WEIGHTS / "models.json"
    for b in BUNDLES:
        if args.only and b.name not in args.only:
            continue
        entry = bundle(b, args.runs, args.which, args.precision, args.skip_eval, args.rows)
        entry["quality_measured"] = f"{date.today().isoformat()}, swinir eval, {args.precision}"
        # re-read just before writing: several of these scripts may run side by side with different --only
        entries = {m["name"]: m for m in read_manifest(manifest_path)["models"]}
        entries[b.name] = entry
        manifest = {"models": [entries[x.name] for x in BUNDLES if x.name in entries]}
        write_bytes_atomic(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    manifest = read_manifest(manifest_path)
    write_report(manifest, ROOT / "docs" / "bundled_models.md")
    for entry in manifest["models"]:
        load(WEIGHTS / entry["file"])  # every listed file loads
    return 0


if __name__ == "__main__":
    sys.exit(main())
