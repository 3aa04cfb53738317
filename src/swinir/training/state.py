"""Training checkpoints (the whole state of a run) and the export of a run's EMA weights.

A checkpoint is one ``torch.save`` file, ``RUN/checkpoints/iter_XXXXXXXX.pt``, written atomically (temp file,
fsync, rename: :func:`swinir.fileio.atomic_path`), so a crash or a kill mid-save leaves the previous
checkpoints intact. It holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``:

``format``, ``iteration`` (completed steps), ``config`` (the run config as plain data), ``params`` and
``params_ema`` (the reference checkpoints' names), ``optimizer``, ``scaler``, the GAN stage's
``discriminator``/``optimizer_d``/``scaler_d``, ``rng`` (python, numpy, torch and CUDA generator states, one
entry per rank), ``data`` (seed, next iteration and image-list digest: the data order is a pure function of
these, see :mod:`.data`), ``progress`` (elapsed seconds, best validation) and ``versions``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..checkpoints import read_checkpoint, save_safetensors
from ..errors import SwinIRError
from ..fileio import atomic_path
from ..hardware import machine_summary
from .config import RunConfig, parse_config

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.safetensors"
_NAME = re.compile(r"iter_(\d+)\.pt")
_TEMPORARY = re.compile(r"\.iter_\d+\.pt\.[0-9a-f]+\.tmp")


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"iter_{iteration:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every checkpoint of a run, oldest first."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return sorted(found)


def remove_temporaries(run_dir: Path) -> int:
    """Delete half-written checkpoint files left by a killed save; returns how many."""
    folder = run_dir / CHECKPOINT_DIR
    stale = [p for p in folder.iterdir() if _TEMPORARY.fullmatch(p.name)] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def save_checkpoint(run_dir: Path, state: Mapping[str, Any], keep: int) -> Path:
    """Write ``state`` atomically as the checkpoint of ``state['iteration']``; keep only the newest ``keep``."""
    path = checkpoint_path(run_dir, int(state["iteration"]))
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (``weights_only=True``: tensors and plain data only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SwinIRError(f"{path}: not a readable training checkpoint ({type(err).__name__}: {reason})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SwinIRError(f"{path}: not a swinir training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def latest_checkpoint(run_dir: Path, *, log: Any = None) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of a run that loads (an unreadable newest one is reported and skipped)."""
    found = list_checkpoints(run_dir)
    if not found:
        raise SwinIRError(f"{run_dir}: no training checkpoints in {run_dir / CHECKPOINT_DIR}; nothing to resume")
    for _, path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except SwinIRError as err:
            (log or (lambda m: print(m, file=sys.stderr)))(f"warning: {err}; trying the previous checkpoint")
    raise SwinIRError(f"{run_dir}: none of the {len(found)} checkpoints is readable")


def run_config(state: Mapping[str, Any]) -> RunConfig:
    return parse_config(state["config"])


