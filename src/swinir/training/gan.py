"""The GAN stage of real-world SR: its networks, how they are assembled, and its generator+discriminator step.

The networks follow the published designs (Real-ESRGAN's U-Net discriminator with spectral normalisation; the
VGG19 feature loss of ESRGAN/Real-ESRGAN, pre-activation features of conv1_2 ... conv5_4 with ImageNet
normalisation) and are written here from those descriptions. The VGG19 weights are never downloaded: the user
passes a file (``gan.perceptual_weights``): torchvision's ``vgg19`` state dict (``features.N.weight`` keys, as
.pth, read with ``weights_only=True``, or converted to safetensors) or a file with ``conv1_1.weight``-style keys.

:class:`GanStage` is the stage (:mod:`.stages`): it builds its parts (discriminator, its Adam and GradScaler,
the perceptual loss), writes and reads its checkpoint keys (``discriminator``, ``optimizer_d``, ``scaler_d``)
and names its log columns; :class:`GanStep` trains it: the generator on ``pixel_weight * pixel +
perceptual_weight * VGG + gan_weight * GAN``, then the discriminator on ground truth and generated patches in
one batch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import SwinIRError
from .config import RunConfig
from .losses import discriminator_loss, generator_adversarial_loss
from .state import TrainingState, cpu_state_dict
from .steps import PixelStep, Wrap, apply_gradients, set_learning_rate

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_WIDTHS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def vgg19_layer_names() -> list[str]:
    """Names of torchvision's ``vgg19().features`` modules up to conv5_4, in order (index = position)."""
    names = []
    for block, widths in enumerate(VGG19_WIDTHS, start=1):
        for i in range(1, len(widths) + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        if block < len(VGG19_WIDTHS):
            names.append(f"pool{block}")
    return names


class VGG19Features(nn.Module):
    """VGG19 up to conv5_4 (torchvision's module layout), frozen; returns the requested layers' outputs.

    Input: RGB in [0, 1]; it is normalised with the ImageNet mean/std inside.
    """

    def __init__(self, layers: Mapping[str, float] | list[str]) -> None:
        super().__init__()
        self.names = vgg19_layer_names()
        unknown = [name for name in layers if name not in self.names]
        if unknown:
            convs = [n for n in self.names if n.startswith("conv")]
            raise SwinIRError(f"gan.perceptual_layers: unknown VGG19 layer(s) {unknown}; use {', '.join(convs)}")
        self.wanted = list(layers)
        modules: list[nn.Module] = []
        channels = 3
        for name in self.names:
            if name.startswith("conv"):
                block, i = (int(x) for x in name[4:].split("_"))
                width = VGG19_WIDTHS[block - 1][i - 1]
                modules.append(nn.Conv2d(channels, width, 3, padding=1))
                channels = width
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        self.last = max(self.names.index(n) for n in self.wanted)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)  # always frozen: no dropout/BN here, but keep it explicit

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = {}
        for index, module in enumerate(self.features[: self.last + 1]):
            x = module(x)
            if self.names[index] in self.wanted:
                out[self.names[index]] = x
        return out

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load VGG19 conv weights from ``path`` (see the module docstring for the accepted layouts)."""
        state = read_vgg19_state(path)
        by_name = {name: i for i, name in enumerate(self.names)}
        mine = {}
        for key, value in state.items():
            key = key.removeprefix("module.").removeprefix("features.")
            layer, _, kind = key.partition(".")
            index = by_name.get(layer, int(layer) if layer.isdigit() else None)
            if index is not None and index < len(self.names) and kind in ("weight", "bias"):
                mine[f"features.{index}.{kind}"] = value
        expected = self.state_dict()
        missing = sorted(set(expected) - set(mine))
        shapes = [k for k in expected if k in mine and mine[k].shape != expected[k].shape]
        if missing or shapes:
            raise SwinIRError(
                f"{path}: not VGG19 weights ({len(missing)} conv tensors missing, {len(shapes)} mis-shaped); pass "
                "torchvision's vgg19 state dict (features.N.weight) or conv1_1.weight-style keys"
            )
        self.load_state_dict({k: mine[k] for k in expected}, strict=True)


def read_vgg19_state(path: str | os.PathLike) -> dict[str, Tensor]:
    """A tensor mapping from a safetensors file or a plain ``.pth`` state dict (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise SwinIRError(f"gan.perceptual_weights: {path} not found; give a VGG19 weights file (never downloaded)")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SwinIRError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from err
    for key in ("state_dict", "params", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise SwinIRError(f"{path}: expected a mapping of tensor names to tensors")
    return dict(obj)


class PerceptualLoss(nn.Module):
    """``sum_l w_l * L1(VGG_l(output), VGG_l(target))`` over the configured layers (pre-activation)."""

    def __init__(self, layers: Mapping[str, float], weights_path: str | os.PathLike | None) -> None:
        super().__init__()
        self.layer_weights = dict(layers)
        self.vgg = VGG19Features(list(layers))
        if weights_path is not None:
            self.vgg.load_weights(weights_path)

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        fake = self.vgg(output)
        with torch.no_grad():
            real = self.vgg(target)
        return sum(w * F.l1_loss(fake[n].float(), real[n].float()) for n, w in self.layer_weights.items())


class UNetDiscriminator(nn.Module):
    """A U-Net discriminator with spectral normalisation (Real-ESRGAN's design): a per-pixel realness map.

    Three stride-2 downsampling convs, three bilinear upsampling stages with skip connections, two more
    convs and a 1-channel head. Input sides must be divisible by 8.
    """

    def __init__(self, in_chans: int = 3, channels: int = 64) -> None:
        super().__init__()
        c = channels

        def sn_conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2 if stride == 1 else 1,
                                           bias=False))

        self.conv0 = nn.Conv2d(in_chans, c, 3, 1, 1)
        self.down = nn.ModuleList([sn_conv(c, 2 * c, 4, 2), sn_conv(2 * c, 4 * c, 4, 2), sn_conv(4 * c, 8 * c, 4, 2)])
        self.up = nn.ModuleList([sn_conv(8 * c, 4 * c, 3), sn_conv(4 * c, 2 * c, 3), sn_conv(2 * c, c, 3)])
        self.refine = nn.Sequential(sn_conv(c, c, 3), nn.LeakyReLU(0.2), sn_conv(c, c, 3), nn.LeakyReLU(0.2))
        self.head = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"the U-Net discriminator needs sides divisible by 8, got {tuple(x.shape[-2:])}")
        skips = [F.leaky_relu(self.conv0(x), 0.2)]
        for conv in self.down:
            skips.append(F.leaky_relu(conv(skips[-1]), 0.2))
        y = skips.pop()
        for conv in self.up:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = F.leaky_relu(conv(y), 0.2) + skips.pop()
        return self.head(self.refine(y))


