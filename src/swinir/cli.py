"""The ``swinir`` command: restore, info, convert, and the subcommands of the other parts of the package.

Each subcommand's implementation is imported only when it runs, so ``swinir --help`` stays fast and one
broken optional part does not take the others down. User errors end as one line on stderr and a non-zero
exit code (:class:`~swinir.errors.SwinIRError`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import OptionRefused, SwinIRError, WeightsMismatch

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# long-running: the allocator keeps memory (swinir.memory)
NETWORK_COMMANDS = ("restore", "eval", "train", "serve", "reproduce")


# --------------------------------------------------------------------------------------------------
# restore
# --------------------------------------------------------------------------------------------------


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--weights / --preset / --task / --scale / --model: which network to run."""
    from .hub import add_model_options, add_offline_option
    from .presets import preset_help

    p.add_argument("--weights", "-w", help="a .pth (reference) or .safetensors checkpoint; default: the bundled model")
    p.add_argument("--preset", help=preset_help("build this preset instead of inferring the architecture from the "
                                                "weights"))
    p.add_argument("--task", default=None,
                   help="bundled model to use without --weights: photo (default; x4 for photos as people have "
                        "them: resized, JPEG-compressed), sr (bicubic, the paper's protocol), denoise, jpeg")
    p.add_argument("--scale", type=int, default=None,
                   help="scale of the bundled photo/SR model (photo: 4; sr: 2 or 4; default 4)")
    add_model_options(p)
    add_offline_option(p)


def use_authors_model(args: argparse.Namespace, *, downloads: bool = True) -> None:
    """--model NAME: the cached file of the authors' model becomes --weights (pulled first, with a progress bar,
    unless --offline, $SWINIR_OFFLINE or ``downloads`` say no)."""
    if not getattr(args, "model", None):
        return
    if args.weights:
        raise SwinIRError(f"--model {args.model} and --weights {args.weights} name two models; pass one of them")
    from .hub import model_file

    args.weights = str(model_file(args.model, offline=args.offline or not downloads,
                                  quiet=getattr(args, "quiet", False)))


