"""Losses: pixel losses for the PSNR-oriented training, adversarial losses for the GAN stage.

All losses are computed in float32 whatever the autocast precision of the forward pass (the inputs are
cast), so that bf16 training optimises the same objective as fp32 training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

PixelLoss = Callable[[Tensor, Tensor], Tensor]


def l1_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error (the SR loss of the paper)."""
    return F.l1_loss(output.float(), target.float())


def l2_loss(output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output.float(), target.float())


def charbonnier_loss(output: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """``mean(sqrt((output - target)^2 + eps^2))``: a smooth L1 (the denoising / JPEG loss of the paper)."""
    diff = output.float() - target.float()
    return torch.sqrt(diff * diff + eps * eps).mean()


def pixel_loss(name: str, eps: float = 1e-3) -> PixelLoss:
    """The pixel loss called ``name`` (l1, l2, charbonnier)."""
    if name == "charbonnier":
        return lambda output, target: charbonnier_loss(output, target, eps)
    return {"l1": l1_loss, "l2": l2_loss}[name]


def generator_adversarial_loss(fake_logits: Tensor, kind: str) -> Tensor:
    """The generator's GAN term: make the discriminator call its outputs real (per pixel for a U-Net D)."""
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str) -> Tensor:
    """The discriminator's loss on ground truth (label real) and generator outputs (label fake)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
