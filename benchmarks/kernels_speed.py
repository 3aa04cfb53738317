"""The compiled element-wise kernels (``swinir.kernels``) against PyTorch: each kernel alone, then restores.

Kernels alone, at the shapes of one chunk of SwinIR-M's windows (embed 180, 6 heads, window 8: rows of 64
logits), for a chunk of 2,048 tokens and for the default chunk (4,096 tokens per thread):

* softmax of the bf16 logits (windows * heads, 64, 64) in place, against ``logits.softmax(-1)``;
* LayerNorm of bf16 tokens (tokens, 180) to bf16 (what bf16 inference has: the feature map is bf16 under
  CPU autocast), against ``F.layer_norm``; and of fp32 tokens to bf16, against ``F.layer_norm(...).to(bf16)``.

Each figure is the median of ``--repeat`` undisturbed timings (``_common.timed``) of 100 calls, per call.
Then ``swinir.restore(model, x, precision="bf16")`` for SwinIR-M x2 (seeded random weights) at each LR
size: with ``SWINIR_NO_KERNELS=1`` (PyTorch), with the kernels on threads started per call, and with the
kernels on torch's own OpenMP threads (the default); the three interleaved call by call (this machine's
speed drifts over minutes), ``--repeat`` rounds, medians of undisturbed calls.

    python benchmarks/kernels_speed.py               # writes benchmarks/results/kernels.md
    python benchmarks/kernels_speed.py --quick       # the kernels alone, and 64x64 restores
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/kernels_speed.py --form avx2 --out benchmarks/results/kernels_avx2.md
                                                     # both sides as on a CPU with AVX2 only (oneDNN's matmuls aside)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

import swinir
from _common import machine_line, markdown_table, timed
from swinir import kernels
from swinir.presets import get_preset
from swinir.windowed import TOKENS_PER_THREAD

RESULTS = Path(__file__).resolve().parent / "results" / "kernels.md"
EMBED, HEADS, N = 180, 6, 64  # SwinIR-M: channels, heads, tokens per window
CALLS = 100  # kernel calls per timing
MODES = ("pytorch", "own threads", "torch threads")  # see kernels_mode
DISTURBED: list[int] = []  # per timing: calls kept although other processes were busy (retries exhausted)


def per_call(fn: Callable[[], object], repeat: int) -> float:
    """Microseconds per call of ``fn``: the median of ``repeat`` undisturbed timings of ``CALLS`` calls (each
    result dropped before the next call, as in inference, so the allocator reuses its memory)."""

    def calls() -> None:
        for _ in range(CALLS):
            fn()

    return _median(calls, repeat) / CALLS * 1e6


def _median(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median seconds of ``repeat`` undisturbed calls (``_common.timed``), counting disturbed ones kept."""
    timing = timed(fn, repeat=repeat, warmup=warmup)
    DISTURBED.append(timing.disturbed_kept)
    return timing.median


