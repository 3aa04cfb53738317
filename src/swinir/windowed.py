"""Inference of Swin layers one chunk of windows at a time, so that no intermediate grows with the image.

A Swin block is per-window attention followed by a per-token MLP, with residual connections around both.
Every token of a window depends only on the tokens of that window, so a whole block (norm, attention, MLP,
both residuals) can be computed for a few windows at a time and written back in place:

1. gather the tokens of a chunk of windows straight from the (B, H, W, C) feature map, the cyclic shift of
   odd blocks folded into the gather index (no ``torch.roll``, no window partition/reverse copies);
2. run the block on them (:meth:`swinir.network.SwinTransformerBlock.forward_windows`: the block's own
   arithmetic, which this module never repeats; the logits of a chunk stay small: ``windows x heads x N x N``);
3. scatter the result back into the same positions (the chunks are disjoint, so in place is safe).

This module only lays out windows and chunks: it knows a block through :class:`ChunkedBlock` (what
``network`` provides), so it imports nothing from ``network``. The feature map is read and written once
per block, and the largest temporary is bounded by the chunk, not the image: the working set stays in the
caches and the allocator reuses the same small buffers. Used only without autograd (inference, on every
device); training keeps the whole-map path, whose gradients the tests compare with the reference
arithmetic. Results equal the whole-map path to float rounding (the tests check every oracle case, with
chunks that split the windows unevenly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

TOKENS_PER_THREAD = 4096  # chunk size per intra-op thread: fastest measured, 2026-12-06 (Xeon with AMX, 2 threads,
# bf16, SwinIR-M x2 192px: 2.22 s at 1,024, 1.84 at 2,048, 1.63 at 4,096, 1.52 at 8,192, 1.94 at 16,384 tokens)
DEFAULT_CHUNK_TOKENS = -1  # "auto": TOKENS_PER_THREAD x torch's thread count at call time


class ChunkedBlock(Protocol):
    """What chunked inference needs of a Swin block (``swinir.network.SwinTransformerBlock`` has it)."""

    window_size: int
    shift_size: int

    def window_biases(self, dtype: torch.dtype) -> Tensor:
        """(1 + 3 if shifted, heads, N, N): the logits' additive term of an inner window, then of a window in
        the bottom row, the right column and the corner (bias plus shift mask)."""
        ...

    def forward_windows(self, tokens: Tensor, add: Tensor) -> Tensor:
        """The block on whole windows' tokens (windows * N, C), ``add`` (windows * heads, N, N) the logits'
        additive term of each window and head."""
        ...


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
def run_blocks_chunked(blocks: Sequence[ChunkedBlock], x: Tensor, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
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


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype the block's matmuls produce: autocast's where it is on for ``x``'s device, else ``x``'s."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _block_chunked(block: ChunkedBlock, flat: Tensor, index: Tensor, patterns: Tensor | None,
                   per_chunk: int) -> None:
    """One block over every chunk of windows. The logits' additive term is the bias alone for chunks of
    inner windows (one expanded copy per block, sliced), and gathered per window where a chunk holds windows
    of the shifted border."""
    n = index.shape[1]
    biases = block.window_biases(compute_dtype(flat))  # (patterns, heads, N, N)
    heads = biases.shape[1]
    inner = biases[0].expand(min(per_chunk, index.shape[0]), heads, n, n).reshape(-1, n, n)
    for start in range(0, index.shape[0], per_chunk):
        rows = index[start : start + per_chunk].reshape(-1)
        windows = rows.numel() // n
        add = inner[: windows * heads]
        if patterns is not None:
            chunk_patterns = patterns[start : start + per_chunk]
            if bool((chunk_patterns >= 0).any()):
                add = biases.index_select(0, chunk_patterns + 1).view(-1, n, n)
        tokens = block.forward_windows(flat.index_select(0, rows), add)
        flat.index_copy_(0, rows, tokens.to(flat.dtype))
