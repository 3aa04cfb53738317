"""The loop's parts: the cadence (when to log, validate, save), the stage protocol, the hooks.

The loop knows stages only through their protocol (:mod:`swinir.training.stages`): a stage plugged into the
table here adds its log column and its checkpoint key, and reads its key back on resume, with no change to
the loop, the state or the monitor.
"""

from __future__ import annotations

import csv
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from swinir.training import Trainer, parse_config, train
from swinir.training import stages as stages_module
from swinir.training.cadence import Cadence
from swinir.training.state import TrainingState
from swinir.training.steps import PsnrStage, Wrap
from test_training import data_root, final_state, tiny_raw  # noqa: F401  (fixture)


def test_cadence_hand_computed(tmp_path: Path) -> None:
    config = parse_config(tiny_raw(tmp_path, train={"iterations": 10}, log={"every": 4}, val={"every": 3},
                                   checkpoint={"every": 5}))
    cadence = Cadence(config)
    its = range(1, 11)
    assert [it for it in its if cadence.log_due(it, stop=False)] == [4, 8, 10]  # and the last
    assert [it for it in its if cadence.validation_due(it)] == [3, 6, 9, 10]
    assert [it for it in its if cadence.checkpoint_due(it, stop=False, time_due=False)] == [5, 10]
    assert cadence.log_due(7, stop=True) and cadence.checkpoint_due(7, stop=True, time_due=False)
    assert cadence.checkpoint_due(7, stop=False, time_due=True)
    assert not cadence.time_due()  # no checkpoint.every_minutes
    never = Cadence(parse_config(tiny_raw(tmp_path, train={"iterations": 10}, checkpoint={"every": 0})))
    assert [it for it in its if never.checkpoint_due(it, stop=False, time_due=False)] == [10]
    timed = Cadence(parse_config(tiny_raw(tmp_path, checkpoint={"every_minutes": 1e-9})))
    assert timed.time_due()


class CountingStage(PsnrStage):
    """The PSNR stage plus a counter of its steps: one log column, one checkpoint key."""

    columns = ("steps_seen",)

    def __init__(self, config: Any, device: torch.device) -> None:
        super().__init__(config, device)
        self.seen = 0

    def make_step(self, state: TrainingState, wrap: Wrap, device: torch.device) -> Any:
        pixel = super().make_step(state, wrap, device)

        def step(lq: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
            self.seen += 1
            return {**pixel(lq, hr), "steps_seen": float(self.seen)}

        return step

    def state_dict(self) -> dict[str, Any]:
        return {"counting": {"seen": self.seen}}

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        self.seen = saved["counting"]["seen"]


def test_a_stage_in_the_table_brings_its_column_and_checkpoint_key(data_root: Path, tmp_path: Path,  # noqa: F811
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(stages_module.STAGES, "psnr", CountingStage)
    config = parse_config(tiny_raw(data_root, train={"iterations": 4}, checkpoint={"every": 2}))
    trainer = Trainer(config, tmp_path / "run")
    assert isinstance(trainer.stage, CountingStage)
    step = trainer.step

    def stop_after_three(*args: Any) -> dict[str, float]:
        stats = step(*args)
        if trainer.iteration == 3:
            signal.raise_signal(signal.SIGTERM)
        return stats

    trainer.step = stop_after_three
    assert trainer.run() == 143
    assert final_state(tmp_path / "run")["counting"] == {"seen": 3}
    assert train(None, tmp_path / "run", resume=True) == 0  # the stage reads its key back: 3 + 1
    assert final_state(tmp_path / "run")["counting"] == {"seen": 4}
    with (tmp_path / "run" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["iteration", "loss", "lr", "val_psnr", "val_ssim", "val_l1", "seconds", "steps_seen"]
    assert [(r["iteration"], r["steps_seen"]) for r in rows] == [("1", "1"), ("2", "2"), ("3", "3"), ("4", "4")]


def test_every_stage_a_config_may_name_is_in_the_table() -> None:
    from typing import get_args

    from swinir.training.config import Stage

    assert set(get_args(Stage)) == set(stages_module.STAGES) == {"psnr", "gan"}
