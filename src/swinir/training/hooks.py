"""What a run writes while it trains, as hooks the loop calls at its events.

The loop (:mod:`.loop`) says what happened; each hook decides what to write. Events, in a run's order:

* :meth:`Hook.started`: the loop starts (or resumes) at ``iteration``, with the validation baseline's scores;
* :meth:`Hook.row`: a log row: the mean losses and the learning rate of the last interval, and/or the
  validation's scores (``val_psnr``, ...), at ``iteration`` after ``seconds`` of training;
* :meth:`Hook.validated`: a validation ran (its scores, {} without a validation set; whether they are the best);
* :meth:`Hook.checkpoint`: a checkpoint is due (the cadence says so, the run ends, or it was asked to stop);
* :meth:`Hook.finished`: the loop ended (``completed``: it reached ``train.iterations``), then :meth:`Hook.close`.

The hooks: :class:`CsvHook` (``log.csv``), :class:`TensorBoardHook` (event files), :class:`PlotHook`
(``progress.png``), all on rank 0, and :class:`CheckpointHook` (checkpoints and exported weights) on every
rank, because a checkpoint is a collective step (replicas compared, random states gathered). :class:`Hooks`
passes each event to a list of them, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig
from .distributed import DistInfo, check_replicas_agree, gather_rng_states
from .monitor import CsvLog, EventWriter, plot_progress
from .state import BEST_WEIGHTS, LAST_WEIGHTS, TrainingState, save_checkpoint

Values = Mapping[str, float | None]


class Hook:
    """A watcher of the loop's events (module docstring); every event does nothing unless overridden."""

    def started(self, iteration: int, baseline: Mapping[str, float]) -> None:
        return None

    def row(self, iteration: int, seconds: float, values: Values) -> None:
        return None

    def validated(self, scores: Mapping[str, float], improved: bool) -> None:
        return None

    def checkpoint(self) -> None:
        return None

    def finished(self, completed: bool) -> None:
        return None

    def close(self) -> None:
        return None


class Hooks(Hook):
    """Several hooks as one: each event goes to every hook, in the list's order."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = list(hooks)

    def started(self, iteration: int, baseline: Mapping[str, float]) -> None:
        for hook in self.hooks:
            hook.started(iteration, baseline)

    def row(self, iteration: int, seconds: float, values: Values) -> None:
        for hook in self.hooks:
            hook.row(iteration, seconds, values)

    def validated(self, scores: Mapping[str, float], improved: bool) -> None:
        for hook in self.hooks:
            hook.validated(scores, improved)

    def checkpoint(self) -> None:
        for hook in self.hooks:
            hook.checkpoint()

    def finished(self, completed: bool) -> None:
        for hook in self.hooks:
            hook.finished(completed)

    def close(self) -> None:
        for hook in self.hooks:
            hook.close()


class CsvHook(Hook):
    """``log.csv``: one row per log row, in ``columns``' order; on resume the rows after ``keep_until`` go."""

    def __init__(self, path: Path, columns: Sequence[str], keep_until: int | None) -> None:
        self.log = CsvLog(path, columns, keep_until=keep_until)

    @property
    def rows(self) -> list[dict[str, float | None]]:
        return self.log.rows

    def row(self, iteration: int, seconds: float, values: Values) -> None:
        self.log.append({"iteration": iteration, "seconds": round(seconds, 1), **values})


class TensorBoardHook(Hook):
    """TensorBoard scalars: ``train/<loss>``, ``train/lr``, ``val/<score>``, and ``val/baseline_<score>`` at 0."""

    def __init__(self, run_dir: Path) -> None:
        self.events = EventWriter(run_dir)

    def started(self, iteration: int, baseline: Mapping[str, float]) -> None:
        if iteration == 0:
            for key, value in baseline.items():
                self.events.scalar(f"val/baseline_{key}", value, 0)

    def row(self, iteration: int, seconds: float, values: Values) -> None:
        for key, value in values.items():
            if value is not None:
                tag = key.replace("val_", "val/") if key.startswith("val_") else f"train/{key}"
                self.events.scalar(tag, value, iteration)

    def close(self) -> None:
        self.events.close()


class PlotHook(Hook):
    """``progress.png`` from the CSV's rows, redrawn after every validation and every checkpoint."""

    def __init__(self, path: Path, csv: CsvHook, baseline_psnr: float | None, title: str) -> None:
        self.path, self.csv, self.baseline_psnr, self.title = path, csv, baseline_psnr, title

    def validated(self, scores: Mapping[str, float], improved: bool) -> None:
        self.draw()

    def checkpoint(self) -> None:
        self.draw()

    def draw(self) -> None:
        plot_progress(self.path, self.csv.rows, baseline_psnr=self.baseline_psnr, title=self.title)


def checkpoint_content(state: TrainingState, dist: DistInfo) -> dict[str, Any]:
    """The checkpoint of ``state`` (:mod:`.state`); collective in a distributed run (gathers RNG states)."""
    return state.to_dict(gather_rng_states(dist))


class CheckpointHook(Hook):
    """Checkpoints when due (collective: every rank takes part, rank 0 writes) and the EMA weights: the best
    validation's (``checkpoint.export_best``) whenever it improves, the last ones when the run completes."""

    def __init__(self, run_dir: Path, config: RunConfig, state: TrainingState, dist: DistInfo,
                 device: torch.device, log: Callable[[str], None]) -> None:
        self.run_dir, self.config, self.state, self.dist, self.device, self.log = (run_dir, config, state, dist,
                                                                                   device, log)

    def checkpoint(self) -> None:
        check_replicas_agree(self.dist, self.state.model, self.device)
        content = checkpoint_content(self.state, self.dist)
        if self.dist.is_main:
            path = save_checkpoint(self.run_dir, content, self.config.checkpoint.keep)
            self.log(f"checkpoint {path}")

    def validated(self, scores: Mapping[str, float], improved: bool) -> None:
        if improved and self.config.checkpoint.export_best:
            self.state.export(self.run_dir / BEST_WEIGHTS, {"val_psnr": round(scores["psnr"], 4),
                                                            "val_ssim": round(scores["ssim"], 5)})

    def finished(self, completed: bool) -> None:
        if completed and self.dist.is_main:
            last = self.state.progress.last_val
            self.state.export(self.run_dir / LAST_WEIGHTS, {"val_psnr": round(last["psnr"], 4)} if last else {})
