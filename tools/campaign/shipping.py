"""Shipping: a candidate replaces the shipped file only when it measures better (:func:`~.policy.ships`).

Every measurement of a candidate is logged in the manifest's ledger, shipped or not; the shipped model's
rows are measured where the manifest lacks them, and the model cards are rewritten after each change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from swinir.bundled import BundledModel
from swinir.checkpoints import read_checkpoint, resolve_config, save_safetensors
from swinir.errors import SwinIRError
from swinir.hardware import machine_summary

from .bundles import EVAL_PRECISION, Bundle, Workspace
from .cards import write_docs
from .measuring import Metrics, measure_rows, quality_rows
from .policy import model_values, score, ships
from .store import (
    WeightsRecord,
    read_entries,
    training_info,
    update_entry,
    weights_record,
    with_quality,
    with_shipped_weights,
)

BUNDLED_LIMIT = 5_000_000  # bytes of weights a bundled file may hold (the package stays small)


@dataclass
class Decision:
    """What :func:`consider` found: whether the candidate shipped, both scores, the candidate's values."""

    shipped: bool
    candidate_score: float
    shipped_score: float | None
    values: dict[str, Metrics] = field(default_factory=dict)


def ensure_shipped_measured(bundle: Bundle, ws: Workspace) -> dict[str, Metrics]:
    """The shipped model's values on its target rows, measured now (and recorded) where the manifest lacks them."""
    entry = read_entries(ws).get(bundle.name)
    values = model_values(entry)
    missing = [r for r in bundle.target_rows if r.label not in values]
    if missing and ws.shipped(bundle).is_file():
        measured = measure_rows(ws.shipped(bundle), bundle, missing, ws)
        rows = quality_rows(measured, bundle, ws, entry.quality if entry else None)
        update_entry(ws, bundle, lambda e: with_quality(e, bundle, rows))
        values.update(measured)
    return values


def consider(bundle: Bundle, candidate: Path, ws: Workspace, *, min_gain: float = 0.0,
             full_table: bool = True, note: str = "") -> Decision:
    """Measure ``candidate`` on the target rows; ship it when :func:`~.policy.ships` says so, and then measure
    its other rows too (``full_table``; otherwise they are left for :func:`complete_tables`, so that a campaign
    spends its time training). Either way the measurement is logged in the ledger."""
    shipped_values = ensure_shipped_measured(bundle, ws)
    shipped_score = score(shipped_values, bundle) if ws.shipped(bundle).is_file() else None
    values = measure_rows(candidate, bundle, bundle.target_rows, ws)
    cand_score = score(values, bundle)
    assert cand_score is not None
    better = not ws.shipped(bundle).is_file() or ships(values, shipped_values, bundle, min_gain)
    record = weights_record(candidate)
    rows = {}
    if better:
        if full_table:
            values.update(measure_rows(candidate, bundle, [r for r in bundle.rows if r.target is None], ws))
        known = read_entries(ws).get(bundle.name)
        rows = quality_rows(values, bundle, ws, known.quality if known else None)
        ship(bundle, candidate, ws)
    measured = ledger_record(bundle, record, values, cand_score, shipped_score, better, note)

    def change(entry: BundledModel) -> BundledModel:
        entry = replace(entry, ledger=[*entry.ledger, measured])
        if better:
            entry = with_quality(with_shipped_weights(entry, bundle, ws.shipped(bundle)), bundle, rows,
                                 new_weights=True)
        return entry

    update_entry(ws, bundle, change)
    write_docs(ws)
    verdict = "shipped" if better else "kept the shipped model"
    print(f"{bundle.name}: candidate {cand_score:.4f} dB vs shipped "
          f"{'none' if shipped_score is None else f'{shipped_score:.4f}'} dB -> {verdict}", flush=True)
    return Decision(better, cand_score, shipped_score, values)


def ledger_record(bundle: Bundle, record: WeightsRecord, values: dict[str, Metrics], cand_score: float,
                  shipped_score: float | None, shipped: bool, note: str) -> dict[str, Any]:
    """The ledger's line for one measured candidate (its counters, target-row values and the verdict)."""
    return {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"), "iterations": record.iterations,
        "cpu_hours": round(record.cpu_hours or 0.0, 2), "wall_hours": round(record.train_hours or 0.0, 2),
        "values": {r.label: values[r.label][r.keys[0]] for r in bundle.target_rows},
        "score": round(cand_score, 4), "shipped_score": None if shipped_score is None else round(shipped_score, 4),
        "shipped": shipped, "machine": machine_summary(), "precision": EVAL_PRECISION,
        **({"note": note} if note else {}),
    }


def complete_tables(bundles: Sequence[Bundle], ws: Workspace) -> None:
    """Measure the rows the manifest lacks for the shipped models (after a campaign shipped on target rows)."""
    for b in bundles:
        entry = read_entries(ws).get(b.name)
        if entry is None or not ws.shipped(b).is_file():
            continue
        missing = [r for r in b.rows if r.label not in entry.quality]
        if not missing:
            continue
        rows = quality_rows(measure_rows(ws.shipped(b), b, missing, ws), b, ws, entry.quality)
        update_entry(ws, b, lambda e, b=b, rows=rows: with_quality(e, b, rows, stamp=False))
    write_docs(ws)


def measure_shipped(bundles: Sequence[Bundle], ws: Workspace) -> None:
    """(Re)measure the shipped models on every row and record them, with their training block re-read."""
    for b in bundles:
        values = measure_rows(ws.shipped(b), b, b.rows, ws)
        entry = read_entries(ws).get(b.name)
        rows = quality_rows(values, b, ws, entry.quality if entry else None)
        training = training_info(ws.shipped(b), b)
        update_entry(ws, b, lambda e, b=b, rows=rows, t=training: with_quality(replace(e, training=t), b, rows))
    write_docs(ws)


def ship(bundle: Bundle, candidate: Path, ws: Workspace) -> None:
    """Copy the candidate's weights into the package (atomically), with the bundled name in its metadata."""
    state, meta = read_checkpoint(candidate)
    config = resolve_config(state, meta, None)
    keep = {k: v for k, v in meta.items() if k.startswith("swinir.") and k != "swinir.config"}
    keep["swinir.bundled_name"] = bundle.name
    size = sum(t.numel() * t.element_size() for t in state.values())
    if size > BUNDLED_LIMIT:
        raise SwinIRError(f"{candidate}: {size / 1e6:.1f} MB of weights; bundled files must stay under 5 MB")
    save_safetensors(ws.shipped(bundle), state, config, keep)
