"""The compiled element-wise kernels (swinir.kernels): every form this CPU runs against the exact formula
(computed in float64 here), the fallback, the notice when the library is absent, and that the install built it."""

from __future__ import annotations

import logging
import shutil
import sysconfig
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

import swinir
from swinir import kernels
from swinir.presets import get_preset

MIN_NORMAL = 2.0**-126


@pytest.fixture
def lib() -> object:
    """The library, or a skip where it was not built (a machine without a C compiler)."""
    lib = kernels.library()
    if lib is None:
        pytest.skip("swinir's compiled kernels are not built here (no C compiler at install)")
    return lib


@pytest.fixture(params=kernels.ISA_NAMES)
def form(request: pytest.FixtureRequest, lib: object) -> Iterator[str]:
    """Each form of the kernels, where this CPU runs it; the widest again afterwards."""
    if kernels.instruction_set(request.param) != request.param:
        kernels.instruction_set(kernels.ISA_NAMES[-1])
        pytest.skip(f"this CPU does not run the {request.param} form")
    yield request.param
    kernels.instruction_set(kernels.ISA_NAMES[-1])


def bf16_ulp(value: torch.Tensor) -> torch.Tensor:
    """The spacing of bf16 numbers (8 significant bits) at ``value`` (normal numbers)."""
    magnitude = value.double().abs().clamp_min(MIN_NORMAL)
    return torch.exp2(torch.floor(torch.log2(magnitude)) - 7)


def within_one_ulp(out: torch.Tensor, exact: torch.Tensor, smallest: float) -> bool:
    """``out`` within one bf16 spacing of ``exact`` rounded to bf16, and within ``smallest`` anyway."""
    rounded = exact.to(torch.bfloat16).double()
    return bool(((out.double() - rounded).abs() <= bf16_ulp(rounded).clamp_min(smallest)).all())


def logits_cases() -> list[torch.Tensor]:
    """bf16 logits: a window's 64, window 7's 49, lengths off the vector width, odd row counts, a long row,
    masked (-100) and -inf entries, a range wide enough to underflow, and enough rows to use two threads."""
    g = torch.Generator().manual_seed(0)
    cases = [torch.randn(shape, generator=g) * 3 for shape in [(7, 64), (3, 5, 49), (13, 17), (11, 200), (5, 1)]]
    masked = torch.randn(9, 64, generator=g)
    masked[:, 40:] = -100.0
    masked[0, 3] = float("-inf")
    wide = -torch.rand(6, 64, generator=g) * 120
    cases += [masked, wide, torch.randn(2053, 64, generator=g) * 4]
    return [case.bfloat16() for case in cases]


def test_softmax_is_within_one_bf16_ulp_of_the_exact_softmax(form: str) -> None:
    for logits in logits_cases():
        exact = torch.softmax(logits.double(), dim=-1)
        out = kernels.softmax_(logits.clone())
        assert out.dtype == torch.bfloat16 and out.shape == logits.shape
        # exponentials under fp32's smallest normal may be flushed to zero (the AVX2 form does)
        assert within_one_ulp(out, exact, smallest=MIN_NORMAL), f"{form} {tuple(logits.shape)}"
        assert (out.double().sum(-1) - 1).abs().max() <= 2.0**-8, f"{form} {tuple(logits.shape)}"


def test_softmax_works_in_place(lib: object) -> None:
    logits = torch.randn(31, 64).bfloat16()
    out = kernels.softmax_(logits)
    assert out.data_ptr() == logits.data_ptr()


