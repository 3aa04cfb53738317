"""Inference speed on this machine: the three attention implementations, fp32 and bf16.

For each preset and LR size, one forward pass of a seeded random model (``torch.inference_mode``), timed with
``_common.timed`` (median of ``--repeat`` calls the rest of the machine left alone) for:

* ``reference``: ``attention="reference"``, the reference code's arithmetic (the baseline);
* ``sdpa``: cached bias, border-only shift masks, ``F.scaled_dot_product_attention``;
* ``fused``: the default: as ``sdpa``, but ``baddbmm`` + softmax on CPUs (see ``WindowAttention.attend``).

Each is run in fp32 and under bf16 autocast (what ``swinir restore --precision bf16`` does). Ratios are
against the reference fp32 time of the same run; GFLOP/s use the forward's FLOPs as ``FlopCounterMode``
counts them, next to the 2048^3 matmul ceilings measured in the same run.

    python benchmarks/infer_speed.py                 # writes benchmarks/results/infer_speed.md
    python benchmarks/infer_speed.py --quick         # SwinIR-S at 64 only
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch

from _common import forward_flops, machine_line, markdown_table, matmul_ceiling, timed
from swinir.presets import get_preset

RESULTS = Path(__file__).resolve().parent / "results" / "infer_speed.md"
CASES = {"lightweight_sr_x2": (64, 128), "classical_sr_x2": (64, 128)}
ATTENTIONS = ("reference", "sdpa", "fused")


def measure(preset: str, size: int, repeat: int) -> tuple[int, dict[tuple[str, str], float]]:
    """FLOPs of one forward and the median seconds per (attention, precision)."""
    torch.manual_seed(0)
    model = get_preset(preset).config.build().eval()
    x = torch.rand(1, model.in_chans, size, size)
    flops = forward_flops(model, x)
    times = {}
    for attention in ATTENTIONS:
        model.set_attention(attention)
        for precision in ("fp32", "bf16"):

            def run(bf16: bool = precision == "bf16") -> None:
                autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
                with torch.inference_mode(), autocast:
                    model(x)

            times[attention, precision] = timed(run, repeat=repeat, warmup=1).median
    return flops, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="SwinIR-S x2 at 64x64 only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cases = {"lightweight_sr_x2": (64,)} if args.quick else CASES
    ceiling32, ceiling16 = matmul_ceiling(torch.float32), matmul_ceiling(torch.bfloat16)
    header = ["model", "LR", "GFLOP", *(f"{a} {p}" for p in ("fp32", "bf16") for a in ATTENTIONS),
              "fused bf16 GFLOP/s"]
    rows = []
    for preset, sizes in cases.items():
        for size in sizes:
            flops, times = measure(preset, size, args.repeat)
            base = times["reference", "fp32"]
            cells = [f"{times[a, p]:.3f} s ({base / times[a, p]:.2f}x)" for p in ("fp32", "bf16") for a in ATTENTIONS]
            best = flops / times["fused", "bf16"] / 1e9
            rows.append([preset, f"{size}x{size}", f"{flops / 1e9:.1f}", *cells, f"{best:.0f}"])
            print(" | ".join(rows[-1]), flush=True)
    text = "\n".join([
        "# Inference speed (`benchmarks/infer_speed.py`)",
        "",
        f"- machine: {machine_line()}",
        f"- matmul ceilings (2048^3 `torch.mm`, same run): fp32 {ceiling32:.0f} GFLOP/s, bf16 {ceiling16:.0f} GFLOP/s",
        f"- one forward pass, batch 1, seeded random weights; median of {args.repeat} undisturbed calls; "
        "in brackets: speed-up over `reference fp32`",
        "",
        markdown_table(header, rows, "ll" + "r" * (len(header) - 2)),
        "",
    ])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
