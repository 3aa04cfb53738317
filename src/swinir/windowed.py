"""Inference of Swin layers one chunk of windows at a time, so that no intermediate grows with the image.

A Swin block is per-window attention followed by a per-token MLP, with residual connections around both.
Every token of a window depends only on the tokens of that window, so a whole block (norm, attention, MLP,
both residuals) can be computed for a few windows at a time and written back in place:

1. gather the tokens of a chunk of windows straight from the (B, H, W, C) feature map, the cyclic shift of
   odd blocks folded into the gather index (no ``torch.roll``, no window partition/reverse copies);
2. run the block on them (the logits of a chunk stay small: ``windows x heads x N x N``);
3. scatter the result back into the same positions (the chunks are disjoint, so in place is safe).

The feature map is read and written once per block, and the largest temporary (the attention logits, the
MLP's hidden layer) is bounded by the chunk, not the image: the working set stays in the caches and the
allocator reuses the same small buffers, instead of asking the kernel for fresh zeroed pages for
image-sized temporaries on every call. Used only without autograd (inference); training keeps the
whole-map path, whose gradients the tests compare with the reference arithmetic.

The arithmetic is the fused path's (:func:`swinir.network.matmul_window_attention`): results equal the
whole-map path to float rounding (the tests check every oracle case, with chunks that split the windows
unevenly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .network import SwinTransformerBlock

import os

SDPA = os.environ.get('SWINIR_SDPA') == '1'
TOKENS_PER_THREAD = 1024  # chunk size per intra-op thread: fastest measured (benchmarks/infer_speed.py)
DEFAULT_CHUNK_TOKENS = -1  # "auto": TOKENS_PER_THREAD x torch's thread count at call time


def window_token_index(batch: int, h: int, w: int, ws: int, shift: int, device: torch.device) -> Tensor:
    """(batch * nW, ws * ws) indices into the flattened (batch * h * w) tokens, window by window.

    Windows are in row-major order per image, tokens row-major within a window, exactly as
    ``window_partition(torch.roll(x, (-shift, -shift), (1, 2)), ws)`` orders them.
    """
    rows = (torch.arange(h, device=device) + shift) % h
    cols = (torch.arange(w, device=device) + shift) % w
    grid = rows.view(h // ws, ws, 1, 1) * w + cols.view(1, 1, w // ws, ws)  # (nh, ws, nw, ws)
    per_image = grid.permute(0, 2, 1, 3).reshape(-1, ws * ws)  # (nW, N)
    offsets = torch.arange(batch, device=device).view(batch, 1, 1) * (h * w)
    return (per_image.unsqueeze(0) + offsets).reshape(-1, ws * ws)


def border_patterns(batch: int, nh: int, nw: int, device: torch.device) -> Tensor:
    """(batch * nW,) mask pattern of each window of a shifted block: -1 none, 0 bottom row, 1 right column,
    2 the corner (the order of :func:`swinir.network.border_mask_patterns`)."""
    pattern = torch.full((nh, nw), -1, dtype=torch.long, device=device)
    pattern[-1, :-1] = 0
    pattern[:-1, -1] = 1
    pattern[-1, -1] = 2
    return pattern.reshape(-1).repeat(batch)


def chunk_windows(window_size: int, chunk_tokens: int) -> int:
    """Windows per chunk for a token budget (at least one window); a negative budget means "auto"."""
    if chunk_tokens < 0:
        chunk_tokens = TOKENS_PER_THREAD * torch.get_num_threads()
    return max(1, chunk_tokens // (window_size * window_size))


@torch.no_grad()
def run_blocks_chunked(blocks: Sequence[SwinTransformerBlock], x: Tensor, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
                       ) -> Tensor:
    """The blocks of one Swin layer on ``x`` (B, H, W, C), chunk by chunk; returns a new tensor."""
    b, h, w, c = x.shape
    out = x.contiguous().clone()  # the layer's input stays intact: the RSTB adds it back after its conv
    flat = out.view(-1, c)
    indices: dict[int, Tensor] = {}
    for block in blocks:
        ws, shift = block.window_size, block.shift_size
        if shift not in indices:
            indices[shift] = window_token_index(b, h, w, ws, shift, x.device)
        patterns = border_patterns(b, h // ws, w // ws, x.device) if shift else None
        _block_chunked(block, flat, indices[shift], patterns, chunk_windows(ws, chunk_tokens))
    return out


def _block_chunked(block: SwinTransformerBlock, flat: Tensor, index: Tensor, patterns: Tensor | None,
                   per_chunk: int) -> None:
    attn = block.attn
    n = index.shape[1]
    heads, dim = attn.num_heads, flat.shape[1]
    bias = attn.relative_position_bias()
    masks = block.border_masks if patterns is not None else None
    for start in range(0, index.shape[0], per_chunk):
        rows = index[start : start + per_chunk].reshape(-1)
        windows = rows.numel() // n
        shortcut = flat.index_select(0, rows)
        q, k, v = attn.qkv(block.norm1(shortcut)).view(windows, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        logits = torch.matmul(q * attn.scale, k.transpose(-2, -1))
        logits += bias.to(logits.dtype)
        if patterns is not None:
            chunk_patterns = patterns[start : start + per_chunk]
            masked = torch.nonzero(chunk_patterns >= 0).squeeze(1)
            if masked.numel():
                logits[masked] += masks.to(logits.dtype)[chunk_patterns[masked]].unsqueeze(1)
        mixed = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(windows * n, dim)
        tokens = shortcut + attn.proj(mixed)
        tokens = tokens + block.mlp(block.norm2(tokens))
        flat.index_copy_(0, rows, tokens.to(flat.dtype))