# --------------------------------------------------------------------------------------------------
# The stage and its step
# --------------------------------------------------------------------------------------------------


class GanStage:
    """The GAN stage: a U-Net discriminator with its Adam and (fp16) GradScaler, which a checkpoint holds, and
    the frozen perceptual loss (None when ``perceptual_weight`` is 0), which it does not. Building it on
    ``device`` fails at once, before any training, when the VGG19 weights file is missing."""

    columns: tuple[str, ...] = ("loss_pixel", "loss_perceptual", "loss_gan", "loss_d")

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        gan, tr = config.gan, config.train
        self.discriminator = UNetDiscriminator(config.model.in_chans, gan.d_channels).to(device)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=gan.d_lr, betas=tr.betas)
        self.scaler = torch.amp.GradScaler("cuda") if tr.precision == "fp16" else None
        self.perceptual: PerceptualLoss | None = None
        if gan.perceptual_weight > 0:
            if gan.perceptual_weights is None:
                raise SwinIRError("the GAN stage needs gan.perceptual_weights: a VGG19 weights file (torchvision's "
                                  "vgg19 state dict as .pth or safetensors); it is never downloaded")
            self.perceptual = PerceptualLoss(gan.perceptual_layers,
                                             config.resolve_path(gan.perceptual_weights)).to(device)

    def make_step(self, state: TrainingState, wrap: Wrap, device: torch.device) -> GanStep:
        return GanStep(state, wrap(state.model), self, wrap(self.discriminator), device)

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": cpu_state_dict(self.discriminator), "optimizer_d": self.optimizer.state_dict(),
                "scaler_d": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        self.discriminator.load_state_dict(saved["discriminator"])
        self.optimizer.load_state_dict(saved["optimizer_d"])
        if self.scaler is not None and saved.get("scaler_d"):
            self.scaler.load_state_dict(saved["scaler_d"])


class GanStep(PixelStep):
    """One generator step, then one discriminator step (see the module docstring).

    ``disc_net`` is the discriminator as trained (``stage.discriminator`` or its DDP wrapper); the generator's
    step calls the bare module, frozen, so that no gradient is synchronised for it.
    """

    def __init__(self, state: TrainingState, net: nn.Module, stage: GanStage, disc_net: nn.Module,
                 device: torch.device) -> None:
        super().__init__(state, net, device)
        self.parts = stage
        self.disc_net = disc_net

    def update(self, lq: Tensor, hr: Tensor, iteration: int) -> dict[str, float]:
        tr, gan, state, parts = self.config.train, self.config.gan, self.state, self.parts
        disc = parts.discriminator
        set_learning_rate(parts.optimizer,
                          self.config.learning_rate(iteration, gan.d_lr, state.progress.segment_start))
        disc.requires_grad_(False)
        with self.autocast():
            out = self.net(lq)
            fake_logits = disc(out)
            l_pix = gan.pixel_weight * self.pixel_loss(out, hr)
            l_per = (gan.perceptual_weight * parts.perceptual(out, hr) if parts.perceptual is not None
                     else out.new_zeros(()))
            l_gan = gan.gan_weight * generator_adversarial_loss(fake_logits, gan.gan_loss)
        loss = l_pix + l_per.float() + l_gan
        apply_gradients(loss, state.optimizer, state.scaler, state.model.parameters(), tr.grad_clip)

        disc.requires_grad_(True)
        with self.autocast():
            logits = self.disc_net(torch.cat([hr, out.detach()]))
        real_logits, fake_logits = logits.chunk(2)
        l_d = discriminator_loss(real_logits, fake_logits, gan.gan_loss)
        apply_gradients(l_d, parts.optimizer, parts.scaler, disc.parameters(), tr.grad_clip)
        return {"loss": loss.item(), "loss_pixel": l_pix.item(), "loss_perceptual": float(l_per.item()),
                "loss_gan": l_gan.item(), "loss_d": l_d.item()}
