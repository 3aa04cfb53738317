"""Run configurations: YAML in, typed and validated dataclasses out.

A run is described by seven sections (see ``docs/training.md`` for every key)::

    model:      a preset name (``lightweight_sr_x2``) or a ModelConfig mapping (a mapping on top of a
                ``base`` recipe's preset changes only the keys it names)
    task:       name (classical_sr | lightweight_sr | real_sr | gray_dn | color_dn | gray_car | color_car),
                scale, sigma range (denoising), quality range (JPEG)
    data:       training folders (HR; or HR + paired LR), LR patch size, global batch size, workers
    val:        validation folder, images, crop, how often, the fixed noise level / JPEG quality
    train:      iterations, optimiser, LR milestones, EMA, precision, loss, seed, GAN stage settings
    log:        how often to log; TensorBoard and PNG plot on/off
    checkpoint: every N iterations and/or minutes, how many to keep, export of the best EMA weights

Rules, so that a typo never becomes a silent default: unknown keys are errors naming the key and the valid
ones; values must have the declared type (an int where a float is expected is fine, and so is a numeric
string for a float, because PyYAML reads ``2e-4`` as a string); ``--set section.key=value`` overrides are
parsed as YAML and validated exactly like the file. A config may start from another with ``base:`` (a
recipe name or a YAML path relative to the file); mappings are merged key by key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import SwinIRError
from ..precision import Precision
from ..presets import PRESETS, ModelConfig, get_preset
from ..tasks import get_task

LossName = Literal["auto", "l1", "l2", "charbonnier"]
Stage = Literal["psnr", "gan"]
Schedule = Literal["multistep", "cosine"]
GanLoss = Literal["bce", "hinge"]

DATA_ROOT_ENV = "SWINIR_DATA"
REAL_ESRGAN_PERCEPTUAL_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


@dataclass(frozen=True)
class TaskConfig:
    """What the network learns. ``sigma``/``quality`` are ranges sampled uniformly per training patch
    (equal ends train a non-blind model, as the paper does per noise level / quality); a single number
    ``x`` means ``[x, x]``."""

    name: Literal["classical_sr", "lightweight_sr", "real_sr", "photo_sr", "gray_dn", "color_dn", "gray_car",
                  "color_car"]
    scale: int = 1
    sigma: tuple[float, float] | float = (15.0, 50.0)  # Gaussian noise std on the 0-255 scale (denoising)
    quality: tuple[int, int] | int = (10, 40)  # OpenCV JPEG quality (artifact reduction)
    # denoising: Poisson-Gaussian noise (photon-counting sensors) instead of Gaussian; the range of the shot-noise
    # gain a (variance per unit of 0..1 signal), sigma then being the read noise; see docs/scientific.md
    shot_noise: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("sigma", "quality"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, (value, value))


@dataclass(frozen=True)
class DataConfig:
    """Training images. Folders are relative to ``root`` (default: $SWINIR_DATA, else the working folder)."""

    train: tuple[str, ...] = ()
    train_lr: tuple[str, ...] | None = None  # paired LR folders, one per train folder; None = degrade on the fly
    root: str | None = None
    patch_size: int = 64  # LR (network input) patch side; the HR crop is patch_size * scale
    batch_size: int = 32  # global batch: split evenly across distributed ranks
    num_workers: int = 2
    augment: bool = True  # random flips and 90-degree rotations
    cache_images: bool = True  # keep decoded training images in memory (shared with forked workers)


@dataclass(frozen=True)
class ValConfig:
    """A fixed validation set scored with the EMA weights; ``folder`` None disables validation."""

    folder: str | None = None
    lr_folder: str | None = None  # SR: LR files named {stem}x{scale}{ext}; default: MATLAB bicubic of the HR
    images: tuple[str, ...] = ()  # file stems to use; empty = all
    max_images: int | None = None
    crop: int | None = None  # centre crop side (HR pixels) to keep validation cheap; None = whole images
    every: int = 5000
    sigma: float | None = None  # fixed noise level; default: middle of task.sigma
    quality: int | None = None  # fixed JPEG quality; default: middle of task.quality
    seed: int = 0  # seeds the validation degradations (fixed for the whole run)


@dataclass(frozen=True)
class TrainSection:
    """Optimisation. ``milestones`` below 1 are fractions of ``iterations``, others absolute iterations.

    The learning rate follows ``schedule``: ``multistep`` (the paper's: multiplied by ``gamma`` at every
    milestone) or ``cosine`` (from ``lr`` down to ``lr_min`` over ``iterations``). ``warmup`` ramps it up
    linearly over the first iterations of every *segment* that starts with a fresh optimiser: a new run, or
    one continued from weights (``continue_from``), where a fresh Adam state at full rate would jolt the
    weights.
    """

    iterations: int = 500_000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    schedule: Schedule = "multistep"
    milestones: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    gamma: float = 0.5  # the learning rate is multiplied by gamma at every milestone
    lr_min: float = 0.0  # cosine: the rate reached at ``iterations``
    warmup: int = 0  # linear warm-up iterations at the start of each fresh-optimiser segment
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + i) / (10 + i)): a useful average from the start
    precision: Precision = "fp32"
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    seed: int = 0
    loss: LossName = "auto"  # auto: the task's loss (L1 for SR, Charbonnier for denoising/JPEG)
    charbonnier_eps: float = 1e-3
    drop_path_rate: float = 0.1
    grad_checkpointing: bool = False
    init_weights: str | None = None  # start from these weights (e.g. the PSNR stage before the GAN stage)
    # continue these exported weights (e.g. a bundled model): iteration counter, schedule position, hours and
    # history carry on from their metadata; only the optimiser state is new
    continue_from: str | None = None
    threads: int | None = None  # torch CPU threads per process; None = torch's default
    stage: Stage = "psnr"  # gan: adversarial + perceptual + pixel losses with a U-Net discriminator (SR only)
    perceptual_weights: str | None = None  # VGG19 weights file (safetensors or .pth); needed by the GAN stage
    perceptual_layers: dict[str, float] = field(default_factory=lambda: dict(REAL_ESRGAN_PERCEPTUAL_LAYERS))
    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    gan_weight: float = 0.1
    gan_loss: GanLoss = "bce"
    d_lr: float = 1e-4
    d_channels: int = 64


@dataclass(frozen=True)
class LogConfig:
    every: int = 100  # CSV row / progress line every N iterations
    tensorboard: bool = True
    plot: bool = True
    progress: bool = True  # progress bar on a terminal, plain lines otherwise


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 5000  # iterations; 0 = only by time, on signals and at the end
    every_minutes: float | None = None  # also save when this much wall time passed since the last save
    keep: int = 3  # the newest K checkpoints are kept
    export_best: bool = True  # write best.safetensors (EMA weights) whenever validation PSNR improves


@dataclass(frozen=True)
class RunConfig:
    """One training run. Build it with :func:`load_config` or :func:`parse_config`, never by hand-typing
    defaults: ``__post_init__`` checks the cross-section rules (scale vs model, channels, patch sizes)."""

    model: ModelConfig
    task: TaskConfig
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    train: TrainSection = field(default_factory=TrainSection)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        _check_semantics(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings): YAML-, JSON- and ``torch.load(weights_only)``-safe."""
        return _plain(self)

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


