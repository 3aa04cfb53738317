"""What this machine is: the CPU's name and instruction-set flags, and what they mean for precision.

One home for these facts, read by ``--precision auto`` (bf16 only where the hardware computes it natively),
by the trainer (the machine recorded in a model's training history) and by the benchmarks (the machine line
quoted with every figure).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess

import torch

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU extensions with native bfloat16 dot products


@functools.cache
def cpu_model_name() -> str:
    """``Model name`` from lscpu (falls back to /proc/cpuinfo, then platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """True where the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX)."""
    return bool(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))


def simd_summary(flags: set[str] | None = None) -> str:
    """The extensions that matter for SwinIR's speed, e.g. ``avx512f, avx512_bf16``."""
    flags = cpu_flags() if flags is None else flags
    simd = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ", ".join(simd) or "no AVX-512"


def machine_summary() -> str:
    """A short description of the CPU for records: name, SIMD extensions, CPUs this process may use."""
    return f"{cpu_model_name()} ({simd_summary()}), {len(os.sched_getaffinity(0))} CPUs"


def device_summary(device: torch.device) -> str:
    """What trains or runs on ``device``, for records: ``cpu`` (the CPU is in :func:`machine_summary`), or
    ``cuda: <the GPU's name>``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return device.type


def machine_line() -> str:
    """One line naming the CPU, its relevant SIMD extensions, cores, RAM, torch and the date."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{machine_summary()}, {mem_gib:.0f} GiB RAM; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )
