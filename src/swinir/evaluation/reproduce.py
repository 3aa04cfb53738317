"""``swinir reproduce``: the authors' models through the paper's protocol, beside the paper's numbers.

For every downloaded (or named) authors' model, every benchmark set of its paper table that the data folder
holds is evaluated exactly as ``swinir eval`` does (:func:`~swinir.evaluation.runner.evaluate`, fp32 by
default, whole images), and each number is printed beside the paper's with the difference. A PSNR or PSNR-B that
differs by more than the tolerance (default 0.02 dB: the paper rounds to 0.01) fails the command; SSIM is shown
but not checked (its published figures round to 4 digits, and other SSIM implementations differ in the 4th).

The data folder has the layout of ``shared/datasets``: ``DIR/Set5/HR`` with ``DIR/Set5/LR_bicubic/X2`` (the LR
files; without them MATLAB bicubic of the HR is used, identical for x2-x4), and folders of ground truths such as
``DIR/Kodak24`` or ``DIR/Urban100/HR``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..authors import MODELS as AUTHORS_MODELS
from ..authors import AuthorsModel, get_model, paper_results
from ..errors import SwinIRError
from ..hub import cached_path, is_downloaded, not_downloaded
from ..precision import PRECISION_CHOICES
from ..tasks import get_task
from .methods import model_method
from .protocol import EvalSettings
from .runner import evaluate

DEFAULT_TOLERANCE = 0.02
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100", "Manga109", "Set12", "BSD68", "CBSD68", "Kodak24",
                  "McMaster", "classic5", "LIVE1")
METRIC_LABELS = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr": "PSNR", "ssim": "SSIM", "psnrb": "PSNR-B",
                 "psnrb_y": "PSNR-B-Y"}
PaperTable = Mapping[str, Mapping[str, Mapping[str, float]]]


def benchmark_folders(data: Path, name: str, scale: int) -> tuple[Path, Path | None] | None:
    """``(ground truths, LR files or None)`` of set ``name`` in ``data``, or None when it is not there."""
    root = data / name
    if not root.is_dir():
        return None
    hr = root / "HR" if (root / "HR").is_dir() else root
    lr = root / "LR_bicubic" / f"X{scale}"
    return hr, (lr if scale > 1 and lr.is_dir() else None)


def settings_for(model: AuthorsModel) -> EvalSettings:
    """The paper's protocol for a model: its task, scale, and the noise sigma or JPEG quality it was trained for."""
    level = get_task(model.task).level
    return EvalSettings(model.task, model.scale, sigma=float(model.level) if level == "sigma" else None,
                        quality=model.level if level == "quality" else None)


@dataclass(frozen=True)
class Comparison:
    """One published number and the measured one."""

    model: str
    dataset: str
    metric: str
    paper: float
    measured: float

    @property
    def difference(self) -> float:
        return self.measured - self.paper

    @property
    def checked(self) -> bool:
        """Whether the tolerance applies (dB figures); SSIM is shown only."""
        return not self.metric.startswith("ssim")

    def within(self, tolerance: float) -> bool:
        return not self.checked or (math.isfinite(self.measured) and abs(self.difference) <= tolerance + 1e-9)


@dataclass
class Reproduction:
    """Every comparison made, the notes on what could not be compared, and the tolerance they were held to."""

    tolerance: float
    rows: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Comparison]:
        return [r for r in self.rows if not r.within(self.tolerance)]

    def markdown(self) -> str:
        lines = [f"| model | set | metric | paper | measured | difference | within {self.tolerance:g} dB |",
                 "|---|---|---|---:|---:|---:|---|"]
        for r in self.rows:
            digits = 4 if r.metric.startswith("ssim") else 2
            verdict = ("yes" if r.within(self.tolerance) else "**no**") if r.checked else "(not checked)"
            lines.append(f"| {r.model} | {r.dataset} | {METRIC_LABELS.get(r.metric, r.metric)} | {r.paper:.{digits}f} "
                         f"| {r.measured:.{digits + 2}f} | {r.difference:+.{digits + 2}f} | {verdict} |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        rows = [{**asdict(r), "measured": r.measured if math.isfinite(r.measured) else None,
                 "difference": r.difference if math.isfinite(r.difference) else None, "checked": r.checked,
                 "within": r.within(self.tolerance)} for r in self.rows]
        return {"tolerance_db": self.tolerance, "passed": not self.failures, "rows": rows, "notes": self.notes}


