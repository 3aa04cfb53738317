"""``python -m swinir.training ...``: the same as ``swinir train ...`` (also the torchrun entry point:
``torchrun --nproc_per_node 2 -m swinir.training --recipe NAME --out RUN_DIR``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import SwinIRError
from .cli import add_train_arguments, run_train_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swinir.training", description="train SwinIR")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_train_command(args)
    except SwinIRError as err:
        print(f"swinir train: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("swinir train: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