def kernel_rows(tokens: int, repeat: int) -> list[list[str]]:
    """One row per kernel at a chunk of ``tokens`` tokens: PyTorch's time, the kernel's, the ratio."""
    torch.manual_seed(0)
    logits = (torch.randn(tokens // N * HEADS, N, N) * 3).bfloat16()
    x, weight, bias = torch.randn(tokens, EMBED), torch.randn(EMBED), torch.randn(EMBED)
    x16 = x.bfloat16()
    work = logits.clone()  # the kernel overwrites: a softmax of a softmax costs the same
    cases = [
        ("softmax, bf16 logits", lambda: logits.softmax(-1), lambda: kernels.softmax_(work)),
        ("LayerNorm bf16 -> bf16", lambda: F.layer_norm(x16, (EMBED,), weight, bias),
         lambda: kernels.layer_norm_bf16(x16, weight, bias, 1e-5)),
        ("LayerNorm fp32 -> bf16", lambda: F.layer_norm(x, (EMBED,), weight, bias).to(torch.bfloat16),
         lambda: kernels.layer_norm_bf16(x, weight, bias, 1e-5)),
    ]
    rows = []
    for name, torch_fn, kernel_fn in cases:
        base, kernel = per_call(torch_fn, repeat), per_call(kernel_fn, repeat)
        rows.append([f"{tokens:,}", name, f"{base:.0f} us", f"{kernel:.0f} us", f"{base / kernel:.2f}x"])
        print(" | ".join(rows[-1]), flush=True)
    return rows


@contextlib.contextmanager
def kernels_mode(mode: str) -> Iterator[None]:
    """``mode``: "pytorch" (``SWINIR_NO_KERNELS=1``), "own threads" or "torch threads" (the kernels, on
    threads started per call or on torch's OpenMP threads); the environment and the default restored after."""
    previous = os.environ.pop(kernels.DISABLE_ENV, None)
    if mode == "pytorch":
        os.environ[kernels.DISABLE_ENV] = "1"
    kernels.share_torch_threads(mode != "own threads")
    try:
        yield
    finally:
        kernels.share_torch_threads(True)
        os.environ.pop(kernels.DISABLE_ENV, None)
        if previous is not None:
            os.environ[kernels.DISABLE_ENV] = previous


def restore_rows(sizes: list[int], repeat: int) -> list[list[str]]:
    """One row per size: bf16 restore seconds in each of ``MODES``, the calls interleaved (mode after mode,
    ``repeat`` rounds: this machine's speed drifts by 10 % over minutes), medians and speed-ups."""
    rows = []
    for size in sizes:
        torch.manual_seed(0)
        model = get_preset("classical_sr_x2").config.build().eval()
        x = torch.rand(1, 3, size, size)
        run = functools.partial(swinir.restore, model, x, precision="bf16")
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for round_ in range(repeat + 1):  # the first round warms up
            for mode in MODES:
                with kernels_mode(mode):
                    seconds = _median(run, 1, warmup=0)
                if round_:
                    times[mode].append(seconds)
        base = statistics.median(times["pytorch"])
        medians = [statistics.median(times[mode]) for mode in MODES[1:]]
        cells = [f"{base:.3f} s", *(f"{m:.3f} s ({base / m:.2f}x)" for m in medians)]
        rows.append([f"{size}x{size}", *cells])
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[192, 256])
    parser.add_argument("--quick", action="store_true", help="64x64 restores only")
    parser.add_argument("--form", choices=kernels.ISA_NAMES, help="a narrower form of the kernels than the CPU's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if kernels.library() is None:
        raise SystemExit("swinir's kernels are not built or are switched off: reinstall (pip install -e .) "
                         f"with a C compiler present, and unset {kernels.DISABLE_ENV}")
    if args.form:
        kernels.instruction_set(args.form)
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    chunk = TOKENS_PER_THREAD * torch.get_num_threads()
    micro = [row for tokens in sorted({2048, chunk}) for row in kernel_rows(tokens, args.repeat)]
    sizes = [64] if args.quick else args.sizes
    whole = restore_rows(sizes, args.repeat)
    text = "\n".join([
        "# Compiled element-wise kernels (`benchmarks/kernels_speed.py`)",
        "",
        f"- machine: {machine_line()}",
        f"- kernels: `{kernels.instruction_set()}` form, {torch.get_num_threads()} threads (torch's OpenMP "
        f"threads: {kernels.share_torch_threads()}); PyTorch's kernels: "
        f"{torch.backends.cpu.get_cpu_capability()}; started {started}",
        f"- kernels alone: per call, median of {args.repeat} undisturbed timings of {CALLS} calls; shapes of one "
        f"chunk of SwinIR-M's windows ({HEADS} heads, rows of {N} logits; {EMBED} channels)",
        "",
        markdown_table(["chunk tokens", "work", "PyTorch", "kernel", "speed-up"], micro, "llrrr"),
        "",
        f"- `swinir.restore(model, x, precision=\"bf16\")`, SwinIR-M x2 (`classical_sr_x2`, seeded random "
        f"weights), median of {args.repeat} undisturbed calls each, the three interleaved call by call; "
        f"PyTorch: `{kernels.DISABLE_ENV}=1`; in brackets: "
        "speed-up over PyTorch",
        "",
        markdown_table(["LR", "PyTorch", "kernels, own threads", "kernels, torch's threads"], whole, "lrrr"),
        "",
        f"- calls kept although other processes were busy (after 20 retries): {sum(DISTURBED)}",
        "",
    ])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
