"""``swinir eval``: its options, and the command that evaluates, prints the table and writes the files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SwinIRError
from ..fileio import write_bytes_atomic
from ..hub import add_model_options, add_offline_option, model_file
from ..metadata import CONFIG_KEY, ModelMetadata
from ..precision import PRECISION_CHOICES, resolve_precision
from ..presets import preset_help
from ..tasks import BASELINES, TASK_NAMES, evaluation_task, family_of, upsamples
from .methods import Method, baseline_method, bundled_weights_for, model_method
from .protocol import EvalSettings
from .report import format_table, results_to_csv, results_to_json
from .runner import evaluate


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``swinir eval`` options."""
    parser.add_argument("--task", default=None,
                        help="what is evaluated, with the paper's protocol for it: the words restore takes (photo -> "
                             "photo_sr, sr -> classical_sr, denoise -> color_dn/gray_dn and jpeg -> color_car/gray_car "
                             f"by the model's channels) or the paper's names ({', '.join(TASK_NAMES)}); default: "
                             "the task --weights/--model were trained for")
    parser.add_argument("--scale", type=int, default=None,
                        help="SR factor (SR tasks; default: the model's; 1 for the others)")
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
    parser.add_argument("--preset", help=preset_help("read --weights as this preset instead of inferring the "
                                                     "architecture"))
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


def resolve_task(args: argparse.Namespace) -> None:
    """Make ``args.task`` one of the paper's tasks (:func:`swinir.tasks.evaluation_task`): a paper name stays;
    a restore word, or no --task, is read from the model to evaluate (--weights, --model or the bundled model
    of the family: its channels and the ``swinir.task`` it was trained as), which also gives an SR --scale."""
    from ..checkpoints import model_info

    if getattr(args, "model", None) and not args.weights:
        args.weights = str(model_file(args.model, offline=args.offline, quiet=args.quiet))
    if args.task and args.task.strip().lower() in TASK_NAMES:
        args.task = args.task.strip().lower()
        return
    if not args.task and not args.weights:
        raise SwinIRError("name what to evaluate: --task photo, sr, denoise or jpeg (or one of the paper's: "
                          f"{', '.join(TASK_NAMES)}), or --weights/--model to evaluate what they were trained for")
    if args.method:
        args.task = evaluation_task(args.task)  # a baseline has no channels: denoise/jpeg must be named
        return
    weights = args.weights or _bundled_path(args.task, args.scale)
    config, meta = _model_header(weights, args.preset)
    family = family_of(args.task) if args.task else model_info(config, meta, Path(weights).name).family
    args.task = evaluation_task(args.task or family, config.in_chans, meta.task)
    if args.scale is None and upsamples(family):
        args.scale = config.upscale


def _bundled_path(task: str, scale: int | None) -> Path:
    from ..bundled import bundled_weights

    return bundled_weights(family_of(task), scale)


def _model_header(weights: str | Path, preset: str | None) -> tuple[Any, ModelMetadata]:
    """The config and ``swinir.*`` metadata of a checkpoint or an ONNX export, without building the network."""
    from ..checkpoints import read_header, resolve_config

    if Path(weights).suffix.lower() == ".onnx":
        from ..export import read_onnx_file

        onnx = read_onnx_file(weights)
        if onnx.config is None:
            raise SwinIRError(f"{weights}: not a swinir export (no {CONFIG_KEY} metadata); export the weights with "
                              "swinir export WEIGHTS --onnx FILE")
        return onnx.config, ModelMetadata(onnx.metadata)
    if preset:
        return resolve_config({}, {}, preset), ModelMetadata()
    return read_header(weights)


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
    resolve_task(args)
    settings = settings_from_args(args)
    pairs = dataset_pairs(args, settings)
    if args.method:
        method, method_name, precision = baseline_method(args.method, settings), args.method, ""
    else:
        if not args.weights:
            args.weights = str(bundled_weights_for(settings))
        method = (restore_factory or weights_method_from_args)(args, settings)
        method_name = getattr(args, "model", None) or Path(args.weights).stem
        from ..backends import resolve_backend
        from ..descriptor import backend_precision

        if resolve_backend(getattr(args, "backend", "auto"), args.weights) == "onnxruntime":
            precision = f", {backend_precision('onnxruntime', args.precision)}, onnxruntime"
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
