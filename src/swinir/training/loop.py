"""The training loop: one :class:`Trainer` per process, single-process or DistributedDataParallel.

The trainer assembles a run from its parts and then runs the loop; each part lives in its own module:

* :mod:`.state`: the :class:`~.state.TrainingState` (model, EMA, optimiser, scaler, progress) and the
  checkpoint format; exact resume (a run stopped at step k and resumed gives at step n bitwise the weights of
  an uninterrupted run on the same machine, CPU; CUDA kernels may be non-deterministic);
* :mod:`.steps` and :mod:`.gan`: one optimisation step (the PSNR stage's, the GAN stage's);
* :mod:`.validation`: the EMA weights scored through the engine, as ``swinir eval`` scores them;
* :mod:`.distributed`: torchrun's process group, DDP and the loop's few collective calls;
* :mod:`.data` and :mod:`.monitor`: batches (pure functions of seed, iteration and slot); CSV, TensorBoard, plot.

The loop: per batch, the step; every ``log.every`` iterations a progress line; every ``val.every`` a
validation (rank 0); a checkpoint every ``checkpoint.every`` iterations, every ``checkpoint.every_minutes``, at
the end, and on SIGINT/SIGTERM: the running step finishes, the checkpoint is written, and :meth:`Trainer.run`
returns 130 (SIGINT) or 143 (SIGTERM), the shell's codes for those signals, so that a job script can tell
"stopped, resumable" from "finished" (0). A second SIGINT aborts at once without saving. Stop signals and
timed checkpoints are agreed on by all ranks every step (one small all-reduce), so all stop together.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import SwinIRError
from ..fileio import write_bytes_atomic
from ..hardware import device_summary
from .config import RunConfig
from .data import TrainDataset, load_validation, make_loader
from .distributed import (
    agree,
    barrier,
    check_replicas_agree,
    gather_rng_states,
    init_distributed,
    leave_distributed,
    process_threads,
    resolve_device,
    wrap,
)
from .gan import GanStep
from .monitor import BASE_COLUMNS, GAN_COLUMNS, CsvLog, EventWriter, plot_progress
from .state import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    TrainingState,
    check_resumable,
    files_digest,
    latest_checkpoint,
    list_checkpoints,
    remove_temporaries,
    resumed_config,
    save_checkpoint,
)
from .steps import PixelStep
from .validation import Validation

# check_resumable stays importable from here (scripts/campaign.py uses it); it lives in .state
__all__ = ["EXIT_CODES", "EXIT_FINISHED", "Trainer", "check_resumable", "train"]

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
        self.run_dir = Path(run_dir)
        self.dist, self._owns_group = init_distributed(device)
        self.device = resolve_device(device, self.dist)
        self._log_fn = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._bar: Any = None

        checkpoint: tuple[Path, dict[str, Any]] | None = None
        changed: list[str] = []
        if resume:
            checkpoint = latest_checkpoint(self.run_dir, log=self.log)
            config, changed = resumed_config(checkpoint[1], config, overrides)
        elif config is None:
            raise SwinIRError("give a config (or resume an existing run)")
        elif list_checkpoints(self.run_dir):
            raise SwinIRError(f"{self.run_dir} already holds a run ({list_checkpoints(self.run_dir)[-1][1].name}); "
                              "continue it with --resume, or choose another --out")
        self.config: RunConfig = config
        if config.train.precision == "fp16" and self.device.type != "cuda":
            raise SwinIRError("train.precision fp16 needs CUDA; on a CPU use bf16 (or fp32)")
        threads = process_threads(config.train.threads, self.dist, self.device)
        if threads:
            torch.set_num_threads(threads)

        self.state = TrainingState.fresh(config, self.device, self.dist.rank)
        self.dataset = TrainDataset(config, log=self.log)
        self.state.images = len(self.dataset)
        self.state.files_digest = files_digest([p for p, _ in self.dataset.entries])
        self.validation = Validation(config, load_validation(config, log=self.log) if self.dist.is_main else [])
        self._start(checkpoint, changed)
        net = wrap(self.state.model, self.dist, self.device)
        gan = self.state.gan
        self._step = (GanStep(self.state, net, wrap(gan.discriminator, self.dist, self.device), self.device)
                      if gan is not None else PixelStep(self.state, net, self.device))

        self.csv: CsvLog | None = None
        self.events: EventWriter | None = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            removed = remove_temporaries(self.run_dir)
            if removed:
                self.log(f"removed {removed} half-written checkpoint file(s) left by an interrupted save")
            write_bytes_atomic(self.run_dir / "config.yaml", config.to_yaml().encode())
            columns = BASE_COLUMNS + (GAN_COLUMNS if gan is not None else ())
            self.csv = CsvLog(self.run_dir / "log.csv", columns, keep_until=self.iteration if resume else None)
            self.events = EventWriter(self.run_dir) if config.log.tensorboard else None
        self.baseline = self.validation.baseline_scores()
        if self.baseline:
            self.log(f"validation baseline ({self.validation.baseline_name}): PSNR {self.baseline['psnr']:.3f} dB, "
                     f"SSIM {self.baseline['ssim']:.4f}, L1 {self.baseline['l1']:.5f}")

    def _start(self, checkpoint: tuple[Path, Mapping[str, Any]] | None, changed: list[str]) -> None:
        """Load where the run starts from: its checkpoint, ``train.init_weights`` or ``train.continue_from``."""
        tr = self.config.train
        if checkpoint is not None:
            path, saved = checkpoint
            for warning in self.state.load_dict(saved, rank=self.dist.rank, world_size=self.dist.world_size):
                self.log(f"warning: {warning}")
            self.log(f"resumed {path} at iteration {self.iteration:,}"
                     + (f" (changed: {', '.join(changed)})" if changed else ""))
        elif tr.init_weights:
            self.state.load_weights(self.config.resolve_path(tr.init_weights))
            self.log(f"initialised from {tr.init_weights}")
        elif tr.continue_from:
            lineage = self.state.continue_from(self.config.resolve_path(tr.continue_from))
            self.log(f"continuing {tr.continue_from} at iteration {self.iteration:,} ({lineage.hours:.2f} h trained "
                     "before; fresh optimiser state)")

    # ---- what callers look at -----------------------------------------------------------------------

    @property
    def model(self) -> nn.Module:
        return self.state.model

    @property
    def ema(self) -> nn.Module:
        return self.state.ema

    @property
    def disc(self) -> nn.Module | None:
        """The GAN stage's discriminator (None in the PSNR stage)."""
        return self.state.gan.discriminator if self.state.gan is not None else None

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
        if not self.dist.is_main:
            return
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            self._log_fn(message)

    def step(self, lq: Tensor, hr: Tensor) -> dict[str, float]:
        """One optimisation step on a (local) batch (:mod:`.steps`); returns the losses as floats."""
        return self._step(lq, hr)

    def validate(self) -> dict[str, float]:
        """Scores of the EMA weights on the validation set (rank 0; {} without a validation set)."""
        return self.validation.model_scores(self.state.ema)

    # ---- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint content (:mod:`.state`); collective in a distributed run (gathers RNG states)."""
        return self.state.to_dict(gather_rng_states(self.dist))

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0); every rank must call it (weights are compared, RNG states gathered)."""
        check_replicas_agree(self.dist, self.state.model, self.device)
        state = self.state_dict()
        if not self.dist.is_main:
            return None
        path = save_checkpoint(self.run_dir, state, self.config.checkpoint.keep)
        self.log(f"checkpoint {path}")
        self._plot()
        return path

    # ---- the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        """Train to ``train.iterations`` (or until a stop signal); returns the exit code (module docstring)."""
        cfg, progress = self.config, self.state.progress
        total = cfg.train.iterations
        if progress.iteration >= total:
            self.log(f"the run is complete ({progress.iteration:,} of {total:,} iterations); raise "
                     "train.iterations (--set train.iterations=N) to continue")
            return EXIT_FINISHED
        if self.events is not None and self.baseline and progress.iteration == 0:
            for key, value in self.baseline.items():
                self.events.scalar(f"val/baseline_{key}", value, 0)
        self.log(f"training {cfg.task.name} x{cfg.task.scale} on {self.device} ({cfg.train.precision}, "
                 f"{self.dist.world_size} process{'es' if self.dist.active else ''}): {len(self.dataset)} images, "
                 f"batch {cfg.data.batch_size}, patch {cfg.data.patch_size}, "
                 f"iterations {progress.iteration:,} -> {total:,}")
        loader = make_loader(self.dataset, progress.iteration, total, rank=self.dist.rank,
                             world_size=self.dist.world_size, num_workers=cfg.data.num_workers,
                             pin_memory=self.device.type == "cuda")
        progress.device = device_summary(self.device)
        progress.start_clock()
        last_save = time.monotonic()
        window: dict[str, list[float]] = {}
        window_start, window_iter = time.monotonic(), progress.iteration
        code = EXIT_FINISHED
        self.state.model.train()
        with _StopSignals(self.log) as signals, self._progress(total) as bar:
            for lq, hr in loader:
                for key, value in self.step(lq, hr).items():
                    window.setdefault(key, []).append(value)
                if bar is not None:
                    bar.update(1)
                it = progress.iteration
                every_minutes = cfg.checkpoint.every_minutes
                time_due = every_minutes is not None and time.monotonic() - last_save >= every_minutes * 60
                stop, time_due = agree(self.dist, self.device, signals.received is not None, time_due)
                train_values: dict[str, float | None] = {}
                if it % cfg.log.every == 0 or stop or it == total:
                    train_values = {k: float(np.mean(v)) for k, v in window.items()}
                    train_values["lr"] = cfg.learning_rate(it - 1, segment_start=progress.segment_start)
                    rate = (time.monotonic() - window_start) / max(1, it - window_iter)
                    self._progress_line(bar, it, total, train_values, rate)
                    window, window_start, window_iter = {}, time.monotonic(), it
                if it % cfg.val.every == 0 or it == total:
                    self._validate_and_record(train_values)
                elif train_values:
                    self._record(train_values)
                if stop or time_due or it == total or (cfg.checkpoint.every and it % cfg.checkpoint.every == 0):
                    self.save()
                    last_save = time.monotonic()
                if stop:  # a rank that did not get the signal itself stops as SIGTERM
                    code = EXIT_CODES.get(signals.received, EXIT_CODES[signal.SIGTERM])
                    break
        del loader
        if code == EXIT_FINISHED and self.dist.is_main:
            last = progress.last_val
            self.state.export(self.run_dir / LAST_WEIGHTS, {"val_psnr": round(last["psnr"], 4)} if last else {})
            best = f"; best validation PSNR {progress.best[0]:.3f} dB at {progress.best[1]:,}" if progress.best else ""
            self.log(f"finished {progress.iteration:,} iterations in {progress.seconds() / 3600:.2f} h{best}")
        elif code != EXIT_FINISHED:
            self.log(f"stopped at iteration {progress.iteration:,}; continue with --resume {self.run_dir}")
        if self.events is not None:
            self.events.close()
        return code

    def close(self) -> None:
        """Leave the process group if this trainer joined it (after the last collective call)."""
        leave_distributed(self._owns_group)
        self._owns_group = False

    # ---- validation, logs, progress -----------------------------------------------------------------

    def _validate_and_record(self, train_values: dict[str, float | None]) -> None:
        """Rank 0 validates (exporting the best EMA weights so far); all ranks wait for it."""
        progress = self.state.progress
        scores = self.validate() if self.dist.is_main else {}
        if scores:
            improved = progress.record_validation(scores)
            if improved and self.config.checkpoint.export_best:
                self.state.export(self.run_dir / BEST_WEIGHTS, {"val_psnr": round(scores["psnr"], 4),
                                                                "val_ssim": round(scores["ssim"], 5)})
            best = " (best)" if improved else f" (best {progress.best[0]:.3f})"
            self.log(f"validation @ {progress.iteration:,}: PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f}, "
                     f"L1 {scores['l1']:.5f}{best}")
        self._record({**train_values, **{f"val_{k}": v for k, v in scores.items()}})
        self._plot()
        barrier(self.dist)

    def _record(self, values: dict[str, float | None]) -> None:
        if self.csv is None:
            return
        iteration = self.state.progress.iteration
        values = {"iteration": iteration, "seconds": round(self.state.progress.seconds(), 1), **values}
        self.csv.append(values)
        if self.events is not None:
            for key, value in values.items():
                if value is not None and key not in ("iteration", "seconds"):
                    tag = key.replace("val_", "val/") if key.startswith("val_") else f"train/{key}"
                    self.events.scalar(tag, value, iteration)

    def _plot(self) -> None:
        if self.csv is not None and self.config.log.plot:
            plot_progress(self.run_dir / "progress.png", self.csv.rows, baseline_psnr=self.baseline.get("psnr"),
                          title=f"{self.run_dir.name}: {self.config.task.name} x{self.config.task.scale}")

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Any]:
        """A tqdm bar on an interactive terminal (rank 0, log.progress); None otherwise (plain lines)."""
        if not (self.dist.is_main and self.config.log.progress and sys.stderr.isatty()):
            yield None
            return
        from tqdm import tqdm

        with tqdm(total=total, initial=self.iteration, unit="it", dynamic_ncols=True, smoothing=0.05) as bar:
            self._bar = bar
            try:
                yield bar
            finally:
                self._bar = None

    def _progress_line(self, bar: Any, it: int, total: int, values: Mapping[str, float | None], rate: float) -> None:
        if bar is not None:
            bar.set_postfix(loss=f"{values.get('loss', math.nan):.4g}", lr=f"{values['lr']:.2e}", refresh=False)
            return
        eta_h = (total - it) * rate / 3600
        losses = " ".join(f"{k} {v:.4g}" for k, v in values.items() if k.startswith("loss") and v is not None)
        self.log(f"iter {it:,}/{total:,} {losses} lr {values['lr']:.2e} {rate:.2f} s/it ETA {eta_h:.1f} h")


def train(config: RunConfig | None, run_dir: str | os.PathLike, *, device: str = "cpu", resume: bool = False,
          overrides: Sequence[str] = ()) -> int:
    """Train (or resume) a run; returns the exit code (0 finished, 130/143 stopped by SIGINT/SIGTERM)."""
    trainer = Trainer(config, run_dir, device=device, resume=resume, overrides=overrides)
    try:
        return trainer.run()
    finally:
        trainer.close()
