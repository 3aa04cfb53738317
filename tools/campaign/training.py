"""Training slices and the campaign's rounds.

Training continues from the *shipped* weights (their metadata records iterations, hours and history, so the
counters add up across sessions and machines) unless a run folder of this machine is already further along
the same lineage, which is then resumed exactly (:func:`train_command`). :func:`run_campaign` trains the models
in rounds, the largest gap to its target first, one slice per model and round, in ``--parallel`` lanes; each
candidate is then measured in a child process and shipped only when it measures better.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from swinir.errors import SwinIRError
from swinir.training import check_resumable, export_weights, load_config, run_progress

from .bundles import Bundle, Workspace, bundle_named
from .lanes import SIGTERM_EXIT, Lanes, Stop, consider_in_process, train_slice
from .policy import model_values, score, training_order
from .shipping import complete_tables
from .store import read_entries, weights_record

SLICE_MARGIN = 300  # seconds before the deadline after which no new slice starts


def latest_iteration(run_dir: Path) -> int:
    """The iteration of a run's newest checkpoint; -1 when it has none."""
    found = run_progress(run_dir)
    return found[1].iteration if found else -1


def continues_shipped(run_dir: Path, shipped: Path) -> bool:
    """Whether this machine's run is the shipped weights' own lineage, at or past them: either it continues
    the shipped file (same history before it), or the shipped file was exported from it (same history, plus
    a last segment that began where the run's optimiser segment began)."""
    found = run_progress(run_dir)
    if found is None:
        return False
    progress = found[1]
    record = weights_record(shipped)
    if progress.iteration < record.iterations:
        return False

    def spans(history: Sequence[dict]) -> list[tuple[int, int]]:
        return [(int(h["start"]), int(h["end"])) for h in history]

    shipped_history, run_history = spans(record.history), spans(progress.history)
    continues_it = run_history == shipped_history
    exported_from_it = (bool(shipped_history) and run_history == shipped_history[:-1]
                        and shipped_history[-1][0] == progress.segment_start)
    return continues_it or exported_from_it


def train_command(bundle: Bundle, run_dir: Path, ws: Workspace, threads: int, overrides: Sequence[str] = (),
                  *, from_scratch: bool = False) -> list[str]:
    """The ``swinir train`` command of the next slice: resume this machine's run when it is ahead of the
    shipped weights and still has the recipe's config; else continue the shipped weights in a fresh run
    (or, ``from_scratch``, start the recipe from random weights: for variants whose shapes differ)."""
    base = [sys.executable, "-m", "swinir.training"]
    runtime = [f"train.threads={threads}", "data.num_workers=0", "log.progress=false"]
    sets = [*runtime, f"data.root={ws.datasets}", *overrides]
    if from_scratch:
        if run_dir.exists():
            raise SwinIRError(f"{run_dir} exists; a from-scratch variant starts in a new folder")
        return [*base, "--recipe", bundle.recipe, "--out", str(run_dir), *(a for s in sets for a in ("--set", s))]
    if continues_shipped(run_dir, ws.start_weights(bundle)):
        found = run_progress(run_dir)
        assert found is not None
        start = run_dir / "start.safetensors"
        wanted = load_config(recipe=bundle.recipe, overrides=[*sets, f"train.continue_from={start}"])
        try:
            check_resumable(found[0], wanted)
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


def run_campaign(args: argparse.Namespace, ws: Workspace) -> int:
    """Rounds over the models (largest gap first), ``--parallel`` lanes, one slice per model and round; then,
    unless stopped, the rows the manifest lacks are measured. ``args``: ``hours``, ``runs``, ``only``,
    ``parallel``, ``slice_minutes``, ``past_targets`` and ``overrides`` (``{model: [KEY=VALUE, ...]}``)."""
    stop = Stop.installed()
    deadline = time.time() + args.hours * 3600
    args.runs.mkdir(parents=True, exist_ok=True)
    chosen = ws.named(args.only or [])
    lanes = Lanes.plan(args.parallel)
    queue: list[Bundle] = []
    busy: set[str] = set()
    lock = threading.Lock()

    def next_bundle() -> Bundle | None:
        with lock:
            if not queue:
                queue.extend(training_order(chosen, read_entries(ws), past_targets=args.past_targets))
            for b in list(queue):
                if b.name not in busy:
                    queue.remove(b)
                    busy.add(b.name)
                    return b
            return None

    def lane(index: int) -> None:
        while not stop.event.is_set() and time.time() < deadline - SLICE_MARGIN:
            bundle = next_bundle()
            if bundle is None:
                return
            try:
                if not _slice(bundle, index, args, ws, lanes, deadline, stop):
                    return
            finally:
                with lock:
                    busy.discard(bundle.name)

    lanes.run(lane, stagger=2.0)
    if not stop.event.is_set():
        import torch

        torch.set_num_threads(len(lanes.cores))
        complete_tables(chosen, ws)
    print("campaign finished: " + ", ".join(
        f"{b.name} {score(model_values(read_entries(ws).get(b.name)), b) or float('nan'):.3f} dB" for b in chosen))
    return 0


def _slice(bundle: Bundle, index: int, args: argparse.Namespace, ws: Workspace, lanes: Lanes, deadline: float,
           stop: Stop) -> bool:
    """One slice of ``bundle`` in lane ``index``, and its candidate considered; False when the lane must stop
    (a stop signal: the next ``run`` resumes the trainer and measures it)."""
    core = lanes.core(index)
    run_dir = args.runs / bundle.name
    log_path = args.runs / f"{bundle.name}.log"
    command = train_command(bundle, run_dir, ws, lanes.threads, args.overrides.get(bundle.name, []))
    print(f"lane {index}: {bundle.name} for {args.slice_minutes:g} CPU-minutes", flush=True)
    code = train_slice(command, log_path, core, args.slice_minutes * 60 * lanes.threads, deadline, stop)
    if code not in (0, SIGTERM_EXIT) or latest_iteration(run_dir) < 0:
        print(f"lane {index}: {bundle.name} trainer exited with {code}; see {log_path}", flush=True)
        return True
    if stop.event.is_set():
        return False
    candidate = args.runs / f"{bundle.name}.candidate.safetensors"
    export_weights(run_dir, candidate, "last")
    consider_in_process(bundle, candidate, core, lanes.threads, log_path, note="campaign slice")
    return True


def parse_overrides(items: Sequence[str], bundles: Sequence[Bundle]) -> dict[str, list[str]]:
    """``NAME:KEY=VALUE`` items (``run --set``) as ``{NAME: [KEY=VALUE, ...]}``."""
    overrides: dict[str, list[str]] = {}
    for item in items:
        name, sep, setting = item.partition(":")
        if not sep:
            raise SwinIRError(f"--set expects NAME:KEY=VALUE, got {item!r}")
        overrides.setdefault(bundle_named(name, bundles).name, []).append(setting)
    return overrides
