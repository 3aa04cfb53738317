"""The rules a run config must keep beyond its keys' types: ranges, and values that must agree across sections.

:func:`check_rules` reports every rule broken, in one line (``config: model.upscale 2 differs from task.scale
3; data.patch_size 18 must be ...``), so that one edit fixes them all. The task's facts (whether it upsamples,
its channels, its degradation) come from :data:`swinir.tasks.TASKS`.
"""

from __future__ import annotations

from ...errors import SwinIRError
from ...tasks import Task, get_task
from .schema import RunConfig


def check_rules(config: RunConfig) -> None:
    """Raise one line listing every broken rule (module docstring); a config that keeps them passes."""
    task = get_task(config.task.name)
    problems = [*_task_rules(config, task), *_data_rules(config), *_train_rules(config),
                *_stage_rules(config, task), *_output_rules(config)]
    if problems:
        raise SwinIRError("config: " + "; ".join(problems))


def _broken(rules: list[tuple[bool, str]]) -> list[str]:
    """The messages of the rules that do not hold."""
    return [message for holds, message in rules if not holds]


def _task_rules(config: RunConfig, task: Task) -> list[str]:
    """The task against the model: scale, channels; the degradation levels' ranges."""
    m, t = config.model, config.task
    if task.upsamples:
        size = [(t.scale >= 2, f"task.scale must be 2 or more for {t.name}, got {t.scale}"),
                (m.upscale == t.scale, f"model.upscale {m.upscale} differs from task.scale {t.scale}")]
    else:
        size = [(t.scale == 1, f"{t.name} keeps the image size: task.scale must be 1, got {t.scale}"),
                (m.upscale == 1, f"{t.name} needs a same-size model (upsampler ''), got upscale {m.upscale}")]
    return _broken([
        *size,
        (m.in_chans == task.channels, f"{t.name} works on {task.channels}-channel images but model.in_chans is "
                                      f"{m.in_chans}"),
        (0 <= t.sigma[0] <= t.sigma[1], f"task.sigma must be [low, high] with 0 <= low <= high, got {list(t.sigma)}"),
        (1 <= t.quality[0] <= t.quality[1] <= 100,
         f"task.quality must be [low, high] within 1..100, got {list(t.quality)}"),
        (t.shot_noise is None or (task.degradation == "noise" and 0 <= t.shot_noise[0] <= t.shot_noise[1]),
         f"task.shot_noise must be [low, high] with 0 <= low <= high, for a denoising task; got {t.shot_noise}"),
    ])


def _data_rules(config: RunConfig) -> list[str]:
    """Patches against the model's window; batch, workers, paired folders; the validation set."""
    d, v, t, window = config.data, config.val, config.task, config.model.window_size
    return _broken([
        (d.patch_size >= 1 and d.patch_size % window == 0,
         f"data.patch_size {d.patch_size} must be a positive multiple of the window size {window}"),
        (d.batch_size >= 1, f"data.batch_size must be at least 1, got {d.batch_size}"),
        (d.num_workers >= 0, f"data.num_workers must be 0 or more, got {d.num_workers}"),
        (d.train_lr is None or len(d.train_lr) == len(d.train), "data.train_lr needs one LR folder per data.train "
                                                                 "folder"),
        (v.every >= 1, f"val.every must be at least 1, got {v.every}"),
        (v.crop is None or v.crop >= max(16, t.scale), f"val.crop must be at least 16 pixels, got {v.crop}"),
        (v.quality is None or 1 <= v.quality <= 100, f"val.quality must be within 1..100, got {v.quality}"),
        (v.sigma is None or v.sigma >= 0, f"val.sigma must be 0 or more, got {v.sigma}"),
    ])


def _train_rules(config: RunConfig) -> list[str]:
    """The optimiser, the schedule, the EMA and the starting weights."""
    tr, milestones = config.train, list(config.milestone_iterations)
    return _broken([
        (tr.iterations >= 1, f"train.iterations must be at least 1, got {tr.iterations}"),
        (tr.lr > 0, "train.lr must be positive"),
        (all(0 <= b < 1 for b in tr.betas), f"train.betas must lie in [0, 1), got {list(tr.betas)}"),
        (0 < tr.gamma <= 1, f"train.gamma must lie in (0, 1], got {tr.gamma}"),
        (0 <= tr.ema_decay < 1, f"train.ema_decay must lie in [0, 1), got {tr.ema_decay}"),
        (all(m > 0 for m in tr.milestones) and milestones == sorted(milestones),
         f"train.milestones must be positive and increasing, got {list(tr.milestones)}"),
        (0 <= tr.lr_min <= tr.lr, f"train.lr_min must lie in [0, train.lr], got {tr.lr_min}"),
        (tr.warmup >= 0, f"train.warmup must be 0 or more, got {tr.warmup}"),
        (not (tr.init_weights and tr.continue_from),
         "train.init_weights starts a new run from weights, train.continue_from continues them: give one"),
        (tr.grad_clip is None or tr.grad_clip > 0, f"train.grad_clip must be positive or null, got {tr.grad_clip}"),
        (tr.charbonnier_eps > 0, "train.charbonnier_eps must be positive"),
        (0 <= tr.drop_path_rate < 1, f"train.drop_path_rate must lie in [0, 1), got {tr.drop_path_rate}"),
        (tr.threads is None or tr.threads >= 1, f"train.threads must be at least 1, got {tr.threads}"),
    ])


def _stage_rules(config: RunConfig, task: Task) -> list[str]:
    """The GAN stage's: an SR task, HR patches its discriminator can halve three times, its own settings."""
    gan, d = config.gan, config.data
    rules = [(gan.d_lr > 0, "gan.d_lr must be positive"),
             (gan.d_channels >= 1, f"gan.d_channels must be at least 1, got {gan.d_channels}")]
    if config.train.stage == "gan":
        rules += [(task.upsamples, f"train.stage gan is for SR tasks, not {config.task.name}"),
                  (d.patch_size * config.task.scale % 8 == 0,
                   "the GAN stage needs HR patches (patch_size * scale) divisible by 8 for the U-Net discriminator")]
    return _broken(rules)


def _output_rules(config: RunConfig) -> list[str]:
    ck = config.checkpoint
    return _broken([
        (ck.every >= 0 and ck.keep >= 1, "checkpoint.every must be >= 0 and checkpoint.keep >= 1"),
        (ck.every_minutes is None or ck.every_minutes > 0, "checkpoint.every_minutes must be positive or null"),
        (config.log.every >= 1, f"log.every must be at least 1, got {config.log.every}"),
    ])
