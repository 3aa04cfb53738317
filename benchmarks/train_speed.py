"""Training speed on this machine: seconds per iteration of the real training step, fp32 vs bf16.

Default: SwinIR-S x2 (preset ``lightweight_sr_x2``), global batch 16, LR patch 64 (HR 128), the trainer's
own step (:meth:`swinir.training.Trainer.step`: autocast forward, L1 loss, backward, Adam, EMA update;
drop-path 0.1 as in training). Each precision runs in a fresh process (so peak RSS is its own); within it,
``--warmup`` untimed steps, then the median of ``--repeat`` steps, each kept only when the rest of the
machine stayed idle (``benchmarks/_common.timed``). Data preparation (crop + MATLAB bicubic of one batch,
one process) is timed separately: it runs in DataLoader workers, overlapped with the step.

    python benchmarks/train_speed.py                      # writes benchmarks/results/train_speed.md
    python benchmarks/train_speed.py --recipe bundled_sr_x2 --out /tmp/bundled_speed.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from _common import machine_line, markdown_table, peak_rss_mb, timed
from swinir.presets import get_preset
from swinir.training import Trainer, load_config, parse_config

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.md"


def synthetic_folder(folder: Path, size: int, count: int = 4) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def bench_config(args: argparse.Namespace, precision: str, root: Path) -> dict:
    """The run config of the measured step: a preset (or a recipe's model/task) on synthetic images."""
    if args.recipe:
        raw = load_config(recipe=args.recipe).to_dict()
    else:
        preset = get_preset(args.preset)
        raw = {"model": preset.config.to_dict(), "task": {"name": preset.task, "scale": preset.config.upscale}}
    raw["data"] = {**raw.get("data", {}), "root": str(root), "train": ["images"], "train_lr": None, "num_workers": 0}
    if args.batch:
        raw["data"]["batch_size"] = args.batch
    if args.patch:
        raw["data"]["patch_size"] = args.patch
    raw["val"] = {"folder": None}
    raw["train"] = {**raw.get("train", {}), "precision": precision, "init_weights": None}
    raw["log"] = {"tensorboard": False, "plot": False, "progress": False}
    raw["checkpoint"] = {"every": 0, "export_best": False}
    return raw


def worker(args: argparse.Namespace, precision: str) -> dict:
    """Measure one precision in this process; returns the numbers as a dict (printed as JSON)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = bench_config(args, precision, Path(tmp))
        scale = raw["task"].get("scale", 1)
        synthetic_folder(Path(tmp) / "images", max(raw["data"]["patch_size"] * scale * 2, 128))
        config = parse_config(raw)
        trainer = Trainer(config, Path(tmp) / "run", log=lambda message: None)
        batch, patch = config.data.batch_size, config.data.patch_size
        channels = config.model.in_chans
        lq = torch.rand(batch, channels, patch, patch)
        hr = torch.rand(batch, channels, patch * scale, patch * scale)
        trainer.model.train()
        step = timed(lambda: trainer.step(lq, hr), repeat=args.repeat, warmup=args.warmup)
        data = timed(lambda: [trainer.dataset[(0, s)] for s in range(batch)], repeat=3, warmup=1)
        params = sum(p.numel() for p in trainer.model.parameters())
    return {"precision": precision, "median": step.median, "times": step.times, "discarded": step.discarded,
            "disturbed_kept": step.disturbed_kept, "data": data.median, "rss_mb": peak_rss_mb(), "params": params,
            "batch": batch, "patch": patch, "scale": scale, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lightweight_sr_x2")
    parser.add_argument("--recipe", help="measure a training recipe's model and batch instead of --preset")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default 16, or the recipe's)")
    parser.add_argument("--patch", type=int, default=None, help="LR patch side (default 64, or the recipe's)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.recipe:
        args.batch, args.patch = args.batch or 16, args.patch or 64
    if args.worker:
        print(json.dumps(worker(args, args.worker)))
        return

    results = []
    for precision in args.precisions:
        cmd = [sys.executable, __file__, "--worker", precision, "--preset", args.preset, "--repeat", str(args.repeat),
               "--warmup", str(args.warmup)]
        cmd += ["--recipe", args.recipe] if args.recipe else []
        cmd += ["--batch", str(args.batch)] if args.batch else []
        cmd += ["--patch", str(args.patch)] if args.patch else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{precision}: {r['median']:.3f} s/it ({', '.join(f'{t:.2f}' for t in r['times'])})", file=sys.stderr)

    first = results[0]
    what = f"recipe `{args.recipe}`" if args.recipe else f"preset `{args.preset}`"
    header = ["precision", "s / iteration (median)", "runs", "images / s", "vs fp32", "peak RSS",
              "data prep / batch (1 process)"]
    fp32 = next((r["median"] for r in results if r["precision"] == "fp32"), None)
    rows = []
    for r in results:
        runs = f"{min(r['times']):.2f}-{max(r['times']):.2f} s ({len(r['times'])} kept, {r['discarded']} discarded)"
        ratio = f"{fp32 / r['median']:.2f}x" if fp32 else "-"
        rows.append([r["precision"], f"**{r['median']:.2f} s**", runs, f"{r['batch'] / r['median']:.1f}", ratio,
                     f"{r['rss_mb'] / 1000:.2f} GB", f"{r['data']:.3f} s"])
    lines = [
        "# Training speed (`benchmarks/train_speed.py`)",
        "",
        f"- machine: {machine_line()}",
        f"- model: {what}, {first['params']:,} parameters; batch {first['batch']}, LR patch {first['patch']} "
        f"(HR {first['patch'] * first['scale']}); {first['threads']} torch threads",
        "- step: `Trainer.step` = autocast forward + L1 + backward + Adam + EMA (drop-path 0.1, fused/bmm attention); "
        f"median of {args.repeat} after {args.warmup} warm-up steps, fresh process per precision, "
        "disturbed runs discarded",
        "",
        markdown_table(header, rows),
        "",
    ]
    if fp32 and len(results) > 1:
        bf16 = next((r["median"] for r in results if r["precision"] == "bf16"), None)
        if bf16:
            lines.append(f"bf16 / fp32 time ratio: **{bf16 / fp32:.2f}** (bf16 is {fp32 / bf16:.2f}x as fast).")
            lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