def add_restore_arguments(p: argparse.ArgumentParser) -> None:
    from .precision import PRECISION_CHOICES

    p.add_argument("inputs", nargs="+", type=Path,
                   help="image or video files, or folders of them (the files directly inside; see --recursive)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output folder (or a file name when restoring a single image or video); outputs are "
                        "named after their inputs, and inputs that would share a name (a.jpg, a.png) keep their "
                        "type in it (a_jpg.png, a_png.png)")
    p.add_argument("--recursive", "-r", action="store_true",
                   help="also restore the files in sub-folders of the input folders, into the same sub-folders "
                        "of the output")
    add_model_arguments(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level (0-255) of a denoiser trained for one level; blind models need none (with "
                        "no --weights or --task: the bundled denoiser)")
    p.add_argument("--quality", type=int, default=None,
                   help="JPEG quality (1-100) of an artifact remover trained for one quality; blind models need "
                        "none (with no --weights or --task: the bundled one)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile side in input pixels, at least 16, rounded down to a multiple of the model's "
                        "window (8; 7 for the JPEG models); default: chosen from --max-memory")
    p.add_argument("--tile-overlap", type=int, default=None, help="overlap between tiles (default 32)")
    p.add_argument("--max-memory", type=float, default=None, help="activation budget in GB for automatic tiling")
    p.add_argument("--ensemble", action="store_true", help="x8 self-ensemble (flips/rotations), 8x slower")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="auto (default): bf16 where the CPU/GPU computes it natively (AVX512-BF16, AMX, CUDA), "
                        "else fp32")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (under torchrun, cuda: each process "
                                                   "its own GPU)")
    p.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                   help="auto (default): onnxruntime for an .onnx file from swinir export, else PyTorch; "
                        "onnxruntime runs on the CPU in fp32 (a checkpoint is exported first)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: the cores this process may use, less those other processes keep busy "
                        "when it starts, divided among the processes torchrun starts on a machine)")
    p.add_argument("--format", default="png", help="image output format by extension: png (default), tif, bmp, "
                                                   "jpg, webp")
    video = p.add_argument_group("video")
    video.add_argument("--codec", default=None,
                       help="video encoder: libx264 (default; libvpx-vp9 for .webm), libx265, libsvtav1, "
                            "ffv1 (lossless), ...")
    video.add_argument("--crf", type=int, default=None,
                       help="constant rate factor of encoders that have one (default 18; lower is better)")
    video.add_argument("--pix-fmt", default=None,
                       help="stored pixel format (default: yuv420p for lossy codecs, RGB for lossless ones)")
    video.add_argument("--video-format", default=None,
                       help="container of video outputs in a folder: mp4, mkv, mov, webm, ... (default: the input's)")
    from .streaming import add_tiff_arguments

    add_tiff_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def load_model(args: argparse.Namespace) -> Any:
    """The model named by --weights/--preset, or the bundled one for --task, on --backend (a
    :class:`~swinir.descriptor.ModelDescriptor`); options that do not apply to it (--scale, --sigma, --quality,
    a --task it does not do) are refused in one line. Sets ``args.precision`` to what the backend computes in
    (onnxruntime: fp32)."""
    from .backends import open_model
    from .bundled import bundled_model
    from .descriptor import keeps_size_refusal
    from .tasks import FAMILY_LABELS, family_of, level_family, upsamples

    sigma, quality = getattr(args, "sigma", None), getattr(args, "quality", None)
    if args.weights:
        model, args.precision = open_model(args.weights, args.preset, backend=args.backend, device=args.device,
                                           precision=args.precision, quiet=args.quiet)
        if args.task and family_of(args.task) != model.info.family:
            raise SwinIRError(f"--task {args.task} does not match {args.weights}: it does "
                              f"{FAMILY_LABELS[model.info.family]} (drop --task)")
    else:
        family = family_of(args.task) if args.task else None
        if family is not None and not upsamples(family) and args.scale is not None:
            raise keeps_size_refusal(family, args.scale)
        if family is None:  # a level names the family that takes it
            given = "sigma" if sigma is not None else "quality" if quality is not None else None
            family = level_family(given) if given else None
        bundled = args.bundled = bundled_model(family, args.scale)
        model, args.precision = open_model(bundled.path, args.preset, backend=args.backend, device=args.device,
                                           precision=args.precision, quiet=args.quiet, name=bundled.task)
    model.info.check_options(scale=args.scale, sigma=sigma, quality=quality)
    return model


