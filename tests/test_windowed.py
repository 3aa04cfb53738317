"""Chunked inference of Swin blocks (swinir.windowed) against the whole-map path and the window layout."""

from __future__ import annotations

import pytest
import torch

import swinir
from swinir.network import window_partition
from swinir.windowed import border_patterns, run_blocks_chunked, window_token_index


@pytest.mark.parametrize(("h", "w", "ws", "shift"), [(16, 24, 8, 0), (16, 24, 8, 4), (21, 14, 7, 3)])
def test_token_index_is_roll_then_window_partition(h: int, w: int, ws: int, shift: int) -> None:
    batch = 2
    positions = torch.arange(batch * h * w, dtype=torch.float64).view(batch, h, w, 1)
    rolled = torch.roll(positions, shifts=(-shift, -shift), dims=(1, 2))
    expected = window_partition(rolled, ws)[..., 0].long()
    assert torch.equal(window_token_index(batch, h, w, ws, shift, torch.device("cpu")), expected)


def test_border_patterns_mark_the_last_row_column_and_corner() -> None:
    assert border_patterns(1, 2, 3, torch.device("cpu")).tolist() == [-1, -1, 1, 0, 0, 2]


@pytest.mark.parametrize("config", [
    {"upscale": 2, "img_size": 16, "window_size": 8, "depths": (2, 2), "embed_dim": 12, "num_heads": (2, 3),
     "upsampler": "pixelshuffledirect"},
    {"upscale": 1, "in_chans": 1, "img_size": 14, "window_size": 7, "depths": (4,), "embed_dim": 12,
     "num_heads": (2,), "upsampler": "", "img_range": 255.0},
])
@pytest.mark.parametrize("tokens", [49, 3 * 64 + 5, -1, 10**6])
def test_chunks_of_any_size_equal_the_whole_map(config: dict, tokens: int) -> None:
    torch.manual_seed(0)
    model = swinir.ModelConfig(**config).build().eval().double()
    for p in model.parameters():
        p.data.normal_(0, 0.2)  # large weights: differences would show
    x = torch.rand(2, model.in_chans, 37, 51, dtype=torch.float64)
    with torch.no_grad():
        whole = model.set_inference_chunk(None)(x)
        chunked = model.set_inference_chunk(tokens)(x)
    assert (chunked - whole).abs().max() < 1e-12


def test_the_layer_input_is_left_intact() -> None:
    model = swinir.ModelConfig(upscale=1, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                               upsampler="").build().eval()
    x = torch.rand(1, 16, 24, 12)
    before = x.clone()
    with torch.no_grad():
        out = run_blocks_chunked(model.layers[0].residual_group.blocks, x, 64)
    assert torch.equal(x, before) and not torch.equal(out, x)


def test_training_keeps_the_whole_map_path_and_its_gradients() -> None:
    torch.manual_seed(0)
    model = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                               upsampler="pixelshuffledirect").build()
    x = torch.rand(1, 3, 16, 24)
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_inference_chunk(None)(x).sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, model.parameters(), strict=True))


def test_chunked_inference_does_not_import_the_network() -> None:
    """The chunk loop knows a block only through its protocol: no import of swinir.network, even for types."""
    import ast
    from pathlib import Path

    import swinir.windowed as windowed

    tree = ast.parse(Path(windowed.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m and m.endswith("network") for m in imported)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_paths_agree_with_fp32(precision: str) -> None:
    """On a GPU: chunked inference equals the whole-map (SDPA) path in fp32, and the half precisions stay close."""
    torch.manual_seed(0)
    model = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2, 2), embed_dim=12,
                               num_heads=(2, 3), upsampler="pixelshuffledirect").build().eval().cuda()
    x = torch.rand(1, 3, 40, 56, device="cuda")
    with torch.no_grad():
        whole = model.set_inference_chunk(None)(x)
        chunked = model.set_inference_chunk(-1)(x)
    assert (chunked - whole).abs().max() < 1e-4
    exact = swinir.restore(model, x, precision="fp32")
    half = swinir.restore(model, x, precision=precision)
    assert (half - exact).abs().max() < 2e-2


@pytest.mark.parametrize("gelu", [False, True])
def test_fused_linear_equals_the_formula(gelu: bool) -> None:
    """network.linear (oneDNN with the bias and GELU as post-ops on CPUs) is x W^T + b, then erf-GELU."""
    from swinir.network import linear

    torch.manual_seed(0)
    x, weight, bias = torch.randn(70, 24), torch.randn(36, 24), torch.randn(36)
    expected = x.double() @ weight.double().T + bias.double()
    if gelu:
        expected = 0.5 * expected * (1 + torch.erf(expected / 2**0.5))
    assert (linear(x, weight, bias, gelu=gelu).double() - expected).abs().max() < 1e-4
    half = linear(x, weight.bfloat16(), bias.bfloat16(), gelu=gelu)
    assert half.dtype == torch.bfloat16 and (half.double() - expected).abs().max() < 0.1 * expected.abs().max()


def test_the_fallback_without_onednn_gives_the_same_restore(monkeypatch: pytest.MonkeyPatch) -> None:
    import swinir.network as network

    torch.manual_seed(0)
    model = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                               upsampler="pixelshuffledirect").build().eval()
    x = torch.rand(1, 3, 24, 40)
    fused = swinir.restore(model, x, clamp=False)
    monkeypatch.setattr(network, "_ONEDNN_LINEAR", None)
    assert (swinir.restore(model, x, clamp=False) - fused).abs().max() < 1e-5


def test_bf16_weights_are_converted_once_and_follow_edits() -> None:
    model = swinir.ModelConfig(upscale=1, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                               upsampler="").build().eval()
    block = model.layers[0].residual_group.blocks[0]
    first = block.inference_weights(torch.bfloat16)
    assert first[0].dtype == torch.bfloat16 and block.inference_weights(torch.bfloat16)[0] is first[0]
    with torch.no_grad():
        block.attn.qkv.weight.add_(1.0)  # an in-place edit (e.g. load_state_dict) must not serve stale copies
    again = block.inference_weights(torch.bfloat16)[0]
    assert torch.equal(again, block.attn.qkv.weight.detach().bfloat16())
