"""When the loop logs, validates and writes checkpoints, and what a log row averages.

Every decision is a function of the iteration just completed (``it``, counted from 1) and the run's total:

* a log row (progress line, CSV, TensorBoard) every ``log.every`` iterations, at the end and when stopping;
* a validation every ``val.every`` iterations and at the end;
* a checkpoint every ``checkpoint.every`` iterations (0: never by count), at the end, when stopping, and when
  ``checkpoint.every_minutes`` of wall time passed since the last one (the only clock-driven decision; all
  ranks agree on it before acting, :func:`.distributed.agree`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from .config import RunConfig


class Cadence:
    """The loop's schedule (module docstring); its clock for ``checkpoint.every_minutes`` starts when built."""

    def __init__(self, config: RunConfig) -> None:
        self.total = config.train.iterations
        self.log_every = config.log.every
        self.val_every = config.val.every
        self.checkpoint_every = config.checkpoint.every
        self.checkpoint_minutes = config.checkpoint.every_minutes
        self._last_save = time.monotonic()

    def log_due(self, it: int, stop: bool) -> bool:
        return it % self.log_every == 0 or stop or it == self.total

    def validation_due(self, it: int) -> bool:
        return it % self.val_every == 0 or it == self.total

    def time_due(self) -> bool:
        """Whether ``checkpoint.every_minutes`` passed since the last checkpoint (or the start)."""
        minutes = self.checkpoint_minutes
        return minutes is not None and time.monotonic() - self._last_save >= minutes * 60

    def checkpoint_due(self, it: int, stop: bool, time_due: bool) -> bool:
        by_count = bool(self.checkpoint_every) and it % self.checkpoint_every == 0
        return stop or time_due or it == self.total or by_count

    def saved(self) -> None:
        """A checkpoint was written: the clock of ``checkpoint.every_minutes`` starts again."""
        self._last_save = time.monotonic()


class LossWindow:
    """The losses of the steps since the last log row, and how long they took."""

    def __init__(self, iteration: int) -> None:
        self._values: dict[str, list[float]] = {}
        self._start, self._iteration = time.monotonic(), iteration

    def add(self, losses: Mapping[str, float]) -> None:
        for key, value in losses.items():
            self._values.setdefault(key, []).append(value)

    def close(self, iteration: int) -> tuple[dict[str, float | None], float]:
        """The mean of every loss since the last row and the seconds per iteration; starts the next window."""
        means: dict[str, float | None] = {k: float(np.mean(v)) for k, v in self._values.items()}
        rate = (time.monotonic() - self._start) / max(1, iteration - self._iteration)
        self._values, self._start, self._iteration = {}, time.monotonic(), iteration
        return means, rate