def check_restore_arguments(args: argparse.Namespace) -> None:
    """Refuse, before any input is listed or any model loaded, the restore flags that cannot work whatever the
    model: --scale, --sigma/--quality (:func:`swinir.tasks.check_level`), --tile/--tile-overlap
    (:func:`swinir.engine.check_tiling`), --max-memory, --threads, --device and a --precision it cannot run.
    What depends on the model (its scale, its trained level) is checked by :func:`load_model`."""
    import torch

    from .engine import check_tiling
    from .precision import resolve_precision
    from .tasks import check_level

    if args.scale is not None and args.scale < 1:
        raise SwinIRError(f"--scale {args.scale}: use a whole number of at least 1 (the models upscale x2, x3, x4, x8)")
    check_level("sigma", args.sigma)
    check_level("quality", args.quality)
    check_tiling(args.tile, args.tile_overlap)
    for flag, value in (("--max-memory", args.max_memory), ("--threads", args.threads)):
        if value is not None and value <= 0:
            raise SwinIRError(f"{flag} {value:g} must be positive (or left out for the default)")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise SwinIRError(f"--device {args.device}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SwinIRError(f"--device {args.device}: PyTorch sees no CUDA GPU here; use --device cpu")
    resolve_precision(args.precision, device)  # fp16 on a CPU is refused here, not at every file


def restore_options(args: argparse.Namespace) -> Any:
    """The :class:`~swinir.pipeline.RestoreOptions` of the restore flags."""
    from .pipeline import RestoreOptions

    return RestoreOptions(tile=args.tile, tile_overlap=args.tile_overlap, precision=args.precision,
                          ensemble=args.ensemble, max_memory=int(args.max_memory * 1e9) if args.max_memory else None)


def run_restore(args: argparse.Namespace) -> int:
    """Restore the inputs; under torchrun, this process's share of them (see :mod:`swinir.sharding`)."""
    from .batch import Report, plan_jobs, restore_files, stop_on_terminate
    from .engine import set_threads, tiling_notice
    from .processes import process_place
    from .sharding import ProcessGroup, digest
    from .streaming import tiff_options
    from .video import EncodeOptions

    shard = process_place()
    args.device = shard.device(args.device)
    check_restore_arguments(args)
    use_authors_model(args, downloads=shard.world_size == 1)  # torchrun's processes use the cache only
    threads = set_threads(args.threads or shard.default_threads(leave_busy_cores=True))
    if not args.threads and not args.quiet and shard.is_main and threads < len(os.sched_getaffinity(0)):
        print(f"other processes keep cores busy: restoring with {threads} thread(s) (--threads N to choose)",
              file=sys.stderr)
    encode = EncodeOptions(codec=args.codec, crf=args.crf, pix_fmt=args.pix_fmt)
    with ProcessGroup(shard) as group:
        plan = plan_jobs(args.inputs, args.output, args.format, args.video_format, encode, recursive=args.recursive)
        jobs = plan.jobs
        group.require_same(digest([f"{job.src}>{job.dst}" for job in jobs]), "input files")
        model = load_model(args)
        tiff = tiff_options(args, Path(args.weights).name if args.weights else f"the bundled {args.bundled.task} model")
        notices = [*plan.notices, tiling_notice(model, args.tile, args.tile_overlap)]
        for line in filter(None, notices if shard.rank == 0 else []):  # once, not per process or file
            print(f"note: {line}", flush=True)
        try:
            with stop_on_terminate():
                report = restore_files(model, shard.take(jobs), restore_options(args), encode,
                                       overwrite=args.overwrite, quiet=args.quiet, prefix=shard.prefix,
                                       position=2 * shard.local_rank, tiff=tiff)
        except KeyboardInterrupt:
            again = "the same command without --overwrite" if args.overwrite else "the same command"
            print(f"{shard.prefix}interrupted: the outputs written so far are complete and the unfinished one was "
                  f"removed; run {again} to continue (existing outputs are skipped)", file=sys.stderr)
            return 130
        total = Report.merged(group.gather(report))
        code = EXIT_FAILED if total.failed else EXIT_OK
        if shard.rank == 0 and (total.failed or not args.quiet):
            print(total.summary(args.output, shard.world_size), file=sys.stderr if total.failed else sys.stdout,
                  flush=True)
        if shard.rank == 0 and not args.quiet and getattr(args, "bundled", None):
            from .hub import paper_quality_hint

            print(paper_quality_hint(args.bundled.task, args.bundled.scale), flush=True)
        group.finish(code)  # under torchrun, the process ends here
    return code


# --------------------------------------------------------------------------------------------------
# info / convert
# --------------------------------------------------------------------------------------------------


def run_info(args: argparse.Namespace) -> int:
    """Describe a checkpoint or an ONNX export: config, task, parameters, preset, metadata (no local paths)."""
    from .checkpoints import count_parameters, model_info, read_checkpoint, resolve_config
    from .hub import model_path
    from .presets import PRESETS

    given = Path(args.file)
    args.file = model_path(args.file)  # a path, a bundled model's name, or a downloaded authors' model's name
    named = not given.exists()  # a name: its file lives inside the package or the cache, not the user's concern
    print(f"model:       {given} ({args.file.name})" if named else f"file:        {given}")
    if args.file.suffix.lower() == ".onnx":
        return _onnx_info(args)
    state, meta = read_checkpoint(args.file)
    config = resolve_config(state, meta, args.preset)
    source = "preset" if args.preset else ("metadata" if meta.config is not None else "inferred from the weights")
    match = [name for name, p in PRESETS.items() if p.config.replace(img_size=config.img_size) == config]
    _print_model(config, source, model_info(config, meta, args.file.name), meta)
    print(f"parameters:  {count_parameters(config.build()):,}")
    print(f"preset:      {', '.join(match) if match else 'none (custom architecture)'}")
    _print_metadata(meta)
    return EXIT_OK


def _onnx_info(args: argparse.Namespace) -> int:
    """``swinir info FILE.onnx``: what ``swinir export`` stored (config, task, opset, precision)."""
    from .checkpoints import count_parameters, model_info
    from .export import read_onnx_file

    if args.preset:
        raise SwinIRError(f"--preset does not apply to {args.file.name}: an ONNX export stores its config")
    onnx = read_onnx_file(args.file)
    print(f"format:      ONNX, opset {onnx.opset}; {onnx.precision} {onnx.inputs} (*: any size)")
    if onnx.config is None:
        print("config:      none: not written by swinir export (no swinir.config metadata), so swinir cannot run it")
        _print_metadata(onnx.metadata)
        return EXIT_OK
    _print_model(onnx.config, "metadata", model_info(onnx.config, onnx.metadata, args.file.name), onnx.metadata)
    print(f"parameters:  {count_parameters(onnx.config.build()):,}")
    print(f"runs with:   swinir restore ... --weights {args.file.name} (onnxruntime on the CPU, fp32)")
    _print_metadata(onnx.metadata)
    return EXIT_OK


def _print_model(config: Any, source: str, info: Any, meta: dict[str, str]) -> None:
    """The config lines and the task line of ``swinir info``."""
    from .metadata import ModelMetadata
    from .tasks import FAMILY_LABELS, upsamples

    print(f"config:      ({source})")
    for key, value in config.to_dict().items():
        print(f"  {key:16s} {value}")
    scale = f" x{info.scale}" if upsamples(info.family) else ""
    task = ModelMetadata(meta).task
    trained = f" (trained as {task})" if task else ""
    print(f"task:        {FAMILY_LABELS[info.family]}{scale}{trained}")


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])(?:/[\w.+-]+)+/([\w.+-]+/[\w.+-]+)")