def reproduce(models: Sequence[AuthorsModel], data: Path, *, paper: PaperTable | None = None,
              tolerance: float = DEFAULT_TOLERANCE, device: str = "cpu", precision: str = "fp32",
              tile: int | None = None, progress: bool = True) -> Reproduction:
    """Evaluate each (downloaded) model on every set of its paper table that ``data`` holds.

    ``paper`` replaces :data:`swinir.authors.PAPER_RESULTS` (tests pass a fake table).
    """
    result = Reproduction(tolerance)
    for model in models:
        numbers = paper_results(model, paper)
        if not numbers:
            why = "real-world models are judged by eye" if model.task == "real_sr" else "the paper publishes none"
            result.notes.append(f"{model.name}: no published numbers to compare with ({why})")
            continue
        settings = settings_for(model)
        present = {s: f for s in numbers if (f := benchmark_folders(data, s, model.scale)) is not None}
        if not present:
            result.notes.append(f"{model.name}: none of its sets ({', '.join(numbers)}) is in {data}")
            continue
        method = model_method(cached_path(model), settings, device=device, tile=tile, precision=precision)
        for name, folders in present.items():
            (measured,) = evaluate(method, settings, [folders], method_name=model.name, progress=progress)
            for metric, value in numbers[name].items():
                result.rows.append(Comparison(model.name, name, metric, float(value), measured.mean[metric]))
        missing = [s for s in numbers if s not in present]
        if missing:
            result.notes.append(f"{model.name}: not in {data}: {', '.join(missing)}")
    return result


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def add_reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="the authors' models to check (default: every downloaded one; swinir models lists them)")
    p.add_argument("--data", type=Path, required=True, metavar="DIR",
                   help="folder of benchmark sets as DIR/Set5/HR (+ LR_bicubic/X2...), DIR/Kodak24, ...: "
                        + ", ".join(BENCHMARK_SETS))
    p.add_argument("--json", action="store_true", help="print the comparisons as JSON instead of a table")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"largest PSNR difference (dB) that counts as reproduced (default {DEFAULT_TOLERANCE})")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                   help="fp32 (default: the paper's), or auto/bf16/fp16 to see what they cost")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--tile", type=int, default=None, help="tile side in input pixels (default: whole images, as "
                                                          "the paper)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def chosen_models(names: Sequence[str]) -> list[AuthorsModel]:
    """The named models (each must be downloaded), or every downloaded one."""
    if names:
        models = [get_model(n) for n in names]
        for model in models:
            if not is_downloaded(model):
                raise SwinIRError(not_downloaded(model))
        return list(dict.fromkeys(models))
    models = [m for m in AUTHORS_MODELS.values() if is_downloaded(m)]
    if not models:
        raise SwinIRError("no authors' model is downloaded: run `swinir pull NAME` first (swinir models lists them)")
    return models


def run_reproduce_command(args: argparse.Namespace) -> int:
    """Print the table (or JSON); exit 1 when a PSNR differs from the paper's by more than the tolerance."""
    if not args.data.is_dir():
        raise SwinIRError(f"--data {args.data}: no such folder (it holds Set5/HR, Kodak24, ... as shared/datasets)")
    if args.tolerance < 0:
        raise SwinIRError(f"--tolerance {args.tolerance:g} must be 0 or more (dB)")
    models = chosen_models(args.names)
    result = reproduce(models, args.data, tolerance=args.tolerance, device=args.device, precision=args.precision,
                       tile=args.tile, progress=not args.quiet)
    if not result.rows:
        raise SwinIRError("nothing to compare: " + "; ".join(result.notes))
    if args.json:
        print(json.dumps(result.to_json(), indent=2, allow_nan=False))
    else:
        print(f"{len(models)} model(s) on {args.data}, {args.precision}, the paper's protocol (swinir eval)\n")
        print(result.markdown())
        for note in result.notes:
            print(f"\nnote: {note}")
    checked = [r for r in result.rows if r.checked]
    failed = result.failures
    summary = (f"{len(checked) - len(failed)} of {len(checked)} PSNR figures within {args.tolerance:g} dB of the "
               "paper")
    print(summary, file=sys.stderr if failed or args.json else sys.stdout)
    return 1 if failed else 0
