"""The training loop: one :class:`Trainer` per process, single-process or DistributedDataParallel.

The trainer trains a :class:`~.run.Run`, which :func:`~.run.build_run` assembles from the config; each part
lives in its own module:

* :mod:`.run`: the run builder (process group, config, state, stage, data, validation, start point, hooks);
* :mod:`.state`: the :class:`~.state.TrainingState` (model, EMA, optimiser, scaler, progress) and the
  checkpoint format; exact resume (a run stopped at step k and resumed gives at step n bitwise the weights of
  an uninterrupted run on the same machine, CPU; CUDA kernels may be non-deterministic);
* :mod:`.stages`: the training stages (PSNR, GAN) behind one protocol: their parts, step, checkpoint keys and
  log columns;
* :mod:`.cadence`: when to log, validate and write checkpoints;
* :mod:`.hooks`: what is written at those moments (CSV, TensorBoard, plot, checkpoints and weights);
* :mod:`.validation`: the EMA weights scored through the engine, as ``swinir eval`` scores them;
* :mod:`.distributed`: torchrun's process group, DDP and the loop's few collective calls;
* :mod:`.data` and :mod:`.monitor`: batches (pure functions of seed, iteration and slot); console, CSV,
  TensorBoard, plot.

The loop: per batch, the stage's step; at the cadence's moments a log row, a validation (rank 0) and a
checkpoint, each passed to the hooks. A checkpoint is also written at the end and on SIGINT/SIGTERM: the
running step finishes, the checkpoint is written, and :meth:`Trainer.run` returns 130 (SIGINT) or 143
(SIGTERM), the shell's codes for those signals, so that a job script can tell "stopped, resumable" from
"finished" (0). A second SIGINT aborts at once without saving. Stop signals and timed checkpoints are agreed
on by all ranks every step (one small all-reduce), so all stop together.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..hardware import device_summary
from .cadence import Cadence, LossWindow
from .config import RunConfig
from .data import make_loader
from .distributed import agree, barrier, leave_distributed
from .hooks import Values, checkpoint_content
from .run import Run, build_run
from .stages import Stage

__all__ = ["EXIT_CODES", "EXIT_FINISHED", "Trainer", "train"]

EXIT_FINISHED = 0
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class _StopSignals:
    """SIGINT/SIGTERM set a flag (the loop finishes the step and saves); a second SIGINT aborts."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.received: int | None = None
        self._log = log
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_CODES:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        self._log(f"received {signal.Signals(signum).name}: finishing this step, saving a checkpoint, then exiting"
                  + (" (Ctrl-C again aborts without saving)" if signum == signal.SIGINT else ""))


