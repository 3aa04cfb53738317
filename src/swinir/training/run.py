"""Assembling a run: everything one process needs to train (or resume) a run folder, built from its config.

:func:`build_run` does, in this order: join torchrun's process group (if any) and pick the device; take the
config (a new run's, or, resuming, the checkpoint's own plus safe overrides: :func:`.state.resumed_config`);
build the training state, then the stage (:mod:`.stages`), the dataset and the validation set; load where the
run starts from (its checkpoint, ``train.init_weights`` or ``train.continue_from``); make the stage's step;
score the validation baseline; and prepare the run folder and the hooks (:mod:`.hooks`). The loop
(:mod:`.loop`) then trains the :class:`Run`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import SwinIRError
from ..fileio import write_bytes_atomic
from .config import RunConfig
from .data import TrainDataset, load_validation
from .distributed import DistInfo, init_distributed, process_threads, resolve_device, wrap
from .hooks import CheckpointHook, CsvHook, Hook, Hooks, PlotHook, TensorBoardHook
from .monitor import BASE_COLUMNS, Console
from .stages import Stage, Step, build_stage
from .state import (
    TrainingState,
    files_digest,
    latest_checkpoint,
    list_checkpoints,
    remove_temporaries,
    resumed_config,
)
from .validation import Validation


@dataclass
class Run:
    """One process's part of a training run, ready to train (module docstring)."""

    config: RunConfig
    run_dir: Path
    dist: DistInfo
    owns_group: bool  # this process joined the process group (and leaves it when done)
    device: torch.device
    console: Console  # rank 0's messages
    state: TrainingState
    stage: Stage
    step: Step
    dataset: TrainDataset
    validation: Validation
    baseline: dict[str, float]  # the validation baseline's scores (rank 0; {} without a validation set)
    hooks: Hooks


def build_run(config: RunConfig | None, run_dir: str | os.PathLike, *, device: str = "cpu", resume: bool = False,
              overrides: Sequence[str] = (), log: Callable[[str], None] | None = None) -> Run:
    """A :class:`Run` in ``run_dir`` (the arguments are :class:`.loop.Trainer`'s)."""
    run_dir = Path(run_dir)
    dist, owns_group = init_distributed(device)
    where = resolve_device(device, dist)
    console = Console(dist.is_main, log)
    config, checkpoint, changed = _config(config, run_dir, resume, overrides, console)
    if config.train.precision == "fp16" and where.type != "cuda":
        raise SwinIRError("train.precision fp16 needs CUDA; on a CPU use bf16 (or fp32)")
    threads = process_threads(config.train.threads, dist, where)
    if threads:
        torch.set_num_threads(threads)

    state = TrainingState.fresh(config, where, dist.rank)
    stage = state.stage = build_stage(config, where)
    dataset = TrainDataset(config, log=console)
    state.images = len(dataset)
    state.files_digest = files_digest([p for p, _ in dataset.entries])
    validation = Validation(config, load_validation(config, log=console) if dist.is_main else [])
    _start(state, config, checkpoint, changed, dist, console)
    step = stage.make_step(state, lambda module: wrap(module, dist, where), where)

    hooks: list[Hook] = [CheckpointHook(run_dir, config, state, dist, where, console)]
    baseline = validation.baseline_scores()
    if dist.is_main:
        hooks += _folder_hooks(run_dir, config, stage, baseline, resumed_at=state.iteration if resume else None,
                               log=console)
    if baseline:
        console(f"validation baseline ({validation.baseline_name}): PSNR {baseline['psnr']:.3f} dB, "
                f"SSIM {baseline['ssim']:.4f}, L1 {baseline['l1']:.5f}")
    return Run(config, run_dir, dist, owns_group, where, console, state, stage, step, dataset, validation, baseline,
               Hooks(hooks))


def _config(config: RunConfig | None, run_dir: Path, resume: bool, overrides: Sequence[str],
            log: Callable[[str], None]) -> tuple[RunConfig, tuple[Path, dict[str, Any]] | None, list[str]]:
    """The run's config, and when resuming its newest checkpoint and the safe keys that changed."""
    if resume:
        checkpoint = latest_checkpoint(run_dir, log=log)
        config, changed = resumed_config(checkpoint[1], config, overrides)
        return config, checkpoint, changed
    if config is None:
        raise SwinIRError("give a config (or resume an existing run)")
    if list_checkpoints(run_dir):
        raise SwinIRError(f"{run_dir} already holds a run ({list_checkpoints(run_dir)[-1][1].name}); "
                          "continue it with --resume, or choose another --out")
    return config, None, []


def _start(state: TrainingState, config: RunConfig, checkpoint: tuple[Path, Mapping[str, Any]] | None,
           changed: list[str], dist: DistInfo, log: Callable[[str], None]) -> None:
    """Load where the run starts from: its checkpoint, ``train.init_weights`` or ``train.continue_from``."""
    tr = config.train
    if checkpoint is not None:
        path, saved = checkpoint
        for warning in state.load_dict(saved, rank=dist.rank, world_size=dist.world_size):
            log(f"warning: {warning}")
        log(f"resumed {path} at iteration {state.iteration:,}" + (f" (changed: {', '.join(changed)})" if changed
                                                                   else ""))
    elif tr.init_weights:
        state.load_weights(config.resolve_path(tr.init_weights))
        log(f"initialised from {tr.init_weights}")
    elif tr.continue_from:
        lineage = state.continue_from(config.resolve_path(tr.continue_from))
        log(f"continuing {tr.continue_from} at iteration {state.iteration:,} ({lineage.hours:.2f} h trained "
            "before; fresh optimiser state)")


def _folder_hooks(run_dir: Path, config: RunConfig, stage: Stage, baseline: Mapping[str, float],
                  resumed_at: int | None, log: Callable[[str], None]) -> list[Hook]:
    """Rank 0's run folder (half-written checkpoints removed, ``config.yaml`` written) and its writers: the CSV
    log (its rows after ``resumed_at`` dropped), TensorBoard and the plot as the config asks."""
    run_dir.mkdir(parents=True, exist_ok=True)
    removed = remove_temporaries(run_dir)
    if removed:
        log(f"removed {removed} half-written checkpoint file(s) left by an interrupted save")
    write_bytes_atomic(run_dir / "config.yaml", config.to_yaml().encode())
    csv = CsvHook(run_dir / "log.csv", BASE_COLUMNS + stage.columns, keep_until=resumed_at)
    hooks: list[Hook] = [csv]
    if config.log.tensorboard:
        hooks.append(TensorBoardHook(run_dir))
    if config.log.plot:
        title = f"{run_dir.name}: {config.task.name} x{config.task.scale}"
        hooks.append(PlotHook(run_dir / "progress.png", csv, baseline.get("psnr"), title))
    return hooks
