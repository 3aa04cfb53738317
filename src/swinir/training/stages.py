"""Training stages: what one way of training adds to a run, as a small protocol, and the table of them.

A run trains in one stage, ``train.stage``: ``psnr`` (the paper's: one pixel loss, :class:`.steps.PsnrStage`)
or ``gan`` (real-world SR: pixel + perceptual + adversarial losses against a U-Net discriminator,
:class:`.gan.GanStage`). A stage is built from the config on the run's device (its own networks and
optimisers: the *parts*), makes the run's step, writes and reads its own checkpoint keys, and names the log
columns its step reports beyond ``loss``. The loop (:mod:`.loop`) knows only this protocol.

Adding a stage: a class with the members of :class:`Stage` (in a module of its own, beside :mod:`.gan`), one
row in :data:`STAGES`, and, when it has settings, their section in the config schema (:mod:`.config.schema`)
with the name in ``train.stage``'s choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from .config import RunConfig
from .gan import GanStage
from .state import StageState, TrainingState
from .steps import PsnrStage, Wrap

Step = Callable[[Tensor, Tensor], dict[str, float]]
"""One whole iteration on a (local) batch ``(lq, hr)``: the losses as floats (``loss`` and the stage's columns)."""


class Stage(StageState, Protocol):
    """One way of training the network (module docstring); built by ``STAGES[name](config, device)``, which
    builds its parts. Checkpoint keys: :meth:`state_dict` / :meth:`load_state_dict` (:class:`.state.StageState`)."""

    columns: tuple[str, ...]
    """The log columns the step reports beyond ``loss`` (``log.csv``, TensorBoard)."""

    def make_step(self, state: TrainingState, wrap: Wrap, device: torch.device) -> Step:
        """The run's step: it trains ``state`` (and the stage's parts), each trained module through ``wrap``."""
        ...


StageFactory = Callable[[RunConfig, torch.device], Stage]

STAGES: dict[str, StageFactory] = {"psnr": PsnrStage, "gan": GanStage}


def build_stage(config: RunConfig, device: torch.device) -> Stage:
    """The stage ``train.stage`` names, its parts on ``device``. Built right after
    :meth:`.state.TrainingState.fresh`, so that its networks draw their initial weights from this rank's
    random streams at the same point of every run."""
    return STAGES[config.train.stage](config, device)