SECTIONS: dict[str, type] = {
    "model": ModelConfig, "task": TaskConfig, "data": DataConfig, "val": ValConfig, "train": TrainSection,
    "log": LogConfig, "checkpoint": CheckpointConfig,
}


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def recipes_dir() -> Path:
    return Path(str(resources.files(__package__) / "recipes"))


def recipe_names() -> list[str]:
    """The recipes shipped with the package (``training/recipes/*.yaml``)."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def load_config(path: str | os.PathLike | None = None, *, recipe: str | None = None,
                overrides: Sequence[str] = ()) -> RunConfig:
    """A validated config from a YAML file or a shipped recipe, with ``key=value`` overrides applied.

    ``data.root`` is fixed at load time (given, else $SWINIR_DATA, else the working folder, made absolute),
    so a saved config means the same folders wherever the run is resumed.
    """
    if (path is None) == (recipe is None):
        raise SwinIRError("give a config file or --recipe NAME (one of them)")
    raw = _read_recipe(recipe, ()) if recipe is not None else _read_yaml(Path(path), ())
    raw = apply_overrides(raw, overrides)
    data = raw.setdefault("data", {})
    if isinstance(data, dict) and data.get("root") is None:
        data["root"] = os.environ.get(DATA_ROOT_ENV) or os.getcwd()
    if isinstance(data, dict) and isinstance(data.get("root"), str):
        data["root"] = str(Path(os.path.expanduser(data["root"])).resolve())
    return parse_config(raw)


def parse_config(raw: Mapping[str, Any]) -> RunConfig:
    """Validate a plain mapping (as read from YAML) into a :class:`RunConfig`."""
    if not isinstance(raw, Mapping):
        raise SwinIRError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    raw.pop("base", None)
    if "model" not in raw or "task" not in raw:
        missing = [k for k in ("model", "task") if k not in raw]
        raise SwinIRError(f"config: missing section(s) {missing}; every config needs model and task")
    return _convert(RunConfig, raw, "")


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` strings applied to a raw config (values parsed as YAML, e.g. ``[1, 2]``, ``null``).

    Only the *path* is checked here (unknown sections/keys name the valid ones); values are validated
    with the whole config afterwards.
    """
    out = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SwinIRError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise SwinIRError(f"--set {key}: the value {text!r} is not valid YAML ({_first_line(err)})") from err
        parts = key.split(".")
        if parts[0] not in SECTIONS:
            raise SwinIRError(f"--set {key}: unknown section {parts[0]!r}; valid sections: {', '.join(SECTIONS)}")
        if len(parts) == 1:
            out[parts[0]] = value
            continue
        if len(parts) != 2:
            raise SwinIRError(f"--set {key}: use SECTION.KEY (one dot), e.g. train.batch_size=16")
        section, name = parts
        valid = [f.name for f in dataclasses.fields(SECTIONS[section])]
        if name not in valid:
            raise SwinIRError(f"--set {key}: unknown key {name!r} in {section}{_elsewhere(name, section)}; "
                              f"valid keys: {', '.join(valid)}")
        if section == "model":
            out["model"] = _model_mapping(out.get("model"))
        target = out.setdefault(section, {})
        if not isinstance(target, dict):
            raise SwinIRError(f"--set {key}: the config's {section} section is not a mapping")
        target[name] = value
    return out


