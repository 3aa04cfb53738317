"""``swinir eval``: its options, and the command that evaluates, prints the table and writes the files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import SwinIRError
from ..fileio import write_bytes_atomic
from ..hub import add_model_options, add_offline_option, model_file
from ..precision import PRECISION_CHOICES, resolve_precision
from ..tasks import TASK_NAMES
from .methods import BASELINES, Method, baseline_method, bundled_weights_for, model_method
from .protocol import EvalSettings
from .report import format_table, results_to_csv, results_to_json
from .runner import evaluate


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``swinir eval`` options."""
    parser.add_argument("--task", required=True, choices=TASK_NAMES,
                        help="what is evaluated (the paper's protocol for it)")
    parser.add_argument("--scale", type=int, default=None, help="SR factor (SR tasks; default 1 otherwise)")
    parser.add_argument("--hr", type=Path, action="append", default=[], metavar="DIR",
                        help="ground-truth folder; repeat for several datasets (e.g. --hr Set5/HR --hr Set14/HR)")
    parser.add_argument("--lr", type=Path, action="append", default=[], metavar="DIR",
                        help="LR folder with {name}x{scale}{ext} files, one per --hr in the same order "
                             "(default: MATLAB bicubic of the HR); for real_sr, the input folder(s)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--weights", "-w",
                       help="a SwinIR checkpoint (.pth or .safetensors) to evaluate; default: the bundled model")
    which.add_argument("--method", choices=BASELINES, help="a baseline instead of a model")
    add_model_options(which)
    add_offline_option(parser)
    parser.add_argument("--preset", help="read --weights as this preset instead of inferring the architecture")
    parser.add_argument("--sigma", type=float, default=None, help="noise level for denoising (0-255 scale)")
    parser.add_argument("--quality", type=int, default=None, help="JPEG quality for artifact reduction")
    parser.add_argument("--gray-luma", choices=("replicate", "raw"), default="replicate",
                        help="SR luma of gray-stored ground truths: replicate (reference script, default) or raw "
                             "(the gray values, as the MATLAB scripts behind the published bicubic tables)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--csv", type=Path, help="write the per-image results as CSV here")
    parser.add_argument("--save", type=Path, metavar="DIR", help="save outputs and side-by-side crops here")
    parser.add_argument("--tile", type=int, default=None, help="tile side in input pixels (model only)")
    parser.add_argument("--tile-overlap", type=int, default=None, help="overlap between tiles (default 32)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="auto (default: bf16 where the hardware computes it natively, else fp32), fp32 "
                             "(exact), bf16, fp16 (CUDA)")
    parser.add_argument("--ensemble", action="store_true", help="x8 self-ensemble")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                        help="auto (default): onnxruntime for an .onnx file from swinir export, else PyTorch")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, means only")


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    """The :class:`EvalSettings` of parsed ``swinir eval`` arguments."""
    settings = EvalSettings(task=args.task, scale=args.scale or 1, sigma=args.sigma, quality=args.quality,
                            gray_luma=args.gray_luma)
    if settings.is_sr and args.scale is None:
        raise SwinIRError(f"{args.task} needs --scale (the SR factor, e.g. --scale 4)")
    return settings


def weights_method_from_args(args: argparse.Namespace, settings: EvalSettings) -> Method:
    """The default ``restore_factory``: :func:`model_method` for ``--weights``."""
    return model_method(args.weights, settings, preset=args.preset, device=args.device, tile=args.tile,
                        tile_overlap=args.tile_overlap, precision=args.precision, ensemble=args.ensemble,
                        backend=getattr(args, "backend", "auto"))


def dataset_pairs(args: argparse.Namespace, settings: EvalSettings) -> list[tuple[Path | None, Path | None]]:
    """``(hr_dir, lr_dir)`` per dataset from the repeated ``--hr``/``--lr`` options."""
    if not settings.spec.has_ground_truth:
        if not args.lr:
            raise SwinIRError(f"{settings.task} evaluates LR images only: give their folder with --lr")
        return [(None, lr) for lr in args.lr]
    if not args.hr:
        raise SwinIRError(f"{settings.task} needs the ground-truth folder (--hr)")
    if args.lr and not settings.is_sr:
        raise SwinIRError(f"--lr is for SR tasks; {settings.task} builds its inputs from --hr")
    if args.lr and len(args.lr) != len(args.hr):
        raise SwinIRError(f"give one --lr per --hr (got {len(args.hr)} --hr and {len(args.lr)} --lr)")
    lrs: list[Path | None] = list(args.lr) if args.lr else [None] * len(args.hr)
    return list(zip(args.hr, lrs, strict=True))


def run_eval_command(args: argparse.Namespace, *,
                     restore_factory: Callable[[argparse.Namespace, EvalSettings], Method] | None = None) -> int:
    """``swinir eval``: evaluate, print the table, write JSON/CSV/images. Returns the exit code (0).

    ``restore_factory(args, settings)`` builds the method for ``--weights`` (default
    :func:`weights_method_from_args`, which imports the model code only then). Without ``--weights`` or
    ``--method``, the bundled model of the task's family is evaluated.
    """
    settings = settings_from_args(args)
    pairs = dataset_pairs(args, settings)
    if args.method:
        method, method_name, precision = baseline_method(args.method, settings), args.method, ""
    else:
        if getattr(args, "model", None):
            args.weights = str(model_file(args.model, offline=args.offline, quiet=args.quiet))
        if not args.weights:
            args.weights = str(bundled_weights_for(settings))
        method = (restore_factory or weights_method_from_args)(args, settings)
        method_name = getattr(args, "model", None) or Path(args.weights).stem
        from ..export import backend_precision, resolve_backend

        if resolve_backend(getattr(args, "backend", "auto"), args.weights) == "onnxruntime":
            precision = f", {backend_precision(args.precision)}, onnxruntime"
        else:
            precision = f", {resolve_precision(args.precision, args.device)}"
    results = evaluate(method, settings, pairs, method_name=method_name, save_dir=args.save, progress=not args.quiet)
    what = f"{settings.task}" + (f" x{settings.scale}" if settings.is_sr else "")
    what += f" sigma {settings.sigma:g}" if settings.sigma is not None else ""
    what += f" quality {settings.quality}" if settings.quality is not None else ""
    if settings.metric_keys:
        print(f"{method_name} on {what} (border {settings.border}{precision})")
        print(format_table(results, per_image=not args.quiet))
    else:  # real_sr: no ground truth
        print(f"{method_name} on {what}: " + ", ".join(f"{len(r.images)} images of {r.dataset}" for r in results)
              + " (no ground truth, no metrics)")
    if args.json:
        write_bytes_atomic(args.json, (json.dumps(results_to_json(results), indent=2, allow_nan=False) + "\n").encode())
    if args.csv:
        write_bytes_atomic(args.csv, results_to_csv(results).encode())
    if args.save:
        print(f"outputs and comparisons in {args.save}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
