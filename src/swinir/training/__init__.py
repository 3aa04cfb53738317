"""Training SwinIR: YAML configs and recipes, on-the-fly degradations, a resumable (and distributed) loop.

    from swinir.training import load_config, train
    config = load_config(recipe="cpu_sr_x2", overrides=["train.iterations=2000"])
    train(config, "runs/sr_x2")                      # or: swinir train --recipe cpu_sr_x2 --out runs/sr_x2

The pieces, each usable alone:

* :mod:`.config`: typed, validated run configs (YAML files, shipped recipes, ``--set key=value`` overrides).
* :mod:`.tasks`: the one table of what differs between tasks (channels, degradation, loss, metrics).
* :mod:`.data`: folder datasets whose every sample is a pure function of (seed, iteration, slot).
* :mod:`.loop`: the :class:`~swinir.training.loop.Trainer` (EMA, bf16/fp16, DDP, signals, resume).
* :mod:`.state`: atomic training checkpoints and the safetensors export of a run's EMA weights.
* :mod:`.gan`, :mod:`.losses`: the real-world SR GAN stage (U-Net discriminator, VGG19 perceptual loss).
* :mod:`.monitor`: CSV log, TensorBoard event files, a PNG plot.
* :mod:`.cli`: ``swinir train`` (also ``python -m swinir.training``).
"""

from .config import RunConfig, load_config, parse_config, recipe_names
from .loop import Trainer, train
from .state import export_weights

__all__ = ["RunConfig", "Trainer", "export_weights", "load_config", "parse_config", "recipe_names", "train"]
