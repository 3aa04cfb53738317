"""``swinir models`` and ``swinir pull``: every model a user can name, the bundled ones and the authors'.

The bundled models ship in the package (:mod:`swinir.bundled`); the authors' are listed by
:mod:`swinir.authors` and fetched, verified and cached by :mod:`swinir.hub`. This module only shows them and
turns the ``pull`` flags into calls.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any

from .authors import MODELS, AuthorsModel, get_model, models_for_task
from .bundled import BundledModel, bundled_models, models_table
from .errors import SwinIRError
from .hub import (
    OFFLINE_ENV,
    RECORD_FILE,
    cached_path,
    expected_sha256,
    home,
    is_downloaded,
    offline_mode,
    pull,
    size_text,
)
from .tasks import get_task

# --------------------------------------------------------------------------------------------------
# swinir pull
# --------------------------------------------------------------------------------------------------


def add_pull_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="the authors' models to fetch (swinir models lists them)")
    p.add_argument("--all", action="store_true", help="every file of the authors' release (about 2.6 GB)")
    p.add_argument("--task", help="every model of a task: a family (sr, photo, denoise, jpeg) or one of the paper's "
                                  "tasks (classical_sr, lightweight_sr, real_sr, gray_dn, color_dn, gray_car, "
                                  "color_car)")
    p.add_argument("--keep-original", action="store_true",
                   help="also keep the release's .pth beside the converted .safetensors")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def pull_selection(args: argparse.Namespace) -> list[AuthorsModel]:
    """The models the flags name, each once, in the order given; an unknown name fails before any download."""
    chosen = [get_model(name) for name in args.names]
    if args.task:
        chosen += models_for_task(args.task)
    if args.all:
        chosen += MODELS.values()
    if not chosen:
        raise SwinIRError("name the models to pull (swinir models lists them), or pass --all or --task TASK")
    return list(dict.fromkeys(chosen))


def run_pull_command(args: argparse.Namespace) -> int:
    models = pull_selection(args)
    if offline_mode():
        raise SwinIRError(f"offline mode is on (${OFFLINE_ENV}): unset it to download {models[0].name}")
    for model in models:
        print(pull(model, keep_original=args.keep_original, quiet=args.quiet).line(), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------
# swinir models
# --------------------------------------------------------------------------------------------------


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print every model as JSON (name, source, file, url, size, sha256, downloaded, ...)")


def task_text(model: AuthorsModel) -> str:
    """``classical_sr x2``, ``color_dn sigma 25``, ``gray_car quality 10``."""
    spec = get_task(model.task)
    if spec.upsamples:
        return f"{model.task} x{model.scale}"
    return f"{model.task} {spec.level} {model.level}" if spec.level and model.level is not None else model.task


def paper_text(model: AuthorsModel) -> str:
    """The paper's headline number on every benchmark set: ``Set5 38.42, Set14 34.46, ...``."""
    paper = model.paper
    if not paper:
        return "no table" if model.task != "real_sr" else "no table (judged by eye)"
    return ", ".join(f"{name} {next(iter(values.values())):.2f}" for name, values in paper.items())


def authors_entry(model: AuthorsModel) -> dict[str, Any]:
    """One authors' model as ``swinir models --json`` shows it."""
    sha256, source = expected_sha256(model)
    return {
        "name": model.name, "source": "authors", "file": model.file, "url": model.url(), "size": model.size,
        "sha256": sha256, "sha256_source": source if sha256 else None, "downloaded": is_downloaded(model),
        "path": str(cached_path(model)), "task": model.task, "scale": model.scale, "level": model.level,
        "preset": model.preset.name, "parameters": model.preset.official_params, "description": model.description,
        "paper": model.paper,
    }


def bundled_entry(model: BundledModel) -> dict[str, Any]:
    """One bundled model as ``swinir models --json`` shows it: its manifest entry and the common fields."""
    return {
        **model.__dict__, "source": "bundled", "url": None, "size": model.path.stat().st_size,
        "sha256": hashlib.sha256(model.path.read_bytes()).hexdigest(), "downloaded": True, "path": str(model.path),
        "parameters": model.training.get("parameters"),
    }


HASH_LABELS = {"public": "public", "recorded": "recorded*", "none yet": "first download*"}


def authors_table(models: list[AuthorsModel]) -> str:
    """The authors' models as a text table; ``*`` marks files checked against a hash recorded on this machine."""
    header = ("model", "task", "size", "parameters", "downloaded", "SHA-256", "paper (dB: PSNR, Y for SR)")
    rows = []
    for m in models:
        _, source = expected_sha256(m)
        rows.append((m.name, task_text(m), size_text(m), f"{m.preset.official_params / 1e6:.1f}M",
                     "yes" if is_downloaded(m) else "no", HASH_LABELS[source],
                     paper_text(m)))
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    fmt = "  ".join(f"{{:{'>' if c in (2, 3) else '<'}{w}}}" for c, w in enumerate(widths))
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *rows])


def run_models_command(args: argparse.Namespace) -> int:
    bundled = bundled_models()
    authors = list(MODELS.values())
    if args.json:
        print(json.dumps([*map(bundled_entry, bundled), *map(authors_entry, authors)], indent=2))
        return 0
    if bundled:
        print("Bundled (inside the package, no download; trained on a CPU):")
        print(models_table(bundled))
        measured = sorted({m.quality_measured for m in bundled if m.quality_measured})
        print("measured with swinir eval (" + "; ".join(measured) + "); model cards: docs/bundled_models.md\n")
    else:
        print("no bundled models in this installation\n")
    print(f"The authors' models (swinir pull NAME, or --model NAME; cached in {home()}):")
    print(authors_table(authors))
    print(f"* no public SHA-256: the first download's is recorded ({home() / RECORD_FILE}) and checked ever after. "
          "The paper's numbers: swinir reproduce checks them on your machine.")
    return 0
