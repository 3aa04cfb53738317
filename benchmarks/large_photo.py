"""A 1024x768 photo through SwinIR-L real-world x4 (issue 27): wall time and peak RSS, this checkout and others.

The preset ``real_sr_x4_l`` with random weights (timing only: the arithmetic is the same as with the
authors' file), restored by ``swinir.restore`` as ``swinir restore`` does it (bf16 where the CPU computes it
natively, the automatic tile from half the available memory). Each implementation runs in a fresh process
(its own peak RSS); ``--before PATH`` adds the same measurement with another checkout's ``src`` first on the
path (e.g. a ``git worktree`` of an older commit), so both figures come from one run on one machine.

    python benchmarks/large_photo.py                                   # this checkout only
    git worktree add /tmp/before d835a35 && python benchmarks/large_photo.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import machine_line, markdown_table, peak_rss_mb

RESULTS = Path(__file__).resolve().parent / "results" / "large_photo.md"
ROOT = Path(__file__).resolve().parents[1]


def worker(precision: str, repeat: int) -> dict:
    """Build the model, restore a random 1024x768 picture ``repeat`` times; wall times and peak RSS."""
    import numpy as np
    import torch

    import swinir
    from swinir.memory import tune_allocator
    from swinir.presets import get_preset

    tune_allocator()  # as the commands do
    torch.manual_seed(0)
    model = get_preset("real_sr_x4_l").config.build().eval()
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = swinir.restore(model, image, precision=precision)
        times.append(time.perf_counter() - start)
    assert out.shape == (3072, 4096, 3)
    return {"wall": statistics.median(times), "runs": times, "rss_mb": peak_rss_mb()}


def run(src: Path, precision: str, repeat: int) -> dict | None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(Path(__file__).parent)])}
    cmd = [sys.executable, __file__, "--worker", precision, "--repeat", str(repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"{src} {precision} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another checkout to measure first (its src/ is used)")
    parser.add_argument("--precision", nargs="+", default=["bf16"], choices=("fp32", "bf16", "auto"))
    parser.add_argument("--repeat", type=int, default=1, help="restores per process (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.repeat)))
        return
    checkouts = ([("before", args.before / "src")] if args.before else []) + [("this checkout", ROOT / "src")]
    rows, first = [], {}
    for precision in args.precision:
        for label, src in checkouts:
            result = run(src, precision, args.repeat)
            if result is None:
                rows.append([label, precision, "failed", "-", "-"])
                continue
            first.setdefault(precision, result["wall"])
            rows.append([label, precision, f"{result['wall']:.1f} s", f"{result['rss_mb'] / 1024:.2f} GB",
                         f"{first[precision] / result['wall']:.2f}x"])
    table = markdown_table(["implementation", "precision", "wall (median)", "peak RSS", "speed vs first row"], rows)
    text = "\n".join([
        "# A 1024x768 photo through SwinIR-L real-world x4 (`benchmarks/large_photo.py`)", "",
        f"- machine: {machine_line()}",
        f"- before: {args.before or '-'}; {args.repeat} restore(s) per fresh process, random weights, uint8 input",
        "", table, ""])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