# --------------------------------------------------------------------------------------------------
# Random generator states as tensors and plain values
# --------------------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) generator states, ``weights_only``-loadable."""
    version, py_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def files_digest(paths: Sequence[Path]) -> str:
    """A short digest of the training image list (names and sizes): detects changed data on resume."""
    h = hashlib.sha256()
    for path in paths:
        h.update(f"{path}\0{path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Exported weights
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lineage:
    """How far exported weights have been trained: iterations, wall-clock hours and the segments behind them."""

    iterations: int
    hours: float  # wall-clock
    cpu_hours: float  # CPU time of the training processes (all threads)
    history: tuple[dict[str, Any], ...]


def segment_record(config: RunConfig, start: int, end: int, hours: float, cpu_hours: float) -> dict[str, Any]:
    """One training segment of a model's history: where it ran, how long, and the recipe's levers."""
    tr, data = config.train, config.data
    return {
        "start": start, "end": end, "hours": round(hours, 3), "cpu_hours": round(cpu_hours, 3),
        "date": date.today().isoformat(),
        "machine": machine_summary(), "threads": tr.threads or torch.get_num_threads(),
        "lr": tr.lr, "schedule": tr.schedule, "warmup": tr.warmup, "drop_path_rate": tr.drop_path_rate,
        "batch_size": data.batch_size, "patch_size": data.patch_size, "precision": tr.precision,
    }


def continued_lineage(meta: Mapping[str, str]) -> Lineage:
    """The lineage recorded in exported weights' metadata (``swinir.iterations``, ``.train_hours``, ``.history``).

    Weights without a history (exported before it was recorded) count as one segment of their iterations.
    """
    if "swinir.iterations" not in meta:
        raise SwinIRError("train.continue_from needs weights exported by swinir train (they record their "
                          "iterations); to start a new run from other weights use train.init_weights")
    iterations = int(meta["swinir.iterations"])
    hours = float(meta.get("swinir.train_hours", 0.0))
    cpu_hours = float(meta.get("swinir.cpu_hours", hours))
    history = tuple(json.loads(meta["swinir.history"])) if "swinir.history" in meta else (
        {"start": 0, "end": iterations, "hours": round(hours, 3), "note": "recorded before histories were kept"},)
    return Lineage(iterations, hours, cpu_hours, history)


def training_metadata(config: RunConfig, iteration: int, extra: Mapping[str, Any] | None = None, *,
                      hours: float | None = None, cpu_hours: float | None = None,
                      history: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The ``swinir.*`` metadata of exported weights: task, iterations, hours, history, data, the training config.

    ``iterations`` and ``hours`` count the whole lineage (a continued model carries on its counters), so a
    model continued over several sessions still says how much training it has had in all.
    """
    meta: dict[str, Any] = {
        "task": config.task.name,
        "scale": str(config.task.scale),
        "iterations": str(iteration),
        "training_data": json.dumps([str(config.resolve_path(f)) for f in config.data.train]),
        "training_config": json.dumps(config.to_dict(), sort_keys=True),
        "weights": "params_ema",
    }
    if hours is not None:
        meta["train_hours"] = f"{hours:.6f}"
    if cpu_hours is not None:
        meta["cpu_hours"] = f"{cpu_hours:.6f}"
    if history is not None:
        meta["history"] = json.dumps(list(history))
    if config.val.folder:
        meta["val_dataset"] = str(config.resolve_path(config.val.folder))
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()})
    return meta


def export_weights(run_dir: str | Path, out: str | Path, which: Literal["best", "last"] = "best") -> Path:
    """Write a run's EMA weights as safetensors (config + training metadata inside; loads with ``swinir.load``).

    ``best``: the weights of the best validation so far (``RUN/best.safetensors``, falling back to the last
    checkpoint when the run has not validated yet); ``last``: the EMA weights of the newest checkpoint.
    """
    run_dir, out = Path(run_dir), Path(out)
    best = run_dir / BEST_WEIGHTS
    if which == "best" and best.is_file():
        weights, meta = read_checkpoint(best)
        config = parse_config(json.loads(meta["swinir.training_config"]))
        save_safetensors(out, weights, config.model, {k: v for k, v in meta.items() if k != "swinir.config"})
        return out
    if which not in ("best", "last"):
        raise SwinIRError(f"export: which must be best or last, got {which!r}")
    _, state = latest_checkpoint(run_dir)
    config = run_config(state)
    progress = state.get("progress", {})
    extra = {"val_psnr": progress.get("last_psnr")} if progress.get("last_psnr") is not None else {}
    hours = float(progress.get("elapsed", 0.0)) / 3600
    cpu_hours = float(progress.get("cpu_seconds", 0.0)) / 3600
    iteration = int(state["iteration"])
    start = int(progress.get("segment_start", 0))
    segment = segment_record(config, start, iteration, hours - float(progress.get("segment_elapsed", 0.0)) / 3600,
                             cpu_hours - float(progress.get("segment_cpu", 0.0)) / 3600)
    history = [*progress.get("history", []), segment]
    meta = training_metadata(config, iteration, extra, hours=hours, cpu_hours=cpu_hours, history=history)
    save_safetensors(out, state["params_ema"], config.model, meta)
    return out
