"""The bundled models' training campaign: continue them, measure them, ship only what measures better.

Every session adds to the same models. Training continues from the *shipped* weights (their metadata records
iterations, hours and history, so the counters add up across sessions and machines) unless a run folder of
this machine is already further along, which is then resumed exactly. After each slice of training the
candidate is measured with the evaluation protocol of ``swinir eval`` and replaces the shipped file only when
it measures better on the target rows; every measurement is logged in the manifest and the model cards.

    python -m tools.campaign run --hours 2 [--parallel 2] [--slice-minutes 60] [--only NAME] [--runs DIR]
                                 [--past-targets]   # models at their targets too, after the others
    python -m tools.campaign compare NAME --minutes 30 --variant LABEL=KEY=VALUE[;KEY=VALUE] [--variant ...]
                                 [--from-scratch]   # variants from random weights (another width)
    python -m tools.campaign consider NAME CANDIDATE.safetensors   # measure; ship if better
    python -m tools.campaign measure [NAME ...]                    # (re)measure the shipped models
    python -m tools.campaign complete [NAME ...]                   # measure only the rows not yet measured
    python -m tools.campaign report                                # models.json, model cards, README table
    python -m tools.campaign gpu-prepare | gpu --out DIR | gpu-consider DIR   # a lent GPU (see tools/campaign/gpu.py)

(run from the repository root; ``python scripts/campaign.py ...`` is the same command from anywhere.)

``run`` trains the models in rounds, the largest gap to its target first (those at target only with
``--past-targets``, the smallest surplus first), one model per CPU core (``--parallel``, each process
pinned to its core with one thread). Slices are counted in CPU time of the training process, so pausing
the campaign or a busy machine does not shorten them. Each trainer runs in its own process group, so pause
them all by name: ``pkill -STOP -f 'swinir.training|tools.campaign|campaign.py'`` (``-CONT`` to continue).
Stop it any time (Ctrl-C or SIGTERM): the trainers checkpoint, and the next ``run`` resumes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from swinir.errors import SwinIRError
from swinir.fileio import write_bytes_atomic

from .bundles import ROOT, Workspace, bundle_named
from .cards import write_docs
from .compare import run_compare
from .gpu import GPU_DATA, consider_gpu_results, prepare_gpu, run_gpu
from .measuring import measure_rows
from .shipping import complete_tables, consider, measure_shipped
from .training import parse_overrides, run_campaign

RUNS = ROOT.parent / "runs" / "campaign"  # outside the repository


def build_parser() -> argparse.ArgumentParser:
    """The campaign's commands and their options."""
    p = argparse.ArgumentParser(prog="python -m tools.campaign", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    cores = len(os.sched_getaffinity(0))
    r = sub.add_parser("run", help="train, measure and ship in rounds for a wall-clock budget")
    r.add_argument("--hours", type=float, required=True)
    r.add_argument("--runs", type=Path, default=RUNS,
                   help="run folders (outside the repository; default ../runs/campaign)")
    r.add_argument("--parallel", type=int, default=cores, help="models trained at once")
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
    c.add_argument("--parallel", type=int, default=cores)
    c.add_argument("--val-every", type=int, default=100)
    c.add_argument("--runs", type=Path, default=RUNS)
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
    sub.add_parser("measure", help="measure the shipped models on every row and record the results").add_argument(
        "names", nargs="*")
    sub.add_parser("complete", help="measure only the rows the manifest lacks for the shipped models").add_argument(
        "names", nargs="*")
    sub.add_parser("report", help="rewrite the model cards and the README table from the manifest")
    sub.add_parser("gpu-prepare", help=f"copy the training folders into {GPU_DATA.name}/ and print the device call")
    _add_gpu_parser(sub)
    sub.add_parser("gpu-consider", help="measure the weights a GPU call brought back; ship the better ones"
                   ).add_argument("folder", type=Path)
    return p


def _add_gpu_parser(sub: argparse._SubParsersAction) -> None:
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


def _run(args: argparse.Namespace, ws: Workspace) -> int:
    args.overrides = parse_overrides(args.set, ws.bundles)
    return run_campaign(args, ws)


def _consider(args: argparse.Namespace, ws: Workspace) -> int:
    consider(bundle_named(args.name, ws.bundles), args.candidate, ws, min_gain=args.min_gain, note=args.note,
             full_table=not args.target_rows_only)
    return 0


def _score(args: argparse.Namespace, ws: Workspace) -> int:
    b = bundle_named(args.name, ws.bundles)
    write_bytes_atomic(args.out, json.dumps(measure_rows(args.weights, b, b.target_rows, ws)).encode())
    return 0


def _complete(args: argparse.Namespace, ws: Workspace) -> int:
    complete_tables(ws.named(args.names), ws)
    return 0


def _measure(args: argparse.Namespace, ws: Workspace) -> int:
    measure_shipped(ws.named(args.names), ws)
    return 0


def _report(args: argparse.Namespace, ws: Workspace) -> int:
    write_docs(ws)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Workspace], int]] = {
    "run": _run, "compare": run_compare, "consider": _consider, "score": _score, "measure": _measure,
    "complete": _complete, "report": _report, "gpu-prepare": lambda args, ws: prepare_gpu(ws), "gpu": run_gpu,
    "gpu-consider": lambda args, ws: consider_gpu_results(args.folder, ws),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command on the repository's workspace."""
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return COMMANDS[args.command](args, Workspace())


def run(argv: Sequence[str] | None = None) -> int:
    """:func:`main`, with a user's mistake (:class:`SwinIRError`) told in one line and exit status 1."""
    try:
        return main(argv)
    except SwinIRError as err:
        print(f"campaign: error: {err}", file=sys.stderr)
        return 1
