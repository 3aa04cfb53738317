"""What exported weights say about their own training: the lineage and the ``swinir.*`` metadata.

A model's *lineage* is every training segment behind its weights: one per stretch with one optimiser state
(a new run, or a run continued from exported weights with ``train.continue_from``). Exported safetensors
record it (``swinir.iterations``, ``swinir.train_hours``, ``swinir.cpu_hours``, ``swinir.history``), so a
model continued over several sessions and machines still says how much training it has had in all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import torch

from ..errors import SwinIRError
from ..hardware import machine_summary
from ..metadata import ModelMetadata
from .config import RunConfig


@dataclass(frozen=True)
class Lineage:
    """How far exported weights have been trained: iterations, wall-clock hours and the segments behind them."""

    iterations: int
    hours: float  # wall-clock
    cpu_hours: float  # CPU time of the training processes (all threads)
    history: tuple[dict[str, Any], ...]


def segment_record(config: RunConfig, start: int, end: int, hours: float, cpu_hours: float,
                   device: str = "cpu") -> dict[str, Any]:
    """One training segment of a model's history: where it ran (the CPU, and ``device``: ``cpu`` or
    ``cuda: <GPU name>``), how long, and the recipe's levers."""
    tr, data = config.train, config.data
    return {
        "start": start, "end": end, "hours": round(hours, 3), "cpu_hours": round(cpu_hours, 3),
        "date": date.today().isoformat(),
        "machine": machine_summary(), "device": device, "threads": tr.threads or torch.get_num_threads(),
        "lr": tr.lr, "schedule": tr.schedule, "warmup": tr.warmup, "drop_path_rate": tr.drop_path_rate,
        "batch_size": data.batch_size, "patch_size": data.patch_size, "precision": tr.precision,
    }


def continued_lineage(meta: Mapping[str, str]) -> Lineage:
    """The lineage recorded in exported weights' metadata (``swinir.iterations``, ``.train_hours``, ``.history``).

    Weights without a history (exported before it was recorded) count as one segment of their iterations.
    """
    meta = ModelMetadata(meta)
    iterations = meta.iterations
    if iterations is None:
        raise SwinIRError("train.continue_from needs weights exported by swinir train (they record their "
                          "iterations); to start a new run from other weights use train.init_weights")
    hours = meta.train_hours if meta.train_hours is not None else 0.0
    cpu_hours = meta.cpu_hours if meta.cpu_hours is not None else hours
    history = meta.history if meta.history is not None else (
        {"start": 0, "end": iterations, "hours": round(hours, 3), "note": "recorded before histories were kept"},)
    return Lineage(iterations, hours, cpu_hours, history)


def training_metadata(config: RunConfig, iteration: int, extra: Mapping[str, Any] | None = None, *,
                      hours: float | None = None, cpu_hours: float | None = None,
                      history: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The ``swinir.*`` metadata of exported weights: task, iterations, hours, history, data, the training config.

    ``iterations`` and ``hours`` count the whole lineage (a continued model carries on its counters).
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
