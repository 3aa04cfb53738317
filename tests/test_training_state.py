"""The training state and its checkpoint format: today's layout (format 1) loads and resumes bitwise, the state
round-trips through its dict, and the single-process collectives are no-ops.

Run folders written before the trainer was split into modules must go on resuming exactly, so the layout is
written out here key by key, independently of :meth:`TrainingState.to_dict`.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import torch

from swinir.checkpoints import read_checkpoint
from swinir.training import Trainer, export_weights, parse_config, train
from swinir.training.distributed import DistInfo, agree, check_replicas_agree, gather_rng_states, process_threads, wrap
from swinir.training.state import Progress, TrainingState, capture_rng, list_checkpoints, load_checkpoint
from test_training import CHECKPOINT_KEYS as TOP_KEYS
from test_training import assert_same_tensors, data_root, final_state, tiny_raw  # noqa: F401  (fixture)

DATA_KEYS = {"seed", "next_iteration", "global_batch", "images", "files_digest"}
PROGRESS_KEYS = {"elapsed", "world_size", "best_psnr", "best_iteration", "last_psnr", "segment_start",
                 "segment_elapsed", "cpu_seconds", "segment_cpu", "history", "device"}


def config_before_the_gan_section(config: dict[str, Any]) -> dict[str, Any]:
    """A run config as checkpoints held it before the GAN stage had a section: its settings in ``train``."""
    gan = config["gan"]
    moved = ("perceptual_weights", "perceptual_layers", "pixel_weight", "perceptual_weight", "gan_weight", "gan_loss",
             "d_lr", "d_channels")
    train = {**config["train"], **{key: gan[key] for key in moved}}
    return {**{k: v for k, v in config.items() if k != "gan"}, "train": train}


def format_1_checkpoint(src: dict[str, Any]) -> dict[str, Any]:
    """``src``'s content in the layout of CHECKPOINT_FORMAT 1, written out key by key as the trainer wrote it
    before the split (``Trainer.state_dict``), a continued run's progress counters included, and its config as
    it was then (:func:`config_before_the_gan_section`)."""
    data, progress = src["data"], src["progress"]
    return {
        "format": 1,
        "iteration": int(src["iteration"]),
        "config": config_before_the_gan_section(src["config"]),
        "params": src["params"],
        "params_ema": src["params_ema"],
        "optimizer": src["optimizer"],
        "scaler": None,
        "rng": src["rng"],
        "data": {"seed": data["seed"], "next_iteration": data["next_iteration"],
                 "global_batch": data["global_batch"], "images": data["images"],
                 "files_digest": data["files_digest"]},
        "progress": {"elapsed": float(progress["elapsed"]), "world_size": 1,
                     "best_psnr": progress["best_psnr"], "best_iteration": progress["best_iteration"],
                     "last_psnr": progress["last_psnr"], "segment_start": int(progress["segment_start"]),
                     "segment_elapsed": float(progress["segment_elapsed"]),
                     "cpu_seconds": float(progress["cpu_seconds"]), "segment_cpu": float(progress["segment_cpu"]),
                     "history": [dict(h) for h in progress["history"]]},
        "versions": {"swinir": "0.1.0", "torch": "2.13.0+cpu"},
    }


def test_a_format_1_checkpoint_of_a_continued_run_resumes_bitwise(data_root: Path, tmp_path: Path) -> None:  # noqa: F811
    assert train(parse_config(tiny_raw(data_root, train={"iterations": 3})), tmp_path / "first") == 0
    start = export_weights(tmp_path / "first", tmp_path / "start.safetensors", "last")
    config = parse_config(tiny_raw(data_root, train={"iterations": 9, "continue_from": str(start), "warmup": 4},
                                   val={"every": 2}))
    assert train(config, tmp_path / "straight") == 0

    trainer = Trainer(config, tmp_path / "cut")
    step = trainer.step

    def step_then_signal(*args: Any) -> dict[str, float]:
        stats = step(*args)
        if trainer.iteration == 5:
            signal.raise_signal(signal.SIGTERM)
        return stats

    trainer.step = step_then_signal
    assert trainer.run() == 143
    (_, path), = list_checkpoints(tmp_path / "cut")
    written = load_checkpoint(path)
    assert set(written) == TOP_KEYS  # the writer still writes format 1's layout
    assert set(written["data"]) == DATA_KEYS and set(written["progress"]) == PROGRESS_KEYS
    assert written["progress"]["segment_start"] == 3 and written["progress"]["best_iteration"] == 4

    legacy = tmp_path / "legacy" / "checkpoints" / path.name
    legacy.parent.mkdir(parents=True)
    torch.save(format_1_checkpoint(written), legacy)
    assert "d_lr" in load_checkpoint(legacy)["config"]["train"] and "gan" not in load_checkpoint(legacy)["config"]
    assert train(None, tmp_path / "legacy", resume=True, overrides=["log.every=2"]) == 0  # a safe change passes
    a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "legacy")
    for key in ("params", "params_ema", "optimizer", "rng"):
        assert_same_tensors(a[key], b[key], key)
    for key in ("segment_start", "best_iteration", "best_psnr", "last_psnr"):
        assert a["progress"][key] == b["progress"][key], key
    _, meta = read_checkpoint(tmp_path / "legacy" / "last.safetensors")
    assert [(h["start"], h["end"]) for h in json.loads(meta["swinir.history"])] == [(0, 3), (3, 9)]


def test_the_state_round_trips_through_its_dict(data_root: Path, tmp_path: Path) -> None:  # noqa: F811
    config = parse_config(tiny_raw(data_root, train={"iterations": 3}, val={"every": 3}))
    trainer = Trainer(config, tmp_path / "run")
    assert trainer.run() == 0
    saved = trainer.state_dict()
    state = TrainingState.fresh(config, torch.device("cpu"))
    state.images, state.files_digest = trainer.state.images, trainer.state.files_digest
    assert state.load_dict(saved) == []
    assert state.iteration == 3 and state.progress.best == trainer.state.progress.best
    again = state.to_dict(saved["rng"])
    again["progress"]["elapsed"], again["progress"]["cpu_seconds"] = (saved["progress"]["elapsed"],
                                                                      saved["progress"]["cpu_seconds"])
    del saved["versions"], again["versions"]
    assert_same_tensors(saved, again, "checkpoint")

    other = TrainingState.fresh(config, torch.device("cpu"))
    warnings = other.load_dict(saved, world_size=2)
    assert len(warnings) == 2 and "had 1 processes, now 2" in warnings[0] and "images changed" in warnings[1]


def test_early_checkpoints_without_progress_counters_load_with_fresh_values() -> None:
    progress = Progress.from_dict({"elapsed": 10.0}, 7)
    assert (progress.iteration, progress.elapsed, progress.segment_start, progress.history) == (7, 10.0, 0, [])
    assert progress.best is None and progress.last_val == {}
    assert Progress.from_dict({"best_psnr": 30.5, "best_iteration": 4, "last_psnr": 30.0}, 6).best == (30.5, 4)


def test_single_process_collectives_are_no_ops() -> None:
    info, cpu = DistInfo(), torch.device("cpu")
    model = torch.nn.Linear(2, 2)
    assert agree(info, cpu, True, False) == (True, False)
    assert wrap(model, info, cpu) is model
    check_replicas_agree(info, model, cpu)
    (rng,) = gather_rng_states(info)
    assert_same_tensors(rng, capture_rng(), "rng")
    cores = len(os.sched_getaffinity(0))
    assert process_threads(3, info, cpu) == 3 and process_threads(None, info, cpu) == cores  # an idle machine
    assert process_threads(None, DistInfo(0, 4, 0, 4), cpu) == max(1, cores // 4)
    assert process_threads(None, info, torch.device("cuda")) is None
