"""Larger than memory: a big uint16 tiled BigTIFF through ``swinir restore`` with a small memory budget.

The target of issue 29 is 20,000 x 20,000 pixels (800 MB decoded) through a small denoising model with
``--max-memory 0.5``: peak RSS under 1 GB. This script writes such a file band by band (never holding it
whole), runs ``swinir restore`` in a child process, and reports the wall time and the child's peak RSS
(``getrusage``'s ``ru_maxrss`` of the children), then checks a crop of the output against an in-memory
restore of the same crop region's source through the library (``swinir.engine.restore`` with the band's tile),
away from the crop's own borders.

    python benchmarks/huge_tiff.py --size 20000          # the target (hours on a CPU; not for a shared machine)
    python benchmarks/huge_tiff.py --size 1024 --max-memory 0.05   # a small run
    python benchmarks/huge_tiff.py --height 1024                    # a strip of the full width: time a part

Results are appended to ``benchmarks/results/huge_tiff.md`` with the machine and the date.
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
import zarr

import swinir
from _common import machine_line, markdown_table
from swinir.engine import restore
from swinir.levels import from_unit, full_range, to_unit

RESULTS = Path(__file__).resolve().parent / "results" / "huge_tiff.md"
TOLERANCE = 4095 / 255  # the tiling tolerance promised: 1/255 of the range


def write_source(path: Path, height: int, width: int, seed: int = 0) -> None:
    """A height x width uint16 image of 12-bit smooth structure plus noise, tiled 512, deflate, BigTIFF."""
    tile = 512
    rng = np.random.default_rng(seed)

    def tiles() -> Iterator[np.ndarray]:
        for top in range(0, height, tile):
            for left in range(0, width, tile):
                y, x = np.mgrid[top : top + tile, left : left + tile]
                smooth = 2000 + 1500 * np.sin(x / 37.0) * np.cos(y / 53.0)
                yield np.clip(smooth + rng.normal(0, 100, smooth.shape), 0, 4095).astype(np.uint16)

    tifffile.imwrite(path, tiles(), shape=(height, width), dtype=np.uint16, tile=(tile, tile), compression="zlib",
                     bigtiff=True)


def small_denoiser(path: Path) -> Path:
    """A small same-size gray model (random weights: the benchmark measures the plumbing, not the quality)."""
    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=1, img_size=64, window_size=8, depths=(2, 2), embed_dim=24, num_heads=(2, 2),
                             in_chans=1, upsampler="", resi_connection="1conv")
    swinir.save_safetensors(path, cfg.build(), cfg, {"task": "gray_dn"})
    return path


def crop_check(source: Path, output: Path, weights: Path, margin: int = 64, side: int = 256) -> float:
    """The largest difference (in uint16 units) between the streamed output and an in-memory restore of a
    crop from the middle of the image (the source crop with ``margin`` pixels of context on each side, the
    comparison away from the crop's own borders)."""
    levels = full_range(np.uint16, 0, 4095)  # what `swinir restore` finds for this 12-bit data
    with tifffile.TiffFile(source) as tif:
        height, width = tif.series[0].shape
        top, left = max(0, height // 2 - side // 2 - margin), max(0, width // 2 - side // 2 - margin)
        crop = zarr.open(tif.aszarr(), mode="r")[top : top + side + 2 * margin, left : left + side + 2 * margin]
    x = torch.from_numpy(to_unit(np.asarray(crop), levels))[None, None]
    want = from_unit(restore(swinir.load(weights), x, clamp=False)[0, 0].numpy(), levels)[0]
    inner = slice(margin, margin + side)
    with tifffile.TiffFile(output) as tif:
        rows, cols = slice(top + margin, top + margin + side), slice(left + margin, left + margin + side)
        got = zarr.open(tif.aszarr(), mode="r")[rows, cols]
    return float(np.abs(np.asarray(got).astype(np.int64) - want[inner, inner].astype(np.int64)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000, help="width (and height unless --height)")
    parser.add_argument("--height", type=int, default=None, help="a strip of the full width, to time a part")
    parser.add_argument("--max-memory", type=float, default=0.5, help="GB, passed to swinir restore")
    parser.add_argument("--precision", default="fp32", help="passed to swinir restore (auto: bf16 where native)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    height, width = args.height or args.size, args.size
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        started = time.perf_counter()
        write_source(work / "huge.tif", height, width)
        written = time.perf_counter() - started
        weights = small_denoiser(work / "dn.safetensors")
        command = [sys.executable, "-m", "swinir", "restore", str(work / "huge.tif"), "-o", str(work / "out.tif"),
                   "--weights", str(weights), "--max-memory", str(args.max_memory), "--precision", args.precision]
        if args.threads:
            command += ["--threads", str(args.threads)]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB -> MB on Linux
        with tifffile.TiffFile(work / "out.tif") as tif:
            shape, dtype = tif.series[0].shape, tif.series[0].dtype
        worst = crop_check(work / "huge.tif", work / "out.tif", weights)
    decoded = height * width * 2 / 1e6
    row = [f"{height}x{width}", f"{decoded:,.0f} MB", f"{args.max_memory}", args.precision, f"{wall:,.1f}",
           f"{height * width / wall / 1e6:.3f}", f"{peak:,.0f} MB", f"{shape[0]}x{shape[1]} {dtype}",
           f"{worst:.0f} (limit {TOLERANCE:.1f})"]
    table = markdown_table(["image (uint16)", "decoded", "--max-memory GB", "precision", "wall s", "Mpixel/s",
                            "child peak RSS", "output", "crop: max difference to in-memory"], [row])
    text = (f"# A large uint16 BigTIFF through `swinir restore` (`benchmarks/huge_tiff.py`)\n\n- machine: "
            f"{machine_line()}\n- model: gray denoiser, embed 24, depths 2x2 (random weights); source written in "
            f"{written:.1f} s\n\n{table}\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
