"""Allocator settings for long-running work: keep freed memory for reuse instead of handing it back.

glibc's malloc serves requests above its mmap threshold (at most 32 MB) with fresh ``mmap`` pages and
returns them to the kernel on ``free``. A network forward allocates and frees image-sized activations
over and over, so every call pays for zeroed pages again: page faults and system time that measured more
than half of the wall time of a real photo before the chunked blocks (:mod:`swinir.windowed`) bounded the
temporaries. Large feature maps remain (a SwinIR-M 256x256 map is 47 MB), so the commands that run networks
(``swinir restore``, ``eval``, ``serve``, ``train``) call :func:`tune_allocator` at their start: large blocks
come from the heap and freed memory stays there for the next call. It is never done on ``import swinir``:
a library must not change its host process's allocator behind its back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
KEEP_FREED_BYTES = 1 << 30  # free memory at the top of the heap kept for reuse before trimming


@functools.cache
def tune_allocator() -> bool:
    """Serve large allocations from the heap and keep up to 1 GiB of freed memory (glibc only).

    Returns whether the settings were applied (False on other C libraries, or with ``SWINIR_NO_MALLOPT=1``).
    """
    if os.environ.get("SWINIR_NO_MALLOPT") == "1":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
