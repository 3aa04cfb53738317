"""Builds swinir's optional compiled kernels (src/swinir/kernels.c) beside pyproject.toml's metadata.

The library is plain C (no Python or torch headers; swinir.kernels loads it with ctypes). It is optional:
where no C compiler is found, the build step says so and the package installs without it, and swinir
computes the same element-wise work with PyTorch.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

POSIX = sys.platform != "win32"  # elsewhere the build is tried with the compiler's defaults (and may fail: optional)

setup(
    ext_modules=[
        Extension(
            "swinir._kernels",
            sources=["src/swinir/kernels.c"],
            depends=["src/swinir/kernels_avx512.h"],
            extra_compile_args=["-O3", "-fno-math-errno", "-pthread"] if POSIX else [],
            extra_link_args=["-pthread", "-lm", "-ldl"] if POSIX else [],
            optional=True,
        )
    ]
)
