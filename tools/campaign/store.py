"""The manifest store: ``models.json`` read and written through :class:`swinir.bundled.BundledModel`.

Several campaign processes may finish at once (one per lane), so every change is a read-modify-write of the
whole file under an exclusive file lock (:func:`update_entry`). Also here: what a weights file says of its
training (:class:`WeightsRecord`, the one reader of the ``swinir.*`` training keys in the campaign), the
manifest entry a new model starts with, and the one way the quality block changes (:func:`with_quality`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from swinir.bundled import BundledModel, read_manifest, write_manifest
from swinir.checkpoints import count_parameters, read_checkpoint, resolve_config

from .bundles import EVAL_PRECISION, Bundle, Workspace


def read_entries(ws: Workspace) -> dict[str, BundledModel]:
    """The manifest as ``{name: entry}`` (empty when there is none yet)."""
    return {m.name: m for m in read_manifest(ws.manifest)}


@contextlib.contextmanager
def locked_entries(ws: Workspace) -> Iterator[dict[str, BundledModel]]:
    """The manifest as ``{name: entry}`` under an exclusive lock; written back (atomically) when the block ends
    without error, the bundles' order first, then any other model the file lists."""
    ws.weights_dir.mkdir(parents=True, exist_ok=True)
    with open(ws.weights_dir / ".models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = read_entries(ws)
        yield entries
        ours = [b.name for b in ws.bundles if b.name in entries]
        order = ours + [n for n in entries if n not in ours]
        write_manifest(ws.manifest, [entries[n] for n in order])


def update_entry(ws: Workspace, bundle: Bundle, change: Callable[[BundledModel], BundledModel]) -> BundledModel:
    """Replace one model's entry by ``change(entry)`` under the lock; a model the manifest lacks starts from
    :func:`new_entry` of its shipped weights."""
    with locked_entries(ws) as entries:
        entry = entries.get(bundle.name) or new_entry(bundle, ws.shipped(bundle))
        entries[bundle.name] = change(entry)
        return entries[bundle.name]


@dataclass(frozen=True)
class WeightsRecord:
    """What exported weights record of their training (their ``swinir.*`` metadata); None where not recorded."""

    iterations: int
    train_hours: float | None  # wall clock, the whole lineage
    cpu_hours: float | None
    history: list[dict[str, Any]]  # one record per training segment
    training_config: dict[str, Any] | None  # the run config, as plain data

    @classmethod
    def of(cls, meta: Mapping[str, str]) -> WeightsRecord:
        def number(key: str) -> float | None:
            return float(meta[key]) if key in meta else None

        config = meta.get("swinir.training_config")
        return cls(iterations=int(meta["swinir.iterations"]), train_hours=number("swinir.train_hours"),
                   cpu_hours=number("swinir.cpu_hours"), history=json.loads(meta.get("swinir.history", "[]")),
                   training_config=json.loads(config) if config is not None else None)


def weights_record(weights: Path) -> WeightsRecord:
    """The training record of a weights file."""
    return WeightsRecord.of(read_checkpoint(weights)[1])


def training_info(weights: Path, bundle: Bundle) -> dict[str, Any]:
    """The manifest's ``training`` block, read from the weights' own metadata."""
    state, meta = read_checkpoint(weights)
    record = WeightsRecord.of(meta)
    training = record.training_config or {}
    hours = record.train_hours if record.train_hours is not None else sum(h.get("hours", 0) for h in record.history)
    return {
        "data": ", ".join(training["data"]["train"]),
        "recipe": f"src/swinir/training/recipes/{bundle.recipe}.yaml",
        "iterations": record.iterations,
        "batch": training["data"]["batch_size"], "patch": training["data"]["patch_size"],
        "precision": training["train"]["precision"],
        "wall_hours": round(hours, 2),
        "cpu_hours": round(record.cpu_hours if record.cpu_hours is not None else hours, 2),
        "parameters": count_parameters(resolve_config(state, meta, None).build()),
        "history": record.history,
    }


def new_entry(bundle: Bundle, weights: Path) -> BundledModel:
    """The entry of a model the manifest does not list yet: the bundle's facts and the weights' training."""
    return BundledModel(name=bundle.name, task=bundle.task, scale=bundle.scale, file=f"{bundle.name}.safetensors",
                        description=bundle.description, training=training_info(weights, bundle))


def with_shipped_weights(entry: BundledModel, bundle: Bundle, weights: Path) -> BundledModel:
    """The entry of newly shipped weights: the bundle's facts and the new training block (quality apart)."""
    fresh = new_entry(bundle, weights)
    return replace(entry, task=fresh.task, scale=fresh.scale, file=fresh.file, description=fresh.description,
                   training=fresh.training)


def with_quality(entry: BundledModel, bundle: Bundle, measured: Mapping[str, dict[str, Any]], *,
                 new_weights: bool = False, stamp: bool = True) -> BundledModel:
    """The entry with newly measured rows (``{label: {"model": metrics, baseline or rival: metrics}}``): the one
    place the quality block changes. The rows keep the bundle's order; a label the bundle no longer has goes
    (every row on a card is measured with the current protocol). ``new_weights``: the earlier rows measured
    other weights and go too. ``stamp``: record today's date and the protocol as when the quality was measured."""
    rows = {**({} if new_weights else entry.quality), **measured}
    quality = {r.label: rows[r.label] for r in bundle.rows if r.label in rows}
    when = f"{date.today().isoformat()}, swinir eval, {EVAL_PRECISION}" if stamp else entry.quality_measured
    return replace(entry, quality=quality, quality_measured=when)