def _print_metadata(meta: dict[str, str]) -> None:
    """The ``swinir.*`` metadata but the config, with the folders of the machine that wrote the file cut to
    their last two parts (``/home/x/data/train/T91`` shows as ``train/T91``)."""
    from .metadata import CONFIG_KEY

    for key, value in sorted(meta.items()):
        if key != CONFIG_KEY:
            shown = _ABSOLUTE_PATH.sub(r"\1", value)
            print(f"{key}: {shown}")


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    from .export import DEFAULT_OPSET
    from .hub import add_model_options, add_offline_option
    from .presets import preset_help

    p.add_argument("weights", type=Path, nargs="?", help="a .pth (reference) or .safetensors checkpoint")
    add_model_options(p)
    add_offline_option(p)
    p.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--preset", help=preset_help("read the weights as this preset instead of inferring the "
                                                "architecture"))
    p.add_argument("--quiet", "-q", action="store_true", help="no progress, only the summary line")


def run_export(args: argparse.Namespace) -> int:
    """Write one ONNX graph for every batch, height and width, checked against PyTorch; print a summary."""
    from .export import export_onnx, stage_display

    use_authors_model(args)
    if not args.weights:
        raise SwinIRError("name the model to export: a checkpoint file, or --model NAME (swinir models lists them)")
    with stage_display(quiet=args.quiet) as stage:
        summary = export_onnx(args.weights, args.onnx, preset=args.preset, opset=args.opset, stage=stage)
    print(summary.line())
    return EXIT_OK


