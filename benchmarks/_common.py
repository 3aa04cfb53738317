"""Shared helpers of the benchmarks: quiet-machine timing, machine facts, FLOP counts, markdown tables.

The machine is shared with other processes. A timed call is only kept when the rest of the machine stayed
idle while it ran: the CPU time the whole machine spent (``/proc/stat``) minus this process's own CPU time
(``getrusage``) must stay under ``BUSY_LIMIT`` CPUs on average. Disturbed calls are repeated.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from swinir.hardware import cpu_flags, cpu_model_name, machine_line  # noqa: F401  (re-exported)

BUSY_LIMIT = 0.15  # CPUs used by other processes, on average over a timed call, above which it is repeated
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU seconds (all CPUs) the machine has spent outside idle/iowait since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def _own_cpu_seconds() -> float:
    """CPU seconds used by this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def other_load(seconds: float = 0.5) -> float:
    """CPUs used by other processes over the next ``seconds``."""
    b0, o0, t0 = _machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    b1, o1, t1 = _machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
    return max(0.0, (b1 - b0) - (o1 - o0)) / (t1 - t0)


def wait_for_quiet(limit: float = BUSY_LIMIT, timeout: float = 900.0) -> float:
    """Sleep until other processes use less than ``limit`` CPUs (or ``timeout`` passes); returns seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if other_load(0.5) < limit:
            return time.perf_counter() - start
    return time.perf_counter() - start


@dataclass
class Timing:
    """Kept timings of one measured function and how many calls were discarded as disturbed."""

    times: list[float] = field(default_factory=list)
    discarded: int = 0
    disturbed_kept: int = 0  # calls kept although disturbed (retries exhausted)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def timed(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, max_retries: int = 20,
          limit: float = BUSY_LIMIT) -> Timing:
    """Median-ready timings of ``fn``: ``warmup`` untimed calls, then ``repeat`` undisturbed timed calls.

    A call during which other processes used more than ``limit`` CPUs is discarded and repeated after the
    machine is quiet again; after ``max_retries`` discards the disturbed timings are kept (and counted).
    """
    for _ in range(warmup):
        fn()
    result = Timing()
    while len(result.times) < repeat:
        wait_for_quiet(limit, timeout=120)
        b0, o0, t0 = _machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        fn()
        t1 = time.perf_counter()
        b1, o1 = _machine_busy_seconds(), _own_cpu_seconds()
        others = max(0.0, (b1 - b0) - (o1 - o0)) / max(t1 - t0, 1e-3)
        # /proc/stat counts in ticks (10 ms): below ~0.2 s a single stray tick reads as load, so be lenient.
        tolerance = limit + 2 / CLOCK_TICKS / max(t1 - t0, 1e-3)
        if others > tolerance and result.discarded < max_retries:
            result.discarded += 1
            continue
        result.disturbed_kept += others > tolerance
        result.times.append(t1 - t0)
    return result


def matmul_ceiling(dtype: torch.dtype, n: int = 2048, repeat: int = 7) -> float:
    """GFLOP/s of one ``n x n @ n x n`` torch.mm in ``dtype`` (median of ``repeat``)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    t = timed(lambda: torch.mm(a, b), repeat=repeat, warmup=2)
    return 2 * n**3 / t.median / 1e9


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass as :class:`torch.utils.flop_counter.FlopCounterMode` counts them.

    The chunked path's fused oneDNN linear (``swinir.network.linear``) is not an op the counter knows, so the
    count runs with ``F.linear`` in its place (the same arithmetic, the same bounded memory)."""
    from torch.utils.flop_counter import FlopCounterMode

    import swinir.network as network

    fused, network._ONEDNN_LINEAR = network._ONEDNN_LINEAR, None
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            model(x)
    finally:
        network._ONEDNN_LINEAR = fused
    return counter.get_total_flops()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def markdown_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one character per column ('l' or 'r', default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
