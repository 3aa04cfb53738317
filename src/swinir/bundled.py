"""The models shipped inside the package, so that ``swinir restore photo.png`` works with no download.

``weights/models.json`` lists them: file, task, scale, architecture summary, training data and recipe,
iterations, CPU hours and the quality measured with ``swinir eval``. The weights are safetensors files
with their config in the metadata, loaded like any other checkpoint.

:class:`BundledModel` is the manifest's one entry type: the campaign that trains the models
(``tools/campaign``) writes the manifest through it (:func:`write_manifest`) and every reader here reads it
through it (:func:`read_manifest`), so the two cannot drift apart. A key this version does not know (written
by a newer campaign) is dropped with a warning, never a crash of ``swinir restore``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import SwinIRError
from .fileio import write_bytes_atomic
from .tasks import DEFAULT_FAMILY, FAMILIES, family_label, family_of, upsamples

DEFAULT_SCALE = 4  # the scale of the default (photo) model, and of sr when no --scale is given


@dataclass(frozen=True)
class BundledModel:
    """One shipped model and what is known about it (from ``weights/models.json``)."""

    name: str
    task: str  # a family: photo | sr | denoise | jpeg
    scale: int
    file: str
    description: str
    training: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # row label -> {"model": {...}, baseline: {...}}
    quality_measured: str = ""  # when and how the quality was measured
    ledger: list[dict[str, Any]] = field(default_factory=list)  # every candidate the campaign measured
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # recipe comparisons behind the recipe

    @property
    def label(self) -> str:
        """``photo x4``, ``sr x2``, ``denoise``: what users type after ``--task`` (and ``--scale``)."""
        return family_label(family_of(self.task), self.scale)

    def quality_rows(self) -> list[tuple[str, float, str, float]]:
        """(row, model value, baseline name, baseline value) of the first metric of every measured row."""
        rows = []
        for label, values in self.quality.items():
            model = values.get("model", {})
            baseline = next((k for k in values if k != "model"), None)
            if not model or baseline is None:
                continue
            metric = next(iter(model))
            rows.append((label, float(model[metric]), baseline, float(values[baseline].get(metric, float("nan")))))
        return rows

    @property
    def path(self) -> Path:
        return weights_dir() / self.file

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> BundledModel:
        """A manifest entry as a record; keys this version does not know (a newer campaign's) are dropped with
        a warning, never a crash of ``swinir restore``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(entry) - known)
        if unknown:
            warnings.warn(f"{MANIFEST}: {entry.get('name', '?')} has keys this swinir does not know "
                          f"({', '.join(unknown)}); ignored", stacklevel=3)
        return cls(**{k: v for k, v in entry.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry: every field, in the order declared above."""
        return asdict(self)


MANIFEST = "weights/models.json"  # under the package; named so in warnings


def weights_dir() -> Path:
    return Path(str(resources.files("swinir") / "weights"))


def read_manifest(path: Path) -> list[BundledModel]:
    """The entries of a manifest file (``{"models": [entry, ...]}``) in their order; none when it is absent."""
    if not path.is_file():
        return []
    return [BundledModel.from_dict(entry) for entry in json.loads(path.read_text())["models"]]


def write_manifest(path: Path, models: Iterable[BundledModel]) -> None:
    """Write a manifest file (two-space JSON, one trailing newline) atomically: the only writer of its format."""
    text = json.dumps({"models": [m.to_dict() for m in models]}, indent=2) + "\n"
    write_bytes_atomic(path, text.encode())


def bundled_models() -> list[BundledModel]:
    """Every model listed in the manifest whose weights file is present, in the order of the task families
    and, within one, the default scale first (the web page and the server serve the first when no task or
    scale is named, as :func:`bundled_model` picks for restore)."""
    models = read_manifest(weights_dir() / "models.json")
    present = [m for m in models if m.path.is_file()]
    # the default family (photo) first, and in a family the default scale first: the web page and the API then
    # pick, with no task or scale named, the model swinir restore picks
    return sorted(present, key=lambda m: (FAMILIES.index(family_of(m.task)), m.scale != DEFAULT_SCALE))


def bundled_model(task: str | None = None, scale: int | None = None) -> BundledModel:
    """The shipped model for a task family (photo, sr, denoise, jpeg) and, for the upscaling families, a scale
    (default x4). With no task: the photo model, or at a scale it does not have, the bicubic SR model."""
    families = [family_of(task)] if task else [DEFAULT_FAMILY, "sr"]
    models = bundled_models()
    for key in families:
        want_scale = (scale or DEFAULT_SCALE) if upsamples(key) else 1
        for model in models:
            if model.task == key and model.scale == want_scale:
                return model
    key = families[-1]  # with no task, the miss is told as bicubic SR, which has the most scales
    want = family_label(key, (scale or DEFAULT_SCALE) if upsamples(key) else 1)
    have = ", ".join(m.label for m in models) or "none"
    raise SwinIRError(f"no bundled model for task {want} (bundled: {have}); pass --weights with a checkpoint, "
                      "e.g. an official SwinIR .pth")


def bundled_weights(task: str | None = None, scale: int | None = None) -> Path:
    return bundled_model(task, scale).path


def model_file(model: str | Path) -> Path:
    """A checkpoint's path, or the weights of the bundled model of that name (as ``swinir models`` lists it).

    An existing file wins over a bundled name."""
    path = Path(model)
    if path.exists():
        return path
    models = bundled_models()
    for bundled in models:
        if bundled.name == str(model):
            return bundled.path
    names = ", ".join(m.name for m in models) or "none"
    raise SwinIRError(f"{model}: no such file, nor a bundled model (bundled: {names}); pass a checkpoint's path "
                      "or a name that swinir models lists")


def models_table(models: list[BundledModel]) -> str:
    """The bundled models as a text table: one line per measured row, ``model / baseline`` in dB."""
    header = ("model", "task", "size", "iterations", "measured (dB): model / baseline")
    lines: list[tuple[str, ...]] = []
    for m in models:
        rows = m.quality_rows() or [("not measured", math.nan, "", math.nan)]
        for i, (label, value, baseline, base) in enumerate(rows):
            measured = f"{label}: {value:.2f} / {base:.2f} {baseline}" if baseline else label
            first = (m.name, m.label, f"{m.path.stat().st_size / 1e6:.1f} MB",
                     f"{m.training.get('iterations', 0):,}") if i == 0 else ("", "", "", "")
            lines.append((*first, measured))
    widths = [max(len(r[c]) for r in [header, *lines]) for c in range(len(header))]
    fmt = "  ".join(f"{{:{'>' if c in (2, 3) else '<'}{w}}}" for c, w in enumerate(widths))
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *lines])
