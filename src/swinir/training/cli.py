"""``swinir train``: argument hooks for the main CLI (also ``python -m swinir.training``).

    swinir train CONFIG.yaml | --recipe NAME --out RUN_DIR [--set section.key=value ...] [--device cpu|cuda]
    swinir train --resume RUN_DIR [--set train.iterations=N ...]
    swinir train --out RUN_DIR --export OUT.safetensors [--which best|last]     (export only, no training)
    swinir train --list-recipes | --print-config ...

Exit codes: 0 finished (or exported), 1 a user error (one line on stderr), 130 / 143 stopped by SIGINT /
SIGTERM after writing a checkpoint (continue with ``--resume``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SwinIRError
from .config import load_config, recipe_names, recipes_dir
from .loop import train
from .state import export_weights, has_best_weights, latest_checkpoint


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments to ``parser`` (a subparser of ``swinir`` or a standalone parser)."""
    parser.add_argument("config", nargs="?", type=Path, help="a YAML run config (see docs/training.md)")
    parser.add_argument("--recipe", help="a shipped recipe instead of a config file (see --list-recipes)")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR", help="the run folder: checkpoints, logs, weights")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (YAML syntax), e.g. --set train.batch_size=16; repeatable")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the newest checkpoint of RUN_DIR with its own config (+ safe --set changes)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda; under torchrun each rank takes "
                        "cuda:LOCAL_RANK")
    parser.add_argument("--export", type=Path, metavar="OUT.safetensors",
                        help="do not train: export the EMA weights of the run in --out/--resume and exit")
    parser.add_argument("--which", choices=("best", "last"), default="best",
                        help="with --export: the best validated weights (default) or the newest checkpoint's")
    parser.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``swinir train`` for parsed ``args``; returns the process exit code."""
    from ..memory import tune_allocator

    tune_allocator()  # also for ``python -m swinir.training`` (torchrun), which does not pass through swinir.cli
    if args.list_recipes:
        for name in recipe_names():
            print(f"{name:24s} {_recipe_summary(name)}")
        return 0
    if args.resume and args.out and args.out.resolve() != args.resume.resolve():
        raise SwinIRError("--resume continues RUN_DIR in place; leave out --out (or give the same folder)")
    run_dir = args.resume or args.out
    if args.export:
        if run_dir is None:
            raise SwinIRError("--export needs the run folder: --out RUN_DIR (or --resume RUN_DIR)")
        best = args.which == "best" and has_best_weights(run_dir)
        export_weights(run_dir, args.export, args.which)
        print(f"wrote {args.export} ({_exported_what(args.export, best, args.which)}, from {run_dir})")
        return 0
    given = args.config is not None or args.recipe is not None
    if args.config is not None and args.recipe is not None:
        raise SwinIRError("give a config file or --recipe, not both (a config may start from a recipe with base:)")
    if args.resume:
        config = load_config(args.config, recipe=args.recipe, overrides=args.overrides) if given else None
        if args.print_config:
            if config is None:
                from .config import apply_overrides, parse_config

                _, state = latest_checkpoint(args.resume)
                config = parse_config(apply_overrides(state["config"], args.overrides))
            print(config.to_yaml(), end="")
            return 0
        return train(config, args.resume, device=args.device, resume=True,
                     overrides=() if given else args.overrides)
    if not given:
        raise SwinIRError("give a config file or --recipe NAME (swinir train --list-recipes), or --resume RUN_DIR")
    config = load_config(args.config, recipe=args.recipe, overrides=args.overrides)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    if args.out is None:
        raise SwinIRError("--out RUN_DIR is required: the folder for checkpoints, logs and weights")
    return train(config, args.out, device=args.device)


def _recipe_summary(name: str) -> str:
    """The first comment line of a recipe file."""
    for line in (recipes_dir() / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _exported_what(path: Path, best: bool, which: str) -> str:
    """What ``--export`` wrote, in words: "best" only for weights a validation chose."""
    from ..checkpoints import read_header

    _, meta = read_header(path)
    iteration = f"iteration {meta.iterations or 0:,}"
    if best:
        return f"the best validated EMA weights, {meta.val_psnr:.2f} dB at {iteration}"
    if which == "best" and meta.val_psnr is not None:
        return (f"the newest checkpoint's EMA weights, {iteration}, validated at {meta.val_psnr:.2f}"
                " dB: no best weights were kept (checkpoint.export_best is off)")
    if which == "best":
        return f"the newest checkpoint's EMA weights, {iteration}: no validation has run yet, so there is no best"
    return f"the newest checkpoint's EMA weights, {iteration}"
