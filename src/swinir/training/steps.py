"""The PSNR-oriented stage (the paper's) and the pieces every stage's step shares.

A step is a callable ``step(lq, hr) -> losses`` bound to a :class:`~swinir.training.state.TrainingState`;
calling it does the whole iteration: the learning rate of the iteration (a pure function of it,
:meth:`RunConfig.learning_rate`), the forward pass under :func:`swinir.precision.autocast` (bf16 on CPU or
CUDA, fp16 on CUDA with a GradScaler), the loss (always in fp32, :mod:`.losses`), backward, optional
gradient clipping, the optimiser step, the EMA update, and the iteration counter. :class:`PixelStep` is the
PSNR stage's step (one pixel loss) and :class:`PsnrStage` the stage itself (:mod:`.stages`); the GAN stage's
step (:class:`swinir.training.gan.GanStep`) extends :class:`PixelStep`.

The EMA decay is ``min(ema_decay, (1 + i) / (10 + i))`` with ``train.ema_warmup`` (the default), so the
average is useful from the first validations on and reaches ``ema_decay`` (0.999) after ~9,000 iterations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor, nn

from ..precision import autocast
from ..tasks import get_task
from .config import RunConfig
from .losses import PixelLoss, pixel_loss
from .state import TrainingState

Wrap = Callable[[nn.Module], nn.Module]
"""How a stage's trained modules are wrapped for the run: DistributedDataParallel, or the module itself."""


def ema_decay(config: RunConfig, iteration: int) -> float:
    """The EMA decay after ``iteration`` steps (module docstring)."""
    decay = config.train.ema_decay
    return min(decay, (1 + iteration) / (10 + iteration)) if config.train.ema_warmup else decay


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model``, parameter by parameter (one fused call)."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def apply_gradients(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                    params: Iterable[Tensor], clip: float | None) -> None:
    """Backward, optional clipping of the global gradient norm, optimiser step (through the GradScaler for fp16)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(list(params), clip)
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(list(params), clip)
    scaler.step(optimizer)
    scaler.update()


def training_pixel_loss(config: RunConfig) -> PixelLoss:
    """The configured pixel loss; ``auto`` is the task's (L1 for SR, Charbonnier for denoising and JPEG)."""
    tr = config.train
    return pixel_loss(get_task(config.task.name).loss if tr.loss == "auto" else tr.loss, tr.charbonnier_eps)


class PixelStep:
    """The PSNR stage's step: ``pixel_loss(net(lq), hr)``.

    Args:
        state: the run's state (model, EMA, optimiser, scaler, progress); the step advances it.
        net: the model as trained: ``state.model`` itself, or its DistributedDataParallel wrapper.
        device: where the batches go.
    """

    def __init__(self, state: TrainingState, net: nn.Module, device: torch.device) -> None:
        self.state = state
        self.config = state.config
        self.net = net
        self.device = device
        self.pixel_loss = training_pixel_loss(self.config)

    def __call__(self, lq: Tensor, hr: Tensor) -> dict[str, float]:
        """One whole iteration on a (local) batch; returns its losses as floats."""
        state, progress = self.state, self.state.progress
        iteration = progress.iteration
        set_learning_rate(state.optimizer, self.config.learning_rate(iteration, segment_start=progress.segment_start))
        stats = self.update(lq.to(self.device, non_blocking=True), hr.to(self.device, non_blocking=True), iteration)
        update_ema(state.ema, state.model, ema_decay(self.config, iteration))
        progress.iteration += 1
        return stats

    def autocast(self) -> AbstractContextManager[None]:
        """The forward passes' autocast of ``train.precision`` (the engine's, :mod:`swinir.precision`)."""
        return autocast(self.config.train.precision, self.device)

    def update(self, lq: Tensor, hr: Tensor, iteration: int) -> dict[str, float]:
        """Forward, loss and optimiser step(s) of one iteration (the part a stage changes)."""
        state = self.state
        with self.autocast():
            out = self.net(lq)
        loss = self.pixel_loss(out, hr)
        apply_gradients(loss, state.optimizer, state.scaler, state.model.parameters(), self.config.train.grad_clip)
        return {"loss": loss.item()}


class PsnrStage:
    """The PSNR-oriented stage (:mod:`.stages`): the network alone on one pixel loss. It adds no networks, no
    checkpoint keys and no log columns to a run."""

    columns: tuple[str, ...] = ()

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        self.config = config

    def make_step(self, state: TrainingState, wrap: Wrap, device: torch.device) -> PixelStep:
        return PixelStep(state, wrap(state.model), device)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        return None
