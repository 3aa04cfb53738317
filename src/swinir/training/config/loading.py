"""Reading a run config: YAML files and shipped recipes, ``base:`` inheritance, ``--set`` overrides, old layouts.

A config may start from another with ``base:`` (a recipe name, or a YAML path relative to the file); mappings
are merged key by key (a ``model`` mapping on top of a preset name changes only the keys it names).
``--set section.key=value`` overrides are parsed as YAML; their path is checked at once (an unknown section or
key names the valid ones) and their value with the whole config. :func:`parse_config` then validates against
the schema (:mod:`.schema`) and the rules (:mod:`.rules`).

Configs written before the GAN stage had a section of its own kept its settings in ``train``
(:data:`MOVED_TO_GAN`); every file, checkpoint and exported weights' config read here has them moved to ``gan``,
so old configs and run folders load, resume and compare (:func:`swinir.training.state.check_resumable`) as
they did.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ...errors import SwinIRError
from ...presets import get_preset
from .rules import check_rules
from .schema import SECTIONS, RunConfig, elsewhere, section_keys, validate

DATA_ROOT_ENV = "SWINIR_DATA"
MOVED_TO_GAN = ("perceptual_weights", "perceptual_layers", "pixel_weight", "perceptual_weight", "gan_weight",
                "gan_loss", "d_lr", "d_channels")
"""The ``train`` keys of configs written before the ``gan`` section, now ``gan``'s."""


def recipes_dir() -> Path:
    return Path(str(resources.files("swinir.training") / "recipes"))


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
    """Validate a plain mapping (as read from YAML, or a checkpoint's config) into a :class:`RunConfig`."""
    if isinstance(raw, Mapping):
        raw = {k: v for k, v in moved_gan_keys(raw).items() if k != "base"}
    config = validate(raw)
    check_rules(config)
    return config


def moved_gan_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with the GAN settings an old config keeps in ``train`` moved to ``gan`` (module docstring); a
    key given in both places with two values is refused."""
    out = dict(raw)
    train, gan = out.get("train"), out.get("gan", {})
    if not (isinstance(train, Mapping) and isinstance(gan, Mapping) and any(k in train for k in MOVED_TO_GAN)):
        return out
    train, gan = dict(train), dict(gan)
    for key in MOVED_TO_GAN:
        if key in train:
            value = train.pop(key)
            if gan.setdefault(key, value) != value:
                raise SwinIRError(f"config: train.{key} is gan.{key} now, and both are given: keep gan.{key}")
    out["train"], out["gan"] = train, gan
    return out


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` strings applied to a raw config (values parsed as YAML, e.g. ``[1, 2]``, ``null``).

    Only the *path* is checked here (unknown sections/keys name the valid ones); values are validated
    with the whole config afterwards.
    """
    out = _deep_copy(moved_gan_keys(raw))
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
        valid = section_keys(section)
        if name not in valid:
            raise SwinIRError(f"--set {key}: unknown key {name!r} in {section}{elsewhere(name, section)}; "
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
    return _with_base(moved_gan_keys(raw), path.parent, (*seen, str(path.resolve())))


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
    """``top`` merged into ``base`` key by key; a mapping value replaces where the mapping *is* the value
    (``gan.perceptual_layers``: the layers a recipe names, not those plus its base's)."""
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