def test_softmax_of_a_nan_row_is_nan(lib: object) -> None:
    logits = torch.zeros(4, 64).bfloat16()
    logits[1, 5] = float("nan")
    out = kernels.softmax_(logits).float()
    assert out[1].isnan().all() and not out[[0, 2, 3]].isnan().any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layer_norm_is_within_one_bf16_ulp_of_the_exact_norm(form: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    for shape in [(5, 180), (3, 7, 60), (9, 37), (4, 8), (2053, 100)]:
        c = shape[-1]
        x = (torch.randn(shape, generator=g) * 4 + 2).to(dtype)
        weight, bias = torch.randn(c, generator=g), torch.randn(c, generator=g)
        exact = F.layer_norm(x.double(), (c,), weight.double(), bias.double(), 1e-5)
        out = kernels.layer_norm_bf16(x, weight, bias, 1e-5)
        assert out.dtype == torch.bfloat16 and out.shape == x.shape
        # outputs near 0 come from cancellation: within the spacing at 2^-10 (2^-17), not their own
        assert within_one_ulp(out, exact, smallest=2.0**-17), f"{form} {dtype} {shape}"


def test_torch_threads_and_own_threads_agree(lib: object) -> None:
    logits = (torch.randn(4099, 64) * 3).bfloat16()
    x, weight, bias = torch.randn(3001, 180), torch.randn(180), torch.randn(180)
    results = []
    for shared in (False, True):
        kernels.share_torch_threads(shared)
        results.append((kernels.softmax_(logits.clone()), kernels.layer_norm_bf16(x, weight, bias, 1e-5)))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_the_fallback_agrees_with_the_kernels(lib: object, monkeypatch: pytest.MonkeyPatch) -> None:
    logits = (torch.randn(3, 6, 64, 64) * 3).bfloat16()
    x, weight, bias = torch.randn(77, 180).bfloat16(), torch.randn(180), torch.randn(180)
    fast = kernels.softmax_(logits.clone()), kernels.layer_norm_bf16(x, weight, bias, 1e-5)
    monkeypatch.setenv(kernels.DISABLE_ENV, "1")
    assert kernels.library() is None
    slow = kernels.softmax_(logits.clone()), kernels.layer_norm_bf16(x, weight, bias, 1e-5)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype and ((a.double() - b.double()).abs() <= bf16_ulp(b)).all()


def test_inputs_the_kernels_do_not_take_get_the_pytorch_formula(lib: object) -> None:
    logits = torch.randn(8, 64, 64)
    assert torch.equal(kernels.softmax_(logits.clone()), logits.softmax(-1))  # fp32: PyTorch's softmax
    half = logits.half()
    assert torch.equal(kernels.softmax_(half), half.float().softmax(-1).half())
    strided = logits.bfloat16().transpose(1, 2)  # not contiguous
    assert torch.equal(kernels.softmax_(strided), strided.softmax(-1))
    x = torch.randn(10, 180, requires_grad=True)
    norm = torch.nn.LayerNorm(180)
    out = kernels.layer_norm_bf16(x, norm.weight, norm.bias, norm.eps)  # autograd on: PyTorch's, with a graph
    assert out.grad_fn is not None and torch.equal(out, norm(x).bfloat16())


def test_the_kernels_keep_bf16_inference_as_accurate(lib: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 inference with the kernels is as close to fp32 as without them (measured 2026-12-06 on three
    seeds: max 0.0108-0.0127 against 0.0107-0.0125, mean squared 8.2e-6-9.7e-6 against 8.2e-6-9.5e-6)."""
    torch.manual_seed(0)
    model = get_preset("lightweight_sr_x2").config.build().eval()
    x = torch.rand(1, 3, 24, 24)
    exact = swinir.restore(model, x, clamp=False).double()
    fast = swinir.restore(model, x, precision="bf16", clamp=False).double() - exact
    monkeypatch.setenv(kernels.DISABLE_ENV, "1")
    slow = swinir.restore(model, x, precision="bf16", clamp=False).double() - exact
    assert not torch.equal(fast, slow)  # the kernels did run
    assert fast.abs().max() < 1.15 * slow.abs().max() and fast.pow(2).mean() < 1.1 * slow.pow(2).mean()


def test_without_the_library_one_notice_and_the_fallback(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(kernels.DISABLE_ENV, raising=False)
    monkeypatch.setattr(kernels, "library_path", lambda: None)
    kernels._load.cache_clear()
    try:
        logits = torch.randn(5, 64).bfloat16()
        with caplog.at_level(logging.WARNING, logger="swinir.kernels"):
            first, second = kernels.softmax_(logits.clone()), kernels.softmax_(logits.clone())
        assert torch.equal(first, logits.softmax(-1)) and torch.equal(second, first)
        notices = [r for r in caplog.records if r.name == "swinir.kernels"]
        assert len(notices) == 1 and "not built" in notices[0].getMessage()
    finally:
        kernels._load.cache_clear()


def test_the_install_built_the_library_where_a_compiler_is_present() -> None:
    """CI installs with `pip install -e .`: this proves the extension was built and loads."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) here: the package installs without its kernels")
    assert kernels.library_path() is not None, "pip install built no swinir/_kernels library"
    assert kernels._load() is not None
