"""Compiled element-wise kernels of bf16 CPU inference, with the PyTorch formula wherever they cannot run.

``kernels.c`` (built by ``pip install`` as the optional extension ``swinir._kernels``: plain C, no Python or
torch headers, AVX-512 / AVX2 / scalar chosen at run time) is loaded here with ctypes, which releases the GIL
during a call. Two kernels replace what measured slowest around the matmuls of a Swin block's bf16
inference (``benchmarks/results/kernels.md``): the attention softmax in place, and LayerNorm with the
rounding to bf16 in one pass. Each function takes the kernel only for inputs it was written for (CPU,
contiguous, the right dtypes, no autograd) and otherwise computes the PyTorch formula, so callers need not
check anything. The kernels' threads are torch's own (its OpenMP runtime, where found; see
:func:`share_torch_threads`), as many as ``torch.get_num_threads()``.

The library is skipped when ``SWINIR_NO_KERNELS=1`` (to compare, or to rule it out); when it was not built
(no C compiler at install) the fallback is taken after one logged notice.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

DISABLE_ENV = "SWINIR_NO_KERNELS"
LIBRARY_NAME = "_kernels"  # the extension's module name inside the package (setup.py)
ISA_NAMES = ("scalar", "avx2", "avx512", "avx512bf16")  # kernels.c's forms, by the number swinir_kernels_isa returns

log = logging.getLogger(__name__)


def library_path() -> Path | None:
    """The built library in the package folder (any extension suffix this Python builds), or None."""
    folder = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / (LIBRARY_NAME + suffix)
        if path.is_file():
            return path
    return None


@functools.cache
def _load() -> ctypes.CDLL | None:
    """The library with its functions' signatures declared, sharing torch's threads where it can; None
    (after one notice) when it is absent."""
    path = library_path()
    if path is None:
        log.warning("swinir's compiled kernels were not built (no C compiler when it was installed?): bf16 CPU "
                    "inference uses PyTorch's softmax and LayerNorm instead, a little slower; reinstall with a C "
                    "compiler present to build them (or set %s=1 to silence this)", DISABLE_ENV)
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        log.warning("swinir's compiled kernels at %s could not be loaded (%s): using PyTorch's", path, error)
        return None
    i64, ptr, c_int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    lib.swinir_kernels_isa.argtypes, lib.swinir_kernels_isa.restype = [c_int], c_int
    lib.swinir_kernels_use_openmp.argtypes, lib.swinir_kernels_use_openmp.restype = [ctypes.c_char_p], c_int
    lib.swinir_softmax_bf16.argtypes, lib.swinir_softmax_bf16.restype = [ptr, i64, i64, c_int], c_int
    lib.swinir_layer_norm.argtypes = [ptr, c_int, ptr, i64, i64, ptr, ptr, ctypes.c_float, c_int]
    lib.swinir_layer_norm.restype = c_int
    openmp = torch_openmp_runtime()
    lib.swinir_kernels_use_openmp(None if openmp is None else str(openmp).encode())
    return lib


def torch_openmp_runtime() -> Path | None:
    """The OpenMP runtime torch's CPU ops run on, as this process has it loaded (read from ``/proc/self/maps``,
    so Linux only): a ``libgomp`` / ``libiomp5`` / ``libomp`` file inside torch's package or its ``torch.libs``
    folder, where torch's parallel backend is OpenMP; None elsewhere."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    package = Path(torch.__file__).resolve().parent
    folders = {package / "lib", package.parent / "torch.libs"}
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        path = Path(fields[-1]) if len(fields) == 6 else None
        if path is not None and path.parent in folders and path.name.startswith(("libgomp", "libiomp5", "libomp")):
            return path
    return None


def library() -> ctypes.CDLL | None:
    """The loaded library, or None where ``SWINIR_NO_KERNELS=1`` or it was not built."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    return _load()


def instruction_set(request: str | None = None) -> str | None:
    """The kernels' form in use (one of ``ISA_NAMES``), None without the library. ``request`` selects
    a narrower form (capped at what the CPU runs; tests use it to check every form on one machine)."""
    lib = library()
    if lib is None:
        return None
    return ISA_NAMES[lib.swinir_kernels_isa(-1 if request is None else ISA_NAMES.index(request))]


def share_torch_threads(enabled: bool = True) -> bool:
    """Share the kernels' rows among torch's own OpenMP threads (the default, where that runtime is found:
    right after one of torch's ops they still spin, waiting for the next, and threads of the kernels' own
    would have to share the cores with them; measured in ``benchmarks/results/kernels.md``), or among
    threads started for each call (``enabled=False``). Returns whether torch's threads are used."""
    lib = library()
    if lib is None:
        return False
    openmp = torch_openmp_runtime() if enabled else None
    return bool(lib.swinir_kernels_use_openmp(None if openmp is None else str(openmp).encode()))


def _kernel_takes(*tensors: Tensor) -> ctypes.CDLL | None:
    """The library, when every tensor is a non-empty contiguous CPU tensor outside autograd; else None."""
    if not all(t.device.type == "cpu" and t.is_contiguous() and t.numel() for t in tensors):
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    return library()


def softmax_(logits: Tensor) -> Tensor:
    """Softmax over the last dimension, in fp32 arithmetic. On bf16 ``logits`` the kernel overwrites them
    and returns them; otherwise (and in the fallback) a new tensor is returned: use the returned one. fp16
    is computed in fp32 and rounded back (fp16's range would overflow the sum)."""
    lib = _kernel_takes(logits) if logits.dtype == torch.bfloat16 else None
    if lib is not None:
        n = logits.shape[-1]
        if lib.swinir_softmax_bf16(logits.data_ptr(), logits.numel() // n, n, torch.get_num_threads()) == 0:
            return logits
    if logits.dtype == torch.float16:
        return logits.softmax(dim=-1, dtype=torch.float32).to(logits.dtype)
    return logits.softmax(dim=-1)


def layer_norm_bf16(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over the last dimension of fp32 or bf16 ``x`` with fp32 ``weight`` and ``bias`` of that
    length, in fp32 arithmetic, rounded to bf16 (to nearest, ties to even): what
    ``F.layer_norm(x, ...).to(torch.bfloat16)`` computes, in one pass."""
    c = x.shape[-1]
    lib = None
    if (x.dtype in (torch.float32, torch.bfloat16) and weight.dtype == bias.dtype == torch.float32
            and weight.shape == bias.shape == (c,)):
        lib = _kernel_takes(x, weight, bias)
    if lib is not None:
        out = torch.empty(x.shape, dtype=torch.bfloat16)
        if lib.swinir_layer_norm(x.data_ptr(), x.dtype == torch.bfloat16, out.data_ptr(), x.numel() // c, c,
                                 weight.data_ptr(), bias.data_ptr(), eps, torch.get_num_threads()) == 0:
            return out
    return F.layer_norm(x, (c,), weight, bias, eps).to(torch.bfloat16)  # bf16 x: PyTorch's fp32 arithmetic too
