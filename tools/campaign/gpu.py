"""The GPU workflow: one device call on a lent GPU continues every model; the weights come back and are
measured here.

``gpu-prepare`` copies the recipes' training folders into ``gpu_data/`` (ignored by git; the device call
carries it, so the tracked tree plus that folder must fit :data:`DEVICE_TREE_LIMIT`) and prints the call;
``gpu`` runs there (:func:`run_gpu`); ``gpu-consider`` measures what came back (:func:`consider_gpu_results`).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from swinir.errors import SwinIRError
from swinir.fileio import write_bytes_atomic
from swinir.hardware import device_summary, machine_summary
from swinir.training import export_weights, load_config

from .bundles import ROOT, Bundle, Workspace
from .lanes import SIGTERM_EXIT, Stop, train_slice
from .policy import training_order
from .shipping import consider
from .store import read_entries, weights_record
from .training import latest_iteration, train_command

GPU_DATA = ROOT / "gpu_data"  # ignored by git; `gpu-prepare` fills it and the device call carries it
DEVICE_TREE_LIMIT = 64 * 2**20  # what may travel with a device call: the tracked tree and the carried folders


def training_folders(bundles: Sequence[Bundle]) -> list[str]:
    """The training folders of the bundled recipes, relative to the datasets folder."""
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


def prepare_gpu(ws: Workspace) -> int:
    """``gpu-prepare``: fill ``gpu_data/``, check what the device call would carry, print the call."""
    size = prepare_gpu_data(ws, GPU_DATA) + tracked_bytes()
    print(f"{GPU_DATA.name}/ and the tracked files: {size / 2**20:.1f} MiB of {DEVICE_TREE_LIMIT / 2**20:.0f}")
    if size > DEVICE_TREE_LIMIT:
        raise SwinIRError("too much to carry to the device; drop a training folder from gpu_data/")
    print("device call: run(command='PYTHONUNBUFFERED=1 PYTHONPATH=src python3 -m tools.campaign gpu --out $OUT', "
          f"carry=['{GPU_DATA.name}'], timeout_s=570); then: python -m tools.campaign gpu-consider FILES_AT")
    return 0


def run_gpu(args: argparse.Namespace, ws: Workspace) -> int:
    """On the lent machine: continue every bundled model (the largest gap first, those at target too) for
    ``--minutes`` of wall clock each on ``--device``, with large batches and without validation (the weights
    are measured back here), and write each model's exported weights, ``gpu_summary.json`` and the trainers'
    log into ``--out``, the folder that comes back."""
    import torch

    stop = Stop.installed()
    ws = replace(ws, datasets=args.data.resolve())
    order = training_order(ws.bundles, read_entries(ws), past_targets=True)
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
        start = weights_record(ws.start_weights(b)).iterations
        command = [*train_command(b, run_dir, ws, args.threads, sets), "--device", args.device]
        began = time.time()
        code = train_slice(command, log_path, None, math.inf, began + args.minutes * 60, stop)
        record: dict[str, Any] = {"start": start, "exit": code, "seconds": round(time.time() - began, 1)}
        if code in (0, SIGTERM_EXIT) and latest_iteration(run_dir) >= 0:
            out = export_weights(run_dir, args.out / f"{b.name}.safetensors", "last")
            record["end"] = weights_record(out).iterations
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
