"""The run config's schema: its sections, their keys and types, and validating a mapping against them.

A run is described by eight sections (see ``docs/training.md`` for every key)::

    model:      a preset name (``lightweight_sr_x2``) or a ModelConfig mapping
    task:       name (one of :data:`swinir.tasks.TASKS`), scale, sigma range (denoising), quality range (JPEG)
    data:       training folders (HR; or HR + paired LR), LR patch size, global batch size, workers
    val:        validation folder, images, crop, how often, the fixed noise level / JPEG quality
    train:      iterations, optimiser, LR milestones, EMA, precision, loss, seed, the training stage
    gan:        the GAN stage's settings (discriminator, perceptual and adversarial losses)
    log:        how often to log; TensorBoard and PNG plot on/off
    checkpoint: every N iterations and/or minutes, how many to keep, export of the best EMA weights

The sections are pydantic models; :func:`validate` turns pydantic's errors into one line that names the key:
an unknown key names the valid ones (and the section where a key of that name lives), a value of the wrong
type says what was expected and what came. Values keep the types YAML gives them: an integer where a number is
expected is fine, and so is a numeric string for a number, because PyYAML reads ``2e-4`` as a string; a
boolean is neither. The rules between sections are :mod:`.rules`; reading files is :mod:`.loading`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    WrapValidator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from ...errors import SwinIRError
from ...precision import Precision
from ...presets import PRESETS, ModelConfig
from ...tasks import TASKS

LossName = Literal["auto", "l1", "l2", "charbonnier"]
Stage = Literal["psnr", "gan"]  # the rows of :data:`swinir.training.stages.STAGES`
Schedule = Literal["multistep", "cosine"]
GanLoss = Literal["bce", "hinge"]

REAL_ESRGAN_PERCEPTUAL_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


# --------------------------------------------------------------------------------------------------
# Value types: what YAML may give for each kind of key
# --------------------------------------------------------------------------------------------------


def _expected(what: str) -> PydanticCustomError:
    return PydanticCustomError("expected", "expected {what}", {"what": what})


def _integer(value: Any) -> Any:
    """An int, or a float without a fraction (``1e3`` written as ``1000.0``); never a bool or a string."""
    if isinstance(value, bool | str):
        raise _expected("an integer")
    return value


def _number(value: Any) -> Any:
    """Any number, or a numeric string (PyYAML reads ``2e-4``, without a dot, as a string); never a bool."""
    if isinstance(value, bool):
        raise _expected("a number")
    return value


def _pair_or_one(value: Any) -> Any:
    """``[low, high]``; a single value ``x`` means ``[x, x]``."""
    return _pair(value) if isinstance(value, list | tuple) else (value, value)


def _pair(value: Any) -> Any:
    if isinstance(value, list | tuple) and len(value) != 2:
        raise PydanticCustomError("expected", "expected a list of 2 values, got {count}", {"count": len(value)})
    return value


def _known_task(name: str) -> str:
    if name not in TASKS:
        raise PydanticCustomError("choice", "{value} is not one of {choices}",
                                  {"value": repr(name), "choices": ", ".join(TASKS)})
    return name


def _model_entry(value: Any, handler: Callable[[Any], ModelConfig]) -> ModelConfig:
    """A preset name or a mapping of :class:`ModelConfig` keys (unknown keys refused, the config's own checks
    reported as this key's error)."""
    if isinstance(value, str):
        if value not in PRESETS:
            raise PydanticCustomError("choice", "unknown preset {value}; choose one of: {choices}",
                                      {"value": repr(value), "choices": ", ".join(PRESETS)})
        return PRESETS[value].config
    if isinstance(value, Mapping):
        unknown = [key for key in value if key not in ModelConfig.__dataclass_fields__]
        if unknown:
            raise PydanticCustomError("unknown_key", "unknown key {key}", {"key": str(unknown[0])})
    try:
        return handler(value)
    except SwinIRError as err:  # ModelConfig's own checks (upsampler, heads, channels)
        raise PydanticCustomError("invalid", "{reason}", {"reason": str(err)}) from err


Integer = Annotated[int, BeforeValidator(_integer)]
Number = Annotated[float, BeforeValidator(_number)]
Flag = StrictBool
NumberPair = Annotated[tuple[Number, Number], BeforeValidator(_pair)]
NumberRange = Annotated[tuple[Number, Number], BeforeValidator(_pair_or_one)]
IntegerRange = Annotated[tuple[Integer, Integer], BeforeValidator(_pair_or_one)]
TaskName = Annotated[str, AfterValidator(_known_task)]
ModelEntry = Annotated[ModelConfig, WrapValidator(_model_entry)]


class Section(BaseModel):
    """A config section: frozen, and a key it does not declare is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# The sections
# --------------------------------------------------------------------------------------------------


class TaskConfig(Section):
    """What the network learns. ``sigma``/``quality`` are ranges sampled uniformly per training patch
    (equal ends train a non-blind model, as the paper does per noise level / quality); a single number
    ``x`` means ``[x, x]``."""

    name: TaskName  # a task of swinir.tasks.TASKS
    scale: Integer = 1
    sigma: NumberRange = (15.0, 50.0)  # Gaussian noise std on the 0-255 scale (denoising)
    quality: IntegerRange = (10, 40)  # OpenCV JPEG quality (artifact reduction)
    # denoising: Poisson-Gaussian noise (photon-counting sensors) instead of Gaussian; the range of the shot-noise
    # gain a (variance per unit of 0..1 signal), sigma then being the read noise; see docs/scientific.md
    shot_noise: NumberPair | None = None


class DataConfig(Section):
    """Training images. Folders are relative to ``root`` (default: $SWINIR_DATA, else the working folder)."""

    train: tuple[str, ...] = ()
    train_lr: tuple[str, ...] | None = None  # paired LR folders, one per train folder; None = degrade on the fly
    root: str | None = None
    patch_size: Integer = 64  # LR (network input) patch side; the HR crop is patch_size * scale
    batch_size: Integer = 32  # global batch: split evenly across distributed ranks
    num_workers: Integer = 2
    augment: Flag = True  # random flips and 90-degree rotations
    cache_images: Flag = True  # keep decoded training images in memory (shared with forked workers)


class ValConfig(Section):
    """A fixed validation set scored with the EMA weights; ``folder`` None disables validation."""

    folder: str | None = None
    lr_folder: str | None = None  # SR: LR files named {stem}x{scale}{ext}; default: MATLAB bicubic of the HR
    images: tuple[str, ...] = ()  # file stems to use; empty = all
    max_images: Integer | None = None
    crop: Integer | None = None  # centre crop side (HR pixels) to keep validation cheap; None = whole images
    every: Integer = 5000
    sigma: Number | None = None  # fixed noise level; default: middle of task.sigma
    quality: Integer | None = None  # fixed JPEG quality; default: middle of task.quality
    seed: Integer = 0  # seeds the validation degradations (fixed for the whole run)


class TrainSection(Section):
    """Optimisation. ``milestones`` below 1 are fractions of ``iterations``, others absolute iterations.

    The learning rate follows ``schedule``: ``multistep`` (the paper's: multiplied by ``gamma`` at every
    milestone) or ``cosine`` (from ``lr`` down to ``lr_min`` over ``iterations``). ``warmup`` ramps it up
    linearly over the first iterations of every *segment* that starts with a fresh optimiser: a new run, or
    one continued from weights (``continue_from``), where a fresh Adam state at full rate would jolt the
    weights.
    """

    iterations: Integer = 500_000
    lr: Number = 2e-4
    betas: NumberPair = (0.9, 0.99)
    weight_decay: Number = 0.0
    schedule: Schedule = "multistep"
    milestones: tuple[Number, ...] = (0.5, 0.8, 0.9, 0.95)
    gamma: Number = 0.5  # the learning rate is multiplied by gamma at every milestone
    lr_min: Number = 0.0  # cosine: the rate reached at ``iterations``
    warmup: Integer = 0  # linear warm-up iterations at the start of each fresh-optimiser segment
    ema_decay: Number = 0.999
    ema_warmup: Flag = True  # decay min(ema_decay, (1 + i) / (10 + i)): a useful average from the start
    precision: Precision = "fp32"
    grad_clip: Number | None = None  # max global gradient norm; None = no clipping
    seed: Integer = 0
    loss: LossName = "auto"  # auto: the task's loss (L1 for SR, Charbonnier for denoising/JPEG)
    charbonnier_eps: Number = 1e-3
    drop_path_rate: Number = 0.1
    grad_checkpointing: Flag = False
    init_weights: str | None = None  # start from these weights (e.g. the PSNR stage before the GAN stage)
    # continue these exported weights (e.g. a bundled model): iteration counter, schedule position, hours and
    # history carry on from their metadata; only the optimiser state is new
    continue_from: str | None = None
    threads: Integer | None = None  # torch CPU threads per process; None = torch's default
    stage: Stage = "psnr"  # gan: adversarial + perceptual + pixel losses with a U-Net discriminator (SR only)


class GanConfig(Section):
    """The GAN stage's settings (``train.stage: gan``): loss weights, the VGG19 features, the discriminator."""

    perceptual_weights: str | None = None  # VGG19 weights file (safetensors or .pth); needed by the GAN stage
    perceptual_layers: dict[str, Number] = Field(default_factory=lambda: dict(REAL_ESRGAN_PERCEPTUAL_LAYERS))
    pixel_weight: Number = 1.0
    perceptual_weight: Number = 1.0
    gan_weight: Number = 0.1
    gan_loss: GanLoss = "bce"
    d_lr: Number = 1e-4  # the discriminator's learning rate (on train.schedule)
    d_channels: Integer = 64  # the U-Net discriminator's width


class LogConfig(Section):
    every: Integer = 100  # CSV row / progress line every N iterations
    tensorboard: Flag = True
    plot: Flag = True
    progress: Flag = True  # progress bar on a terminal, plain lines otherwise


class CheckpointConfig(Section):
    every: Integer = 5000  # iterations; 0 = only by time, on signals and at the end
    every_minutes: Number | None = None  # also save when this much wall time passed since the last save
    keep: Integer = 3  # the newest K checkpoints are kept
    export_best: Flag = True  # write best.safetensors (EMA weights) whenever validation PSNR improves


class RunConfig(Section):
    """One training run. Build it with :func:`~.loading.load_config` or :func:`~.loading.parse_config`, which
    also check the rules between sections (:mod:`.rules`)."""

    model: ModelEntry
    task: TaskConfig
    data: DataConfig = Field(default_factory=DataConfig)
    val: ValConfig = Field(default_factory=ValConfig)
    train: TrainSection = Field(default_factory=TrainSection)
    gan: GanConfig = Field(default_factory=GanConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings): YAML-, JSON- and ``torch.load(weights_only)``-safe."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def resolve_path(self, folder: str) -> Path:
        """A data/val folder as an absolute path (relative ones against ``data.root``)."""
        path = Path(os.path.expanduser(folder))
        return path if path.is_absolute() else Path(self.data.root or ".") / path

    @property
    def milestone_iterations(self) -> tuple[int, ...]:
        """The milestones as absolute iteration counts."""
        total = self.train.iterations
        return tuple(round(m * total) if m < 1 else int(m) for m in self.train.milestones)

    def learning_rate(self, iteration: int, base: float | None = None, segment_start: int = 0) -> float:
        """The learning rate of the step that starts at ``iteration`` (0-based): a pure function of the
        iteration and of where the current fresh-optimiser segment began (for ``train.warmup``)."""
        tr = self.train
        peak = tr.lr if base is None else base
        if tr.schedule == "cosine":
            low = tr.lr_min * peak / tr.lr
            progress = min(1.0, iteration / tr.iterations)
            rate = low + (peak - low) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            passed = sum(1 for m in self.milestone_iterations if iteration >= m)
            rate = peak * tr.gamma**passed
        into = iteration - segment_start
        if tr.warmup and 0 <= into < tr.warmup:
            rate *= (into + 1) / (tr.warmup + 1)
        return rate


SECTIONS: dict[str, type] = {name: field.annotation for name, field in RunConfig.model_fields.items()}
"""Each section's type by name, in the config's order (``model`` is :class:`ModelConfig`)."""


def section_keys(section: str) -> list[str]:
    """The keys a section accepts, in order."""
    kind = SECTIONS[section]
    return list(ModelConfig.__dataclass_fields__) if kind is ModelConfig else list(kind.model_fields)


def elsewhere(name: str, section: str) -> str:
    """' (did you mean data.batch_size?)' when another section has a key called ``name``."""
    homes = [s for s in SECTIONS if s != section and name in section_keys(s)]
    return f" (did you mean {' or '.join(f'{s}.{name}' for s in homes)}?)" if homes else ""


# --------------------------------------------------------------------------------------------------
# Validation, with errors in one line
# --------------------------------------------------------------------------------------------------


def validate(raw: Mapping[str, Any]) -> RunConfig:
    """``raw`` (plain data, as read from YAML) checked against the schema; the first problem is raised as one
    line naming its key (module docstring). The rules between sections are not checked here (:mod:`.rules`)."""
    if not isinstance(raw, Mapping):
        raise SwinIRError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    missing = [name for name in ("model", "task") if name not in raw]
    if missing:
        raise SwinIRError(f"config: missing section(s) {missing}; every config needs model and task")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        errors = err.errors()
        raise SwinIRError(_one_line(errors[0], errors)) from None


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "tuple_type": "a list", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
}


