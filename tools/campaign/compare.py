"""Recipe comparison: variants from the same start, trained for equal CPU time, measured the same way.

Each variant is the bundle's recipe with a few overrides (``LABEL=KEY=VALUE;KEY=VALUE``). The variants train
in lanes, are measured on the target rows, plotted (validation PSNR against minutes) and recorded in the
manifest; the winner then goes through :func:`~.shipping.consider` like any other candidate.
"""

from __future__ import annotations

import argparse
import csv
import math
import threading
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from swinir.errors import SwinIRError
from swinir.hardware import machine_summary
from swinir.training import export_weights, plot_curves

from .bundles import Bundle, Workspace, bundle_named
from .cards import write_docs
from .lanes import Lanes, Stop, score_in_process, train_slice
from .policy import score
from .shipping import consider
from .store import update_entry, weights_record
from .training import latest_iteration, train_command

Curve = list[dict[str, float | None]]  # the trainer's log rows: iteration, minutes, val_psnr


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``LABEL=KEY=VALUE;KEY=VALUE`` -> (label, ["KEY=VALUE", ...]); ``LABEL=`` is the recipe unchanged."""
    label, sep, rest = text.partition("=")
    if not sep or not label:
        raise SwinIRError(f"--variant expects LABEL=KEY=VALUE[;KEY=VALUE], got {text!r}")
    return label, [s.strip() for s in rest.split(";") if s.strip()]


def run_compare(args: argparse.Namespace, ws: Workspace) -> int:
    """Train each variant for the same CPU minutes from the shipped weights, measure, plot, record; the best
    candidate then goes through :func:`~.shipping.consider` like any other (on the target rows; `complete` fills
    the rest).

    With ``--from-scratch`` every variant starts from random weights instead (to compare model widths, whose
    shapes the shipped file cannot seed); nothing is shipped then, since such a short run cannot compete with
    the shipped model: the comparison says which start learns faster per CPU minute, and is recorded as such."""
    bundle = bundle_named(args.name, ws.bundles)
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    folder = args.runs / f"compare-{bundle.name}-{stamp}"
    folder.mkdir(parents=True)
    start_iterations = 0 if args.from_scratch else weights_record(ws.start_weights(bundle)).iterations
    results = _train_variants(bundle, args, ws, folder, start_iterations)
    if not results:
        print("no variant finished")
        return 1
    image = f"compare_{bundle.name}_{stamp}.png"
    if ws.report is not None:
        curves = {label: [(r["minutes"], r["val_psnr"]) for r in res["curve"] if r["val_psnr"] is not None]
                  for label, res in results.items()}
        plot_curves(ws.report.parent / "images" / image, curves, x_label="minutes of training (wall clock)",
                    y_label="validation PSNR (dB, EMA weights)", title=f"{bundle.name}: recipe comparison")
    winner = max(results, key=lambda k: results[k]["score"])
    record = comparison_record(results, args, start_iterations, f"images/{image}", winner)
    update_entry(ws, bundle, lambda e: replace(e, comparisons=[*e.comparisons, record]))
    for label, res in sorted(results.items(), key=lambda kv: -kv[1]["score"]):
        print(f"{label:24s} {res['score']:.4f} dB  +{res['iterations']} it  {'; '.join(res['overrides'])}")
    if args.from_scratch:
        write_docs(ws)
        return 0
    # the other rows wait for `complete`, as in a campaign: measuring them here would double the comparison's time
    consider(bundle, Path(results[winner]["candidate"]), ws, full_table=False, note=f"comparison winner {winner}")
    return 0


def _train_variants(bundle: Bundle, args: argparse.Namespace, ws: Workspace, folder: Path,
                    start_iterations: int) -> dict[str, dict[str, Any]]:
    """Each variant trained in a lane for ``args.minutes`` CPU-minutes per core, exported and measured:
    ``{label: {overrides, iterations (trained here), values, score, curve, candidate}}``."""
    stop = Stop.installed()
    pending = [parse_variant(v) for v in args.variant]
    lanes = Lanes.plan(args.parallel, len(pending))
    results: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def lane(index: int) -> None:
        core = lanes.core(index)
        while not stop.event.is_set():
            with lock:
                if not pending:
                    return
                label, sets = pending.pop(0)
            run_dir = folder / label
            command = train_command(bundle, run_dir, ws, lanes.threads, [*sets, f"val.every={args.val_every}"],
                                    from_scratch=args.from_scratch)
            train_slice(command, folder / f"{label}.log", core, args.minutes * 60 * lanes.threads, math.inf, stop)
            if latest_iteration(run_dir) < 0:
                continue
            candidate = folder / f"{label}.safetensors"
            export_weights(run_dir, candidate, "last")
            values = score_in_process(bundle, candidate, core, lanes.threads, folder / f"{label}.json",
                                      folder / f"{label}.log")
            if not values:
                continue
            result = {"overrides": sets, "iterations": latest_iteration(run_dir) - start_iterations,
                      "values": {k: v[next(iter(v))] for k, v in values.items()},
                      "score": round(score(values, bundle) or math.nan, 4), "curve": csv_curve(run_dir / "log.csv"),
                      "candidate": str(candidate)}
            with lock:
                results[label] = result

    lanes.run(lane)
    return results


def comparison_record(results: dict[str, dict[str, Any]], args: argparse.Namespace, start_iterations: int,
                      image: str, winner: str) -> dict[str, Any]:
    """The manifest's record of one comparison (what the card's comparison table shows)."""
    return {
        "date": date.today().isoformat(), "cpu_minutes": args.minutes, "start_iterations": start_iterations,
        "machine": machine_summary(), "image": image, "winner": winner,
        "variants": [{"label": k, **{f: v[f] for f in ("overrides", "iterations", "values", "score")}}
                     for k, v in results.items()],
        "validation_at": validation_at_common_iteration({k: v["curve"] for k, v in results.items()}),
        **({"from_scratch": True} if args.from_scratch else {}),
        **({"note": args.note} if args.note else {}),
    }


def validation_at_common_iteration(curves: dict[str, Curve]) -> dict[str, Any] | None:
    """The validation PSNR of every variant at the last iteration all of them validated at: the comparison at
    equal iterations, beside the one at equal CPU time (which a machine whose speed drifts makes noisy)."""
    validated = {label: {int(r["iteration"]): r["val_psnr"] for r in rows if r["val_psnr"] is not None}
                 for label, rows in curves.items()}
    common = set.intersection(*(set(v) for v in validated.values())) if validated else set()
    if not common:
        return None
    at = max(common)
    return {"iteration": at, "values": {label: v[at] for label, v in validated.items()}}


def csv_curve(path: Path) -> Curve:
    """The trainer's ``log.csv`` as (iteration, minutes since its first row, validation PSNR or None)."""
    rows: Curve = []
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
