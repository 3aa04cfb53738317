"""Continuing exported weights (the bundled models' campaign) and the learning-rate schedules.

Continuation starts a new run from weights that ``swinir train`` exported, with a fresh optimiser but the
counters of the weights: iterations, hours and history add up across runs, sessions and machines.
"""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from swinir import SwinIRError
from swinir.checkpoints import read_checkpoint, save_safetensors
from swinir.training import Trainer, export_weights, parse_config, train
from test_training import data_root, tiny_raw  # noqa: F401  (fixture)


def test_cosine_schedule_with_warmup_hand_computed(tmp_path: Path) -> None:
    config = parse_config(tiny_raw(tmp_path, train={"iterations": 1000, "lr": 1e-3, "schedule": "cosine",
                                                    "lr_min": 1e-4, "warmup": 9}))
    lr = config.learning_rate
    assert lr(0) == pytest.approx(1e-3 * 1 / 10)  # warm-up: (i + 1) / (warmup + 1) of the cosine value
    assert lr(8) == pytest.approx(9 / 10 * (1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 8 / 1000))))
    assert lr(500) == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half way: the mean of peak and floor
    assert lr(1000) == pytest.approx(1e-4)
    # a continued segment warms up again from where it starts
    assert lr(600, segment_start=600) == pytest.approx(lr(600) / 10)
    assert lr(609, segment_start=600) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 0.609)))


def test_multistep_schedule_is_unchanged_by_default(tmp_path: Path) -> None:
    config = parse_config(tiny_raw(tmp_path, train={"iterations": 1000, "lr": 2e-4}))
    assert [config.learning_rate(i) for i in (0, 499, 500, 950)] == [2e-4, 2e-4, 1e-4, 2e-4 / 16]


def test_init_weights_and_continue_from_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match="give one"):
        parse_config(tiny_raw(tmp_path, train={"init_weights": "a.safetensors", "continue_from": "b.safetensors"}))


def _meta(path: Path) -> dict[str, str]:
    return read_checkpoint(path)[1]


def test_continuing_exported_weights_carries_their_counters_on(data_root: Path, tmp_path: Path) -> None:  # noqa: F811
    first = parse_config(tiny_raw(data_root, train={"iterations": 6}))
    assert train(first, tmp_path / "first") == 0
    start = export_weights(tmp_path / "first", tmp_path / "start.safetensors", "last")
    meta0 = _meta(start)
    assert meta0["swinir.iterations"] == "6"
    history0 = json.loads(meta0["swinir.history"])
    assert [(h["start"], h["end"]) for h in history0] == [(0, 6)]

    second = parse_config(tiny_raw(data_root, train={"iterations": 10, "continue_from": str(start), "warmup": 3}))
    trainer = Trainer(second, tmp_path / "second")
    assert trainer.iteration == 6 and trainer.segment_start == 6
    shipped, _ = read_checkpoint(start)
    for name, tensor in trainer.model.state_dict().items():  # the model and its EMA start from the weights
        if name in shipped:
            assert torch.equal(tensor, shipped[name]), name
            assert torch.equal(trainer.ema.state_dict()[name], shipped[name]), name
    assert trainer.run() == 0
    meta = _meta(tmp_path / "second" / "last.safetensors")
    assert meta["swinir.iterations"] == "10"
    history = json.loads(meta["swinir.history"])
    assert [(h["start"], h["end"]) for h in history] == [(0, 6), (6, 10)]
    assert [h["device"] for h in history] == ["cpu", "cpu"]  # a GPU segment says "cuda: <its name>"
    assert float(meta["swinir.train_hours"]) >= float(meta0["swinir.train_hours"])
    assert float(meta["swinir.train_hours"]) == pytest.approx(sum(h["hours"] for h in history), abs=2e-3)
    assert float(meta["swinir.cpu_hours"]) == pytest.approx(sum(h["cpu_hours"] for h in history), abs=2e-3)
    assert float(meta["swinir.cpu_hours"]) > float(meta0["swinir.cpu_hours"])
    rows = (tmp_path / "second" / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [7, 8, 9, 10]
    # the first continued step ran at a quarter of the rate: warm-up restarts with the fresh optimiser
    assert float(rows[0].split(",")[2]) == pytest.approx(second.learning_rate(6) / 4)


def test_a_continued_run_resumes_with_its_segment(data_root: Path, tmp_path: Path) -> None:  # noqa: F811
    assert train(parse_config(tiny_raw(data_root, train={"iterations": 3})), tmp_path / "first") == 0
    start = export_weights(tmp_path / "first", tmp_path / "start.safetensors", "last")
    config = parse_config(tiny_raw(data_root, train={"iterations": 9, "continue_from": str(start), "warmup": 4}))
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
    assert train(None, tmp_path / "cut", resume=True) == 0
    a, _ = read_checkpoint(tmp_path / "straight" / "last.safetensors")
    b, _ = read_checkpoint(tmp_path / "cut" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # warm-up and schedule positions survived the resume
    ha = json.loads(_meta(tmp_path / "straight" / "last.safetensors")["swinir.history"])
    hb = json.loads(_meta(tmp_path / "cut" / "last.safetensors")["swinir.history"])
    assert [(h["start"], h["end"]) for h in ha] == [(h["start"], h["end"]) for h in hb] == [(0, 3), (3, 9)]


def test_continue_from_needs_weights_that_record_their_iterations(data_root: Path, tmp_path: Path) -> None:  # noqa: F811
    config = parse_config(tiny_raw(data_root))
    model = config.model.build()
    save_safetensors(tmp_path / "plain.safetensors", model, config.model)
    raw = tiny_raw(data_root, train={"continue_from": str(tmp_path / "plain.safetensors")})
    with pytest.raises(SwinIRError, match="record their iterations"):
        Trainer(parse_config(raw), tmp_path / "run")
