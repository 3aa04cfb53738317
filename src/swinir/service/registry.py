"""The models a server can run: ``--weights [NAME=]FILE`` first, then the bundled ones.

Every model is described at start-up from its file's header (:func:`swinir.checkpoints.read_header`), so a
bad file stops the server with one line instead of failing a request later, and recognised with
:func:`swinir.checkpoints.model_info` (task family, scale, channels, the noise level or JPEG quality it was
trained for). The network itself is built and loaded only when the first request needs it, once, under a
per-model lock, and then shared by every request.

A request option the model cannot honour is refused in the API's words (:func:`api_words`): the form field,
where the CLI names its flag.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from ..bundled import BundledModel, bundled_models
from ..checkpoints import ModelInfo, load, model_info, read_header
from ..errors import OptionRefused, SwinIRError
from ..metadata import ModelMetadata
from ..presets import ModelConfig
from ..tasks import FAMILIES, FAMILY_ALIASES, FAMILY_LABELS, TASK_NAMES, family_of, is_family_name, upsamples
from .settings import Settings, WeightsSpec

log = logging.getLogger("swinir.service")


def api_words(err: SwinIRError) -> str:
    """A user error in the API's words: a refused option (:class:`~swinir.errors.OptionRefused`) named by its
    form field."""
    if isinstance(err, OptionRefused):
        return err.words(leave_out=lambda field: f"leave out the {field} field")
    return str(err)


def task_names() -> dict[str, str]:
    """Every task name a request may use (families, their aliases, the paper's names) -> the family it means."""
    return {name: family_of(name) for name in (*FAMILY_ALIASES, *TASK_NAMES)}


class ModelEntry:
    """One servable model: what the API lists about it, and its network, loaded once on first use."""

    def __init__(self, *, name: str, info: ModelInfo, path: Path, description: str, source: str,
                 quality: dict[str, Any] | None = None, device: str = "cpu") -> None:
        self.name, self.info, self.path = name, info, path
        self.description, self.source, self.quality = description, source, quality or {}
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, spec: WeightsSpec, device: str) -> ModelEntry:
        """A ``--weights`` file. Its name, when it is a task name, decides the task (``jpeg.safetensors``)."""
        config, meta = read_header(spec.path)
        info = _recognise(config, meta, spec)
        label = FAMILY_LABELS[info.family] + (f" x{info.scale}" if upsamples(info.family) else "")
        description = meta.description or (
            f"{label}, {config.in_chans}-channel, embed {config.embed_dim}, from {spec.path.name}")
        return cls(name=spec.served_name, info=info, path=spec.path, description=description, source="file",
                   device=device)

    @classmethod
    def from_bundled(cls, bundled: BundledModel, device: str) -> ModelEntry:
        """A shipped model: its task from the manifest, its trained level from the file's training config."""
        config, meta = read_header(bundled.path)
        return cls(name=bundled.name, info=model_info(config, meta, bundled.task), path=bundled.path,
                   description=bundled.description, source="bundled", quality=bundled.quality, device=device)

    @property
    def task(self) -> str:
        return self.info.family

    @property
    def scale(self) -> int:
        return self.info.scale

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self) -> Any:
        """The network, loaded at the first call (by one thread; concurrent callers wait for it)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    started = time.perf_counter()
                    self._model = load(self.path, device=self.device)
                    log.info("loaded model %s from %s in %.1f s", self.name, self.path, time.perf_counter() - started)
        return self._model

    def label(self) -> str:
        """``name (sr x2)``, ``name (denoise)``: how messages name the model."""
        return f"{self.name} ({self.info.label})"

    def check_options(self, *, sigma: float | None, quality: int | None) -> None:
        """Refuse, in one line and the API's words, a sigma or quality this model cannot honour (its task takes
        none, it is blind, it was trained for another level)."""
        try:
            self.info.check_options(sigma=sigma, quality=quality)
        except OptionRefused as err:
            raise SwinIRError(f"{self.name}: {api_words(err)}") from None


def _recognise(config: ModelConfig, meta: ModelMetadata, spec: WeightsSpec) -> ModelInfo:
    """:func:`model_info` under the served name; an official file name (``..._noise25.pth``) still gives the
    trained level when the model is served under another NAME."""
    info = model_info(config, meta, spec.served_name)
    if info.level is None and spec.name:
        by_file = model_info(config, meta, spec.path.name)
        if by_file.family == info.family:
            info = dataclasses.replace(info, level=by_file.level)
    return info


class ModelRegistry:
    """The servable models by name, in priority order: ``--weights`` files first, then the bundled ones."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self.entries: dict[str, ModelEntry] = {}
        for entry in entries:
            if entry.name in self.entries:
                raise SwinIRError(f"two models are named {entry.name!r}; name them apart with --weights NAME=FILE")
            self.entries[entry.name] = entry

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """Describe every model now (a bad file fails the start, not a request); load none yet."""
        entries = [ModelEntry.from_file(spec, settings.device) for spec in settings.weights]
        if settings.include_bundled:
            entries += [ModelEntry.from_bundled(bundled, settings.device) for bundled in bundled_models()]
        return cls(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def available(self) -> str:
        return ", ".join(e.label() for e in self.entries.values()) or "none"

    def resolve(self, task: str | None, scale: int | None) -> ModelEntry:
        """The model a request names: a model name, or a task name (and scale) meaning the first such model.

        Without a task the first model (with that scale, if given) serves. Raises SwinIRError (-> 422)
        listing what is available.
        """
        if not self.entries:
            raise SwinIRError("no models are available; start the server with --weights FILE")
        if task and task in self.entries:
            entry = self.entries[task]
            if scale not in (None, entry.scale):
                raise SwinIRError(f"model {entry.label()} does not do x{scale}; available: {self.available()}")
            return entry
        family = None
        if task:
            if not is_family_name(task):
                raise SwinIRError(f"unknown task {task!r}: give a model name or a task ({', '.join(FAMILIES)}); "
                                  f"available: {self.available()}")
            family = family_of(task)
        for entry in self.entries.values():
            if family in (None, entry.task) and scale in (None, entry.scale):
                return entry
        wanted = f"{family or 'any task'}" + (f" x{scale}" if scale else "")
        raise SwinIRError(f"no model for {wanted}; available: {self.available()}")
