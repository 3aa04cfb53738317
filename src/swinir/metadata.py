"""The ``swinir.*`` metadata of weights files and ONNX exports: the one module that spells its keys.

A safetensors header, and an ONNX file's ``metadata_props``, hold strings. This package keeps a model's
config there as JSON (``swinir.config``, so that the file loads with no further information) and under other
``swinir.*`` keys what it knows about the model: what it was trained as and for how long (``swinir train``),
where it came from (``swinir pull``, the campaign), how it was exported (``swinir export``).

:class:`ModelMetadata` reads them: a read-only mapping of the stored strings (what ``swinir info`` prints,
what a conversion carries over) with typed accessors for the keys this package uses. :func:`entries` writes
them: values to the stored strings. Every other module goes through these two.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import SwinIRError
from .presets import ModelConfig

PREFIX = "swinir."
CONFIG_KEY = PREFIX + "config"


def key(name: str) -> str:
    """The stored key of a metadata name: ``task`` -> ``swinir.task`` (a full key stays as it is)."""
    return name if name.startswith(PREFIX) else PREFIX + name


class ModelMetadata(Mapping[str, str]):
    """The ``swinir.*`` entries of a file (full keys, string values; other keys are left out), with typed
    accessors. Absent keys read as None; a value that does not parse is a one-line :class:`SwinIRError`."""

    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self._entries = {k: str(v) for k, v in (entries or {}).items() if k.startswith(PREFIX)}

    def __getitem__(self, name: str) -> str:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ModelMetadata({self._entries!r})"

    def value(self, name: str) -> str | None:
        """The stored string of ``name`` (``task`` or ``swinir.task``), None when absent."""
        return self._entries.get(key(name))

    def without_config(self) -> dict[str, str]:
        """Every entry but the config: what a file written from these weights carries over (its own config is
        written anew)."""
        return {k: v for k, v in self._entries.items() if k != CONFIG_KEY}

    # ---- typed accessors ------------------------------------------------------------------------------

    @property
    def config(self) -> ModelConfig | None:
        """The architecture the file stores (``swinir.config``), None when it stores none."""
        text = self._entries.get(CONFIG_KEY)
        return None if text is None else ModelConfig.from_dict(self._json(CONFIG_KEY))

    @property
    def task(self) -> str | None:
        """The task the model was trained as or released for (a paper task or a family word)."""
        return self.value("task")

    @property
    def description(self) -> str | None:
        return self.value("description")

    @property
    def iterations(self) -> int | None:
        """The training iterations of the model's whole lineage (``swinir train``'s exports)."""
        return self._number("iterations", int)

    @property
    def train_hours(self) -> float | None:
        return self._number("train_hours", float)

    @property
    def cpu_hours(self) -> float | None:
        return self._number("cpu_hours", float)

    @property
    def val_psnr(self) -> float | None:
        """The validation PSNR the weights were exported at (dB), where a validation ran."""
        return self._number("val_psnr", float)

    @property
    def history(self) -> tuple[dict[str, Any], ...] | None:
        """The training segments of the lineage, oldest first."""
        return None if self.value("history") is None else tuple(self._json(key("history")))

    @property
    def training_config(self) -> dict[str, Any] | None:
        """The run config the weights were trained with (``swinir train``'s exports)."""
        return None if self.value("training_config") is None else self._json(key("training_config"))

    def trained_level(self, level: str) -> tuple[float, float] | None:
        """The range of a degradation level (``sigma``, ``quality``) the training config drew from, None
        when the file does not record one."""
        value = (self.training_config or {}).get("task", {}).get(level)
        if isinstance(value, list | tuple) and len(value) == 2:
            return float(value[0]), float(value[1])
        return None

    def _number(self, name: str, kind: type) -> Any:
        text = self.value(name)
        if text is None:
            return None
        try:
            return kind(float(text)) if kind is int else kind(text)
        except ValueError:
            raise SwinIRError(f"the '{key(name)}' metadata is not a number ({text!r})") from None

    def _json(self, stored: str) -> Any:
        try:
            return json.loads(self._entries[stored])
        except json.JSONDecodeError as err:
            raise SwinIRError(f"the '{stored}' metadata is not valid JSON ({err})") from err


def entries(config: ModelConfig | None, values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The stored strings of a file's metadata: the config as JSON, then each of ``values`` under its
    ``swinir.`` key (a name may carry the prefix already), strings as they are and anything else as JSON."""
    meta = {CONFIG_KEY: config.to_json()} if config is not None else {}
    for name, value in (values or {}).items():
        meta[key(name)] = value if isinstance(value, str) else json.dumps(value)
    return meta
