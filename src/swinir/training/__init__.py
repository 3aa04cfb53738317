"""Training SwinIR: YAML configs and recipes, on-the-fly degradations, a resumable (and distributed) loop.

    from swinir.training import load_config, train
    config = load_config(recipe="cpu_sr_x2", overrides=["train.iterations=2000"])
    train(config, "runs/sr_x2")                      # or: swinir train --recipe cpu_sr_x2 --out runs/sr_x2

The pieces, each usable alone:

* :mod:`.config`: typed, validated run configs (YAML files, shipped recipes, ``--set key=value`` overrides).
* :mod:`.tasks`: what training adds to the task table :mod:`swinir.tasks` (degrading patches).
* :mod:`.data`: folder datasets whose every sample is a pure function of (seed, iteration, slot).
* :mod:`.state`: the :class:`~.state.TrainingState` and the checkpoint format (``to_dict`` / ``load_dict``),
  atomic checkpoint files, the resume rules, and the safetensors export of a run's EMA weights.
* :mod:`.lineage`: what exported weights record of their training (iterations, hours, segments).
* :mod:`.stages`: the training stages behind one protocol (their parts, step, checkpoint keys, log columns)
  and their table; :mod:`.steps`: the PSNR stage and what every step shares (autocast, loss, backward,
  optimiser, EMA); :mod:`.gan`, :mod:`.losses`: the real-world SR GAN stage (U-Net discriminator, VGG19
  perceptual loss, its step) and the pixel / adversarial losses.
* :mod:`.validation`: the EMA weights scored through the engine, as ``swinir eval`` scores them.
* :mod:`.distributed`: torchrun's process group, DDP and the loop's collective calls.
* :mod:`.run`: the run builder, which assembles the above for one process; :mod:`.cadence`: when the loop
  logs, validates and saves; :mod:`.hooks`: what it writes then (CSV, TensorBoard, plot, checkpoints).
* :mod:`.loop`: the :class:`~swinir.training.loop.Trainer`, which runs the loop (stop signals, exit codes).
* :mod:`.monitor`: the console, CSV log, TensorBoard event files, a PNG plot.
* :mod:`.cli`: ``swinir train`` (also ``python -m swinir.training``).
"""

from .config import RunConfig, load_config, parse_config, recipe_names
from .loop import Trainer, train
from .monitor import plot_curves
from .state import check_resumable, export_weights, run_progress

__all__ = ["RunConfig", "Trainer", "check_resumable", "export_weights", "load_config", "parse_config", "plot_curves",
           "recipe_names", "run_progress", "train"]