class Trainer:
    """Everything one process needs to train (or resume) a run in ``run_dir``.

    Args:
        config: the run config; None with ``resume`` takes the run's own config (plus ``overrides``).
        run_dir: where checkpoints, logs, plot and exported weights go.
        device: ``cpu`` or ``cuda`` (each distributed rank takes ``cuda:LOCAL_RANK``).
        resume: continue the newest checkpoint in ``run_dir`` (refused when the config differs in keys
            that would change the training; see :data:`~swinir.training.state.SAFE_ON_RESUME`).
        overrides: ``section.key=value`` strings applied to the run's own config when resuming.
        log: where messages go (rank 0 only); default: stderr.
    """

    def __init__(self, config: RunConfig | None, run_dir: str | os.PathLike, *, device: str = "cpu",
                 resume: bool = False, overrides: Sequence[str] = (), log: Callable[[str], None] | None = None) -> None:
        self.parts: Run = build_run(config, run_dir, device=device, resume=resume, overrides=overrides, log=log)
        run = self.parts
        self.config, self.run_dir, self.dist, self.device = run.config, run.run_dir, run.dist, run.device
        self.state, self.dataset, self.validation = run.state, run.dataset, run.validation
        self.stage: Stage = run.stage  # the training stage (:mod:`.stages`), e.g. the GAN stage's discriminator
        self.baseline = run.baseline  # the validation baseline's scores (bicubic or the input); {} without one

    # ---- what callers look at -----------------------------------------------------------------------

    @property
    def model(self) -> nn.Module:
        return self.state.model

    @property
    def ema(self) -> nn.Module:
        return self.state.ema

    @property
    def iteration(self) -> int:
        return self.state.progress.iteration

    @property
    def segment_start(self) -> int:
        return self.state.progress.segment_start

    @property
    def last_val(self) -> dict[str, float]:
        """The latest validation's scores (psnr, ssim, l1); {} before the first."""
        return self.state.progress.last_val

    def log(self, message: str) -> None:
        self.parts.console(message)

    def step(self, lq: Tensor, hr: Tensor) -> dict[str, float]:
        """One optimisation step on a (local) batch (the stage's, :mod:`.stages`); returns the losses as floats."""
        return self.parts.step(lq, hr)

    def validate(self) -> dict[str, float]:
        """Scores of the EMA weights on the validation set (rank 0; {} without a validation set)."""
        return self.validation.model_scores(self.state.ema)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint content (:mod:`.state`); collective in a distributed run (gathers RNG states)."""
        return checkpoint_content(self.state, self.dist)

    # ---- the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        """Train to ``train.iterations`` (or until a stop signal); returns the exit code (module docstring)."""
        cfg, progress, console = self.config, self.state.progress, self.parts.console
        total = cfg.train.iterations
        if progress.iteration >= total:
            self.log(f"the run is complete ({progress.iteration:,} of {total:,} iterations); raise "
                     "train.iterations (--set train.iterations=N) to continue")
            return EXIT_FINISHED
        hooks = self.parts.hooks
        hooks.started(progress.iteration, self.baseline)
        self.log(f"training {cfg.task.name} x{cfg.task.scale} on {self.device} ({cfg.train.precision}, "
                 f"{self.dist.world_size} process{'es' if self.dist.active else ''}): {len(self.dataset)} images, "
                 f"batch {cfg.data.batch_size}, patch {cfg.data.patch_size}, "
                 f"iterations {progress.iteration:,} -> {total:,}")
        loader = make_loader(self.dataset, progress.iteration, total, rank=self.dist.rank,
                             world_size=self.dist.world_size, num_workers=cfg.data.num_workers,
                             pin_memory=self.device.type == "cuda")
        progress.device = device_summary(self.device)
        progress.start_clock()
        cadence, window = Cadence(cfg), LossWindow(progress.iteration)
        code = EXIT_FINISHED
        self.state.model.train()
        with _StopSignals(self.log) as signals, console.progress_bar(total, progress.iteration, cfg.log.progress):
            for lq, hr in loader:
                window.add(self.step(lq, hr))
                console.advance()
                it = progress.iteration
                stop, time_due = agree(self.dist, self.device, signals.received is not None, cadence.time_due())
                train_values: dict[str, float | None] = {}
                if cadence.log_due(it, stop):
                    train_values, rate = window.close(it)
                    train_values["lr"] = cfg.learning_rate(it - 1, segment_start=progress.segment_start)
                    console.progress(it, total, train_values, rate)
                if cadence.validation_due(it):
                    self._validate(train_values)
                elif train_values:
                    self._row(train_values)
                if cadence.checkpoint_due(it, stop, time_due):
                    hooks.checkpoint()
                    cadence.saved()
                if stop:  # a rank that did not get the signal itself stops as SIGTERM
                    code = EXIT_CODES.get(signals.received, EXIT_CODES[signal.SIGTERM])
                    break
        del loader
        self._finish(code)
        return code

    def close(self) -> None:
        """Leave the process group if this trainer joined it (after the last collective call)."""
        leave_distributed(self.parts.owns_group)
        self.parts.owns_group = False

    # ---- the loop's events --------------------------------------------------------------------------

    def _row(self, values: Values) -> None:
        progress = self.state.progress
        self.parts.hooks.row(progress.iteration, progress.seconds(), values)

    def _validate(self, train_values: Values) -> None:
        """Rank 0 validates (the hooks export the best EMA weights so far); all ranks wait for it."""
        progress = self.state.progress
        scores = self.validate() if self.dist.is_main else {}
        improved = False
        if scores:
            improved = progress.record_validation(scores)
            best = " (best)" if improved else f" (best {progress.best[0]:.3f})"
            self.log(f"validation @ {progress.iteration:,}: PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f}, "
                     f"L1 {scores['l1']:.5f}{best}")
        self._row({**train_values, **{f"val_{k}": v for k, v in scores.items()}})
        self.parts.hooks.validated(scores, improved)
        barrier(self.dist)

    def _finish(self, code: int) -> None:
        completed = code == EXIT_FINISHED
        self.parts.hooks.finished(completed)
        progress = self.state.progress
        if completed:
            best = f"; best validation PSNR {progress.best[0]:.3f} dB at {progress.best[1]:,}" if progress.best else ""
            self.log(f"finished {progress.iteration:,} iterations in {progress.seconds() / 3600:.2f} h{best}")
        else:
            self.log(f"stopped at iteration {progress.iteration:,}; continue with --resume {self.run_dir}")
        self.parts.hooks.close()


def train(config: RunConfig | None, run_dir: str | os.PathLike, *, device: str = "cpu", resume: bool = False,
          overrides: Sequence[str] = ()) -> int:
    """Train (or resume) a run; returns the exit code (0 finished, 130/143 stopped by SIGINT/SIGTERM)."""
    trainer = Trainer(config, run_dir, device=device, resume=resume, overrides=overrides)
    try:
        return trainer.run()
    finally:
        trainer.close()