def run_convert(args: argparse.Namespace) -> int:
    """Write MODEL in the --to format; for reference files, name any constructor argument the file cannot tell."""
    from .checkpoints import check_target, convert, reference_gaps
    from .hub import model_path

    check_target(args.dst, args.to)
    config = convert(model_path(args.src), args.dst, args.preset, to=args.to)  # a file, bundled or authors' name
    print(f"wrote {args.dst} ({config.upsampler or 'same-size'}, x{config.upscale}, embed {config.embed_dim}, "
          f"{args.to} format)")
    gaps = reference_gaps(args.dst, config) if args.to == "reference" else {}
    if gaps:
        told = ", ".join(f"{k}={v!r}" for k, (v, _) in gaps.items())
        guessed = ", ".join(f"{k}={g!r}" for k, (_, g) in gaps.items())
        print(f"note: the weights alone do not tell {told} (read from them: {guessed}); construct the reference "
              f"SwinIR with {told}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------


def _subcommands() -> list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]]:
    """(name, help, add_arguments, run) for every subcommand; optional parts are imported lazily."""

    def lazy(module: str, add: str, run: str) -> tuple[Callable, Callable]:
        def load(name: str) -> Callable:
            import importlib

            try:
                return getattr(importlib.import_module(module, __package__), name)
            except ModuleNotFoundError as err:
                raise SwinIRError(f"this command is not available in this installation ({err})") from err

        def add_fn(p: argparse.ArgumentParser) -> None:
            load(add)(p)

        def run_fn(args: argparse.Namespace) -> int:
            return load(run)(args)

        return add_fn, run_fn

    def info_args(p: argparse.ArgumentParser) -> None:
        from .presets import preset_help

        p.add_argument("file", type=Path, metavar="MODEL",
                       help="a checkpoint (.pth, .safetensors), an ONNX export, or a model's name as swinir models "
                            "lists it")
        p.add_argument("--preset", help=preset_help("read the weights as this preset"))

    def convert_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("src", metavar="MODEL",
                       help="a checkpoint (.pth, .safetensors) or a bundled model's name as swinir models lists it")
        p.add_argument("dst", type=Path, metavar="OUT", help="the file to write (its extension picks the container)")
        p.add_argument("--to", default="swinir",
                       help="swinir (default): .safetensors with the config in its metadata; reference: the official "
                            "code's state dict with its derived buffers, .pth ({'params': ...}) or .safetensors, "
                            "for the official scripts, spandrel, chaiNNer and ComfyUI")
        from .presets import preset_help

        p.add_argument("--preset", help=preset_help("use this preset instead of inferring the architecture"))

    return [
        ("restore", "restore (upscale, denoise, de-JPEG) images and videos", add_restore_arguments, run_restore),
        ("info", "print a checkpoint's architecture and parameter count", info_args, run_info),
        ("convert", "convert a checkpoint to .safetensors with its config, or back to the reference's layout",
         convert_args, run_convert),
        ("export", "export a checkpoint to ONNX (any image size; run it with --backend onnxruntime)",
         add_export_arguments, run_export),
        ("eval", "evaluate a model or a baseline exactly as the paper measures",
         *lazy(".evaluation", "add_eval_arguments", "run_eval_command")),
        ("train", "train SwinIR (resumable, distributed with torchrun)",
         *lazy(".training.cli", "add_train_arguments", "run_train_command")),
        ("models", "list the bundled models and the authors' (downloaded or not, size, the paper's numbers)",
         *lazy(".catalog", "add_models_arguments", "run_models_command")),
        ("pull", "download, verify and cache the authors' models (swinir models lists them)",
         *lazy(".catalog", "add_pull_arguments", "run_pull_command")),
        ("reproduce", "check the authors' models against the paper's numbers on your machine",
         *lazy(".evaluation.reproduce", "add_reproduce_arguments", "run_reproduce_command")),
        ("serve", "run the local web app and HTTP API", *lazy(".service", "add_serve_arguments", "run_serve_command")),
    ]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the ``only`` subcommand gets its arguments (the others stay unimported)."""
    parser = argparse.ArgumentParser(prog="swinir", description="SwinIR image restoration")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"swinir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add, run in _subcommands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only == name:
            add(p)
        p.set_defaults(run=run)
    return parser


def error_line(err: SwinIRError) -> str:
    """A user error in the CLI's words: a refused option (:class:`~swinir.errors.OptionRefused`) named by its
    flag, weights that do not fit their architecture with the ``--preset`` that fixes it."""
    if isinstance(err, OptionRefused):
        return err.words(name=lambda option: f"--{option}", leave_out=lambda option: f"remove --{option}")
    if isinstance(err, WeightsMismatch):
        return f"{err.detail}. Use the preset it was trained with, or omit --preset to infer it"
    return str(err)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(argv)
        if command in NETWORK_COMMANDS:
            from .memory import tune_allocator

            tune_allocator()
        return args.run(args)
    except SwinIRError as err:
        print(f"swinir: error: {error_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("swinir: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