def _one_line(error: ErrorDetails, errors: list[ErrorDetails]) -> str:
    """A pydantic error as ``config: KEY: what is wrong``."""
    loc, kind, value = error["loc"], error["type"], error.get("input")
    label = _label(loc) or "config"
    if kind in ("extra_forbidden", "unknown_key"):
        return _unknown_key(loc if kind == "extra_forbidden" else (*loc, error["ctx"]["key"]))
    if kind == "missing":
        names = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == loc[:-1]]
        return f"config: {_label(loc[:-1]) or 'config'}: missing required key(s) {', '.join(names)}"
    if kind in _EXPECTED:
        return f"config: {label}: expected {_EXPECTED[kind]}, got {_describe(value)}"
    if kind == "expected" and error["ctx"].get("what"):
        return f"config: {label}: {error['msg']}, got {_describe(value)}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        return f"config: {label}: {value!r} is not one of {', '.join(choices)}"
    return f"config: {label}: {error['msg'].removeprefix('Value error, ')}"


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    """An unknown key named in full, with the valid keys of where it was found."""
    where, key = loc[:-1], str(loc[-1])
    if not where:
        return f"config: unknown key {key!r}; valid keys in config: {', '.join(SECTIONS)}"
    section = str(where[0])
    hint = elsewhere(key, section) if len(where) == 1 else ""
    valid = section_keys(section) if len(where) == 1 else []
    return (f"config: unknown key {_label(loc)!r}{hint}" + (f"; valid keys in {_label(where)}: {', '.join(valid)}"
                                                              if valid else ""))


def _label(loc: tuple[int | str, ...]) -> str:
    """``('model', 'depths', 0)`` as ``model.depths[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
