"""``python -m swinir ...``: the same as ``swinir ...``, and the torchrun entry point for restoring many files
(``torchrun --nproc_per_node 4 -m swinir restore photos/ -o out/``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
