"""The models shipped inside the package, so that ``swinir restore photo.png`` works with no download.

``weights/models.json`` lists them: file, task, scale, architecture summary, training data and recipe,
iterations, CPU hours and the quality measured with ``swinir eval``. The weights are safetensors files
with their config in the metadata, loaded like any other checkpoint.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import SwinIRError

TASK_ALIASES = {
    "sr": "sr", "super-resolution": "sr", "classical_sr": "sr", "upscale": "sr",
    "denoise": "denoise", "dn": "denoise", "color_dn": "denoise", "denoising": "denoise",
    "jpeg": "jpeg", "car": "jpeg", "color_car": "jpeg", "dejpeg": "jpeg",
}
DEFAULT_TASK, DEFAULT_SCALE = "sr", 4


@dataclass(frozen=True)
class BundledModel:
    """One shipped model and what is known about it (from ``weights/models.json``)."""

    name: str
    task: str  # sr | denoise | jpeg
    scale: int
    file: str
    description: str
    training: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # row label -> {"model": {...}, baseline: {...}}
    quality_measured: str = ""  # when and how the quality was measured

    @property
    def path(self) -> Path:
        return weights_dir() / self.file


def weights_dir() -> Path:
    return Path(str(resources.files("swinir") / "weights"))


def bundled_models() -> list[BundledModel]:
    """Every model listed in the manifest whose weights file is present."""
    manifest = weights_dir() / "models.json"
    if not manifest.is_file():
        return []
    entries = json.loads(manifest.read_text())["models"]
    models = [BundledModel(**entry) for entry in entries]
    return [m for m in models if m.path.is_file()]


def bundled_model(task: str | None = None, scale: int | None = None) -> BundledModel:
    """The shipped model for a task (sr, denoise, jpeg) and, for sr, a scale (default x4)."""
    key = TASK_ALIASES.get((task or DEFAULT_TASK).lower())
    if key is None:
        raise SwinIRError(f"unknown task {task!r}: use sr, denoise or jpeg (or pass --weights)")
    want_scale = (scale or DEFAULT_SCALE) if key == "sr" else 1
    models = bundled_models()
    for model in models:
        if model.task == key and model.scale == want_scale:
            return model
    have = ", ".join(f"{m.task} x{m.scale}" if m.task == "sr" else m.task for m in models) or "none"
    raise SwinIRError(
        f"no bundled model for task {key}" + (f" x{want_scale}" if key == "sr" else "")
        + f" (bundled: {have}); pass --weights with a checkpoint, e.g. an official SwinIR .pth"
    )


def bundled_weights(task: str | None = None, scale: int | None = None) -> Path:
    return bundled_model(task, scale).path


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the manifest entries as JSON")


def run_models_command(args: argparse.Namespace) -> int:
    models = bundled_models()
    if args.json:
        print(json.dumps([m.__dict__ for m in models], indent=2))
        return 0
    if not models:
        print("no bundled models in this installation; pass --weights to restore and eval")
        return 0
    for m in models:
        size = m.path.stat().st_size / 1e6
        print(f"{m.name}: {m.description} [{m.task}{f' x{m.scale}' if m.task == 'sr' else ''}, {size:.1f} MB]")
        for key, value in m.training.items():
            print(f"    training.{key}: {value}")
        for key, value in m.quality.items():
            print(f"    quality.{key}: {value}")
    return 0