def _read_yaml(path: Path, seen: tuple[str, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise SwinIRError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise SwinIRError(f"{path}: not a readable YAML file ({_first_line(err)})") from err
    if not isinstance(raw, dict):
        raise SwinIRError(f"{path}: a config is a mapping of sections (model, task, data, ...)")
    return _with_base(raw, path.parent, (*seen, str(path.resolve())))


def _read_recipe(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
    path = recipes_dir() / f"{name}.yaml"
    if not path.is_file():
        raise SwinIRError(f"unknown recipe {name!r}; choose one of: {', '.join(recipe_names())}")
    return _read_yaml(path, seen)


def _with_base(raw: dict[str, Any], folder: Path, seen: tuple[str, ...]) -> dict[str, Any]:
    """Resolve ``base:`` (a recipe name, or a YAML path relative to ``folder``) and merge ``raw`` on top."""
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise SwinIRError(f"config: base must be a recipe name or a YAML path, got {base!r}")
    if base.endswith((".yaml", ".yml")):
        path = Path(os.path.expanduser(base))
        key = str((path if path.is_absolute() else folder / path).resolve())
        if key in seen:
            raise SwinIRError(f"config: base {base!r} includes itself")
        parent = _read_yaml(Path(key), seen)
    else:
        key = str((recipes_dir() / f"{base}.yaml").resolve())
        if key in seen:
            raise SwinIRError(f"config: base {base!r} includes itself")
        parent = _read_recipe(base, seen)
    if isinstance(raw.get("model"), Mapping):
        parent["model"] = _model_mapping(parent.get("model"))
    return _merge(parent, raw)


def _model_mapping(model: Any) -> dict[str, Any]:
    """A model entry as a mapping: a preset name is expanded so that single keys can be changed."""
    if isinstance(model, str):
        return get_preset(model).config.to_dict()
    if model is None:
        return {}
    if isinstance(model, Mapping):
        return dict(model)
    raise SwinIRError(f"config: model must be a preset name or a mapping, got {model!r}")


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "perceptual_layers":
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# --------------------------------------------------------------------------------------------------
# Typed conversion
# --------------------------------------------------------------------------------------------------


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked and converted to the annotation ``tp``; ``where`` names the key in errors."""
    label = where or "config"
    origin = typing.get_origin(tp)
    if tp is ModelConfig and isinstance(value, str):
        if value not in PRESETS:
            raise SwinIRError(f"config: {label}: unknown preset {value!r}; choose one of: {', '.join(PRESETS)}")
        return PRESETS[value].config
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise SwinIRError(f"config: {label}: expected a mapping, got {_describe(value)}")
        hints = typing.get_type_hints(tp)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        names = [f.name for f in fields]
        unknown = [k for k in value if k not in names]
        if unknown:
            hint = _elsewhere(str(unknown[0]), where) if where in SECTIONS else ""
            raise SwinIRError(f"config: unknown key {_join(where, str(unknown[0]))!r}{hint}; "
                              f"valid keys in {label}: {', '.join(names)}")
        required = [f.name for f in fields if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING and f.name not in value]
        if required:
            raise SwinIRError(f"config: {label}: missing required key(s) {', '.join(required)}")
        kwargs = {k: _convert(hints[k], v, _join(where, k)) for k, v in value.items()}
        if not where:
            return tp(**kwargs)
        try:
            return tp(**kwargs)
        except SwinIRError as err:
            raise SwinIRError(f"config: {label}: {err}") from err
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, where)
            except SwinIRError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise SwinIRError(f"config: {label}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise SwinIRError(f"config: {label}: expected a list, got {_describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{label}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SwinIRError(f"config: {label}: expected a list of {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{label}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise SwinIRError(f"config: {label}: expected a mapping, got {_describe(value)}")
        return {_convert(key_tp, k, label): _convert(value_tp, v, f"{label}.{k}") for k, v in value.items()}
    return _scalar(tp, value, label)


def _scalar(tp: Any, value: Any, label: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise SwinIRError(f"config: {label}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SwinIRError(f"config: {label}: expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 2e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SwinIRError(f"config: {label}: expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SwinIRError(f"config: {label}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {label}")  # a bug in this module


def _elsewhere(name: str, section: str) -> str:
    """' (did you mean data.batch_size?)' when another section has a key called ``name``."""
    homes = [s for s, tp in SECTIONS.items() if s != section and name in {f.name for f in dataclasses.fields(tp)}]
    return f" (did you mean {' or '.join(f'{s}.{name}' for s in homes)}?)" if homes else ""


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _plain(value: Any) -> Any:
    if isinstance(value, ModelConfig):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------------
# Cross-section rules
# --------------------------------------------------------------------------------------------------


def _check_semantics(cfg: RunConfig) -> None:
    """Every rule that involves more than one value; all violations reported in one line."""
    m, t, d, v, tr, ck = cfg.model, cfg.task, cfg.data, cfg.val, cfg.train, cfg.checkpoint
    behaviour = get_task(t.name)
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    if behaviour.upsamples:
        need(t.scale >= 2, f"task.scale must be 2 or more for {t.name}, got {t.scale}")
        need(m.upscale == t.scale, f"model.upscale {m.upscale} differs from task.scale {t.scale}")
    else:
        need(t.scale == 1, f"{t.name} keeps the image size: task.scale must be 1, got {t.scale}")
        need(m.upscale == 1, f"{t.name} needs a same-size model (upsampler ''), got upscale {m.upscale}")
    need(m.in_chans == behaviour.channels,
         f"{t.name} works on {behaviour.channels}-channel images but model.in_chans is {m.in_chans}")
    need(0 <= t.sigma[0] <= t.sigma[1], f"task.sigma must be [low, high] with 0 <= low <= high, got {list(t.sigma)}")
    need(1 <= t.quality[0] <= t.quality[1] <= 100,
         f"task.quality must be [low, high] within 1..100, got {list(t.quality)}")
    need(t.shot_noise is None or (behaviour.degradation == "noise" and 0 <= t.shot_noise[0] <= t.shot_noise[1]),
         f"task.shot_noise must be [low, high] with 0 <= low <= high, for a denoising task; got {t.shot_noise}")
    need(d.patch_size >= 1 and d.patch_size % m.window_size == 0,
         f"data.patch_size {d.patch_size} must be a positive multiple of the window size {m.window_size}")
    need(d.batch_size >= 1, f"data.batch_size must be at least 1, got {d.batch_size}")
    need(d.num_workers >= 0, f"data.num_workers must be 0 or more, got {d.num_workers}")
    need(d.train_lr is None or len(d.train_lr) == len(d.train),
         "data.train_lr needs one LR folder per data.train folder")
    need(v.every >= 1, f"val.every must be at least 1, got {v.every}")
    need(v.crop is None or v.crop >= max(16, t.scale), f"val.crop must be at least 16 pixels, got {v.crop}")
    need(v.quality is None or 1 <= v.quality <= 100, f"val.quality must be within 1..100, got {v.quality}")
    need(v.sigma is None or v.sigma >= 0, f"val.sigma must be 0 or more, got {v.sigma}")
    need(tr.iterations >= 1, f"train.iterations must be at least 1, got {tr.iterations}")
    need(tr.lr > 0 and tr.d_lr > 0, "train.lr and train.d_lr must be positive")
    need(all(0 <= b < 1 for b in tr.betas), f"train.betas must lie in [0, 1), got {list(tr.betas)}")
    need(0 < tr.gamma <= 1, f"train.gamma must lie in (0, 1], got {tr.gamma}")
    need(0 <= tr.ema_decay < 1, f"train.ema_decay must lie in [0, 1), got {tr.ema_decay}")
    need(all(m_ > 0 for m_ in tr.milestones) and list(cfg.milestone_iterations) == sorted(cfg.milestone_iterations),
         f"train.milestones must be positive and increasing, got {list(tr.milestones)}")
    need(0 <= tr.lr_min <= tr.lr, f"train.lr_min must lie in [0, train.lr], got {tr.lr_min}")
    need(tr.warmup >= 0, f"train.warmup must be 0 or more, got {tr.warmup}")
    need(not (tr.init_weights and tr.continue_from),
         "train.init_weights starts a new run from weights, train.continue_from continues them: give one")
    need(tr.grad_clip is None or tr.grad_clip > 0, f"train.grad_clip must be positive or null, got {tr.grad_clip}")
    need(tr.charbonnier_eps > 0, "train.charbonnier_eps must be positive")
    need(0 <= tr.drop_path_rate < 1, f"train.drop_path_rate must lie in [0, 1), got {tr.drop_path_rate}")
    need(tr.threads is None or tr.threads >= 1, f"train.threads must be at least 1, got {tr.threads}")
    need(tr.stage == "psnr" or behaviour.upsamples, f"train.stage gan is for SR tasks, not {t.name}")
    need(tr.stage == "psnr" or d.patch_size * t.scale % 8 == 0,
         "the GAN stage needs HR patches (patch_size * scale) divisible by 8 for the U-Net discriminator")
    need(tr.d_channels >= 1, f"train.d_channels must be at least 1, got {tr.d_channels}")
    need(ck.every >= 0 and ck.keep >= 1, "checkpoint.every must be >= 0 and checkpoint.keep >= 1")
    need(ck.every_minutes is None or ck.every_minutes > 0, "checkpoint.every_minutes must be positive or null")
    need(cfg.log.every >= 1, f"log.every must be at least 1, got {cfg.log.every}")
    if problems:
        raise SwinIRError("config: " + "; ".join(problems))
