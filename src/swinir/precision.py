"""Numeric precision: the one type, what ``auto`` means on this machine, and the autocast that applies it.

``auto`` is the default of restore, eval and serve: bfloat16 where the hardware computes it natively (a CPU
with AVX512-BF16 or AMX, or a CUDA GPU with bf16 support), fp32 elsewhere. bf16 changes the bundled models'
PSNR by at most 0.02 dB (``tests/test_bundled.py``) and runs several times faster where it is native; on a
CPU without those instructions PyTorch emulates it and it is slower than fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, get_args

import torch

from .errors import SwinIRError
from .hardware import cpu_has_native_bf16

Precision = Literal["fp32", "bf16", "fp16"]
PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
PRECISION_CHOICES: tuple[str, ...] = get_args(PrecisionChoice)


def resolve_precision(choice: str, device: torch.device | str = "cpu", *, cpu_flags: set[str] | None = None
                      ) -> Precision:
    """The concrete precision of ``choice`` on ``device``: ``auto`` becomes bf16 or fp32 (module docstring)."""
    device = torch.device(device)
    if choice == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16(cpu_flags) else "fp32"
    if choice not in PRECISIONS:
        raise SwinIRError(f"unknown precision {choice!r}: use {', '.join(PRECISION_CHOICES)}")
    if choice == "fp16" and device.type == "cpu":
        raise SwinIRError("fp16 is for CUDA; on a CPU use bf16 (or auto)")
    return choice  # type: ignore[return-value]


@contextlib.contextmanager
def autocast(precision: Precision, device: torch.device | str) -> Iterator[None]:
    """Autocast to bf16/fp16 on ``device``; nothing for fp32."""
    device = torch.device(device)
    if precision == "fp32":
        yield
        return
    if precision not in ("bf16", "fp16"):
        raise SwinIRError(f"unknown precision {precision!r}: use fp32, bf16 or fp16")
    if precision == "fp16" and device.type == "cpu":
        raise SwinIRError("fp16 is for CUDA; on a CPU use bf16")
    with torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16):
        yield
