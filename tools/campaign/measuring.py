"""Measuring: a weights file, a baseline or a rival on a bundle's rows, with the protocol of ``swinir eval``.

Every value is the mean over a row's dataset, in fp32 (:data:`~tools.campaign.bundles.EVAL_PRECISION`),
rounded to 4 decimals; :func:`quality_rows` assembles what a card shows for a row (the model, its baseline
and its rivals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from swinir.evaluation import Method, baseline_method, evaluate, model_method

from .bundles import EVAL_PRECISION, Bundle, Row, Workspace, bundle_named

Metrics = dict[str, float]


def fmt_metrics(values: Mapping[str, float]) -> str:
    """``28.82 / .8165``: dB with two decimals, SSIM-like values (below 1) with four and no leading zero."""
    return " / ".join(f"{v:.4f}".lstrip("0") if v < 1 else f"{v:.2f}" for v in values.values())


def mean_metrics(method: Method, row: Row, ws: Workspace) -> Metrics:
    """The row's metrics (``row.keys``) of ``method``, averaged over its dataset."""
    lr = ws.datasets / row.lr if row.lr else None
    results = evaluate(method, row.settings, [(ws.datasets / row.hr, lr)], method_name="m", progress=False)
    return {k: round(results[0].mean[k], 4) for k in row.keys}


def measure_rows(weights: Path, bundle: Bundle, rows: Sequence[Row], ws: Workspace) -> dict[str, Metrics]:
    """``{label: {metric: value}}`` of a weights file on ``rows``."""
    out = {}
    for row in rows:
        out[row.label] = mean_metrics(model_method(weights, row.settings, precision=EVAL_PRECISION), row, ws)
        print(f"{bundle.name} {weights.name} {row.label}: {fmt_metrics(out[row.label])}", flush=True)
    return out


def measure_references(bundle: Bundle, row: Row, ws: Workspace, known: Mapping[str, Any] | None = None
                       ) -> dict[str, Metrics]:
    """The row's baseline and rivals (``{name: metrics}``), measured where ``known`` (a quality row of the
    manifest) lacks the baseline. Rivals (the shipped files of other bundled models, which may have changed
    since) are measured every time."""
    known = known or {}
    baseline = known.get(bundle.baseline) or mean_metrics(baseline_method(bundle.baseline, row.settings), row, ws)
    out = {bundle.baseline: baseline}
    for rival in bundle.rivals:
        weights = ws.shipped(bundle_named(rival, ws.bundles))
        if weights.is_file():
            out[rival] = mean_metrics(model_method(weights, row.settings, precision=EVAL_PRECISION), row, ws)
    return out


def quality_rows(values: Mapping[str, Metrics], bundle: Bundle, ws: Workspace,
                 known: Mapping[str, Any] | None = None) -> dict[str, dict[str, Metrics]]:
    """The manifest's quality rows of measured model ``values``: ``{label: {"model": ..., baseline: ...,
    rival: ...}}``, the baseline taken from ``known`` (the manifest's quality block) where it has it."""
    known = known or {}
    return {r.label: {"model": values[r.label], **measure_references(bundle, r, ws, known.get(r.label))}
            for r in bundle.rows if r.label in values}
