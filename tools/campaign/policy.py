"""The ship policy: how a model's measured values compare with its targets, what replaces a shipped file,
and which model trains next. Pure functions of measured values; nothing here measures or writes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from swinir.bundled import BundledModel

from .bundles import Bundle

Values = Mapping[str, Mapping[str, float]]  # {row label: {metric: value}}


def model_values(entry: BundledModel | None) -> dict[str, dict[str, float]]:
    """``{label: metrics}`` of the model itself from a manifest entry's quality block."""
    return {label: q["model"] for label, q in (entry.quality if entry else {}).items()}


def score(values: Values, bundle: Bundle) -> float | None:
    """Mean of the first metric over the target rows (None when a target row is missing)."""
    rows = bundle.target_rows
    if any(r.label not in values for r in rows):
        return None
    return sum(values[r.label][r.keys[0]] for r in rows) / len(rows)


def gap(values: Values, bundle: Bundle) -> float:
    """How far the model is below its targets: the largest shortfall in dB (<= 0: every target met)."""
    rows = bundle.target_rows
    if any(r.label not in values for r in rows):
        return math.inf
    return max(r.target - values[r.label][r.keys[0]] for r in rows)  # type: ignore[operator]


def ships(candidate: Values, shipped: Values, bundle: Bundle, min_gain: float = 0.0) -> bool:
    """Whether a candidate replaces the shipped model: its score is higher by more than ``min_gain`` dB, and it
    meets every target if the shipped model does (a gain on one set never buys a miss on another)."""
    cand_score, shipped_score = score(candidate, bundle), score(shipped, bundle)
    assert cand_score is not None and shipped_score is not None
    if gap(shipped, bundle) <= 0 < gap(candidate, bundle):
        return False
    return cand_score > shipped_score + min_gain


def training_order(bundles: Sequence[Bundle], entries: Mapping[str, BundledModel], *,
                   past_targets: bool = False) -> list[Bundle]:
    """The models to train next, the largest gap to its targets first. Models that meet every target are left
    out, unless ``past_targets``: then they follow, the smallest surplus first (quality users see keeps rising)."""
    gaps = {b.name: gap(model_values(entries.get(b.name)), b) for b in bundles}
    return sorted((b for b in bundles if past_targets or gaps[b.name] > 0), key=lambda b: -gaps[b.name])
