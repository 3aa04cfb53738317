"""The SwinIR network (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", 2021).

Three parts: a 3x3 conv for shallow features; deep features from Residual Swin Transformer Blocks (RSTB),
each a stack of Swin Transformer layers with window attention (alternately shifted windows, relative
position bias) followed by a conv and a residual connection; and a reconstruction head (pixel shuffle for
super-resolution, a conv plus the image itself for denoising and JPEG artifact reduction).

Module names and parameter shapes are those of the reference implementation, so the authors' checkpoints
load with ``load_state_dict(..., strict=True)``. Two kinds of reference buffers are *derived* from the
config (``relative_position_index`` in every block, ``attn_mask`` in shifted blocks, the latter shaped by
the training ``img_size``); here they are computed, never stored: when a reference state dict carries them
they are checked for consistency and dropped (see :func:`_drop_derived_buffers`).

Attention has three implementations, chosen per model with ``attention=``:

* ``"fused"`` (default): the relative-position bias is gathered once (cached while the table is unchanged).
  The shift mask of a shifted block is never a tensor over all windows: only the last row and the last
  column of windows straddle the wrapped-around border, and they take one of three cached patterns.
  Inference (no autograd, on every device) runs each layer's blocks one chunk of windows at a time
  (:mod:`swinir.windowed`) through :meth:`SwinTransformerBlock.forward_windows`: one ``baddbmm`` for the
  scaled logits plus bias and mask, softmax, one ``bmm``. With autograd (training) the blocks run on the
  whole map: on CPUs the logits are one matmul with the bias and masks added
  (:func:`matmul_window_attention`); on GPUs ``F.scaled_dot_product_attention`` with the border windows
  attended again with their masks (:func:`sdpa_window_attention`). Nothing cached grows with the image.
  (Whether SDPA would beat the chunked path for CUDA inference has not been measured: no GPU was lent yet.)
* ``"sdpa"``: always :func:`sdpa_window_attention`, on the whole map (to compare kernels on other hardware,
  e.g. CPUs with AMX; ``benchmarks/infer_speed.py`` measures all three).
* ``"reference"``: the arithmetic of the reference code (explicit ``q @ k^T``, softmax, the bias gathered
  and the mask built on every call). It is the baseline the benchmarks compare against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from . import kernels
from .windowed import DEFAULT_CHUNK_TOKENS, run_blocks_chunked

Upsampler = Literal["pixelshuffle", "pixelshuffledirect", "nearest+conv", ""]
ResiConnection = Literal["1conv", "3conv"]
Attention = Literal["fused", "sdpa", "reference"]
ATTENTIONS: tuple[str, ...] = ("fused", "sdpa", "reference")

UPSAMPLERS: tuple[str, ...] = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")
RESI_CONNECTIONS: tuple[str, ...] = ("1conv", "3conv")
RGB_MEAN = (0.4488, 0.4371, 0.4040)
MASK_VALUE = -100.0  # the reference fills cross-region pairs with -100, not -inf
NUM_FEAT = 64  # width of the reconstruction head of the reference


# --------------------------------------------------------------------------------------------------
# Pure functions: window layout, relative positions, shift masks, attention.
# --------------------------------------------------------------------------------------------------


def window_partition(x: Tensor, ws: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, ws*ws, C), windows in row-major order within each image."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).transpose(2, 3)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws*ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> Tensor:
    """(ws², ws²) index into the (2ws-1)² bias table for every pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


def shift_region_labels(n: int, ws: int, shift: int) -> Tensor:
    """Region label (0, 1, 2) of each of ``n`` rows (or columns) after a cyclic shift by ``shift``.

    Rows ``[0, n-ws)`` are region 0, ``[n-ws, n-shift)`` region 1, ``[n-shift, n)`` region 2: the last
    window holds pixels that were neighbours before the shift and pixels that wrapped around.
    """
    labels = torch.zeros(n, dtype=torch.long)
    labels[n - ws : n - shift] = 1
    labels[n - shift :] = 2
    return labels


def shift_attention_mask(h: int, w: int, ws: int, shift: int) -> Tensor:
    """The reference's (nW, ws², ws²) mask for an (h, w) feature map: 0 within a region, -100 across.

    Used by the reference-faithful path and to check masks stored in reference checkpoints.
    """
    labels = shift_region_labels(h, ws, shift)[:, None] * 3 + shift_region_labels(w, ws, shift)[None, :]
    windows = window_partition(labels[None, :, :, None].float(), ws).squeeze(-1)  # (nW, N)
    differs = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(differs.shape).masked_fill(differs, MASK_VALUE)


def border_mask_patterns(ws: int, shift: int) -> Tensor:
    """(3, ws², ws²) masks of the windows in the last row, last column and the corner of a shifted map.

    Every other window lies in one region and needs no mask, whatever the image size.
    """
    full = shift_attention_mask(2 * ws, 2 * ws, ws, shift)  # windows: 0 inner, 1 right, 2 bottom, 3 corner
    return full[[2, 1, 3]]


def full_shift_mask(border_masks: Tensor, rows: int, cols: int) -> Tensor:
    """(rows*cols, N, N) shift mask of a rows x cols window grid from the three border patterns (zeros inside)."""
    n = border_masks.shape[-1]
    full = border_masks.new_zeros(rows, cols, n, n)
    full[-1, :-1] = border_masks[0]
    full[:-1, -1] = border_masks[1]
    full[-1, -1] = border_masks[2]
    return full.view(rows * cols, n, n)


def reference_window_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: Tensor | None) -> Tensor:
    """Attention as the reference computes it: softmax(q k^T + bias (+ mask)) v, q already scaled.

    ``q, k, v``: (B*nW, heads, N, d); ``bias``: (heads, N, N); ``mask``: (nW, N, N) or None.
    """
    attn = q @ k.transpose(-2, -1) + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(-1, nw, *attn.shape[1:]) + mask[None, :, None]
        attn = attn.view(-1, *attn.shape[2:])
    return attn.softmax(dim=-1) @ v


WindowGrid = tuple[int, int, int]  # (batch, window rows, window columns) of a (B*nW, ...) window batch


def matmul_window_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, border_masks: Tensor | None,
                            grid: WindowGrid, scale: float, dropout: float = 0.0) -> Tensor:
    """softmax(scale q k^T + bias (+ shift mask)) v with plain matmuls, the logits written once.

    ``q, k, v``: (B*nW, heads, N, d); ``bias``: (heads, N, N). ``border_masks`` (3, N, N): the bottom-row,
    right-column and corner masks of a shifted block (see :func:`border_mask_patterns`), added in place to
    those windows' logits only; None for an unshifted block.
    """
    attn = torch.matmul(q * scale, k.transpose(-2, -1))
    if torch.is_grad_enabled() and attn.requires_grad:
        # Autograd: one out-of-place add of bias + mask over all windows. In-place adds on slices of the
        # logits would each copy the whole logits gradient back (CopySlices); the full mask is small here
        # (training crops are a few windows across).
        b, rows, cols = grid
        add = bias.to(attn.dtype)
        if border_masks is not None:
            add = add + full_shift_mask(border_masks, rows, cols).to(attn.dtype)[:, None]  # (nW, heads, N, N)
        attn = (attn.view(b, rows * cols, *attn.shape[1:]) + add).view(attn.shape)
    else:
        attn += bias.to(attn.dtype)
        if border_masks is not None:
            masks = border_masks.to(attn.dtype)[:, None]  # (3, 1, N, N): broadcast over heads
            logits = attn.view(*grid, *attn.shape[1:])
            logits[:, -1, :-1] += masks[0]
            logits[:, :-1, -1] += masks[1]
            logits[:, -1, -1] += masks[2]
    attn = attn.softmax(dim=-1)
    if dropout:
        attn = F.dropout(attn, dropout)
    return attn @ v


def sdpa_window_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, border_masks: Tensor | None,
                          grid: WindowGrid, scale: float, dropout: float = 0.0) -> Tensor:
    """As :func:`matmul_window_attention`, through ``F.scaled_dot_product_attention``: all windows with the
    bias alone, then the windows of the last row and column again with their shift mask."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout, scale=scale)
    if border_masks is None:
        return out
    b, nh, nw = grid
    dev = q.device
    local = torch.cat([(nh - 1) * nw + torch.arange(nw, device=dev), torch.arange(nh - 1, device=dev) * nw + nw - 1])
    pattern = torch.cat([torch.zeros(nw - 1, dtype=torch.long, device=dev), torch.tensor([2], device=dev),
                         torch.ones(nh - 1, dtype=torch.long, device=dev)])  # 0: bottom, 1: right, 2: corner
    index = (torch.arange(b, device=dev)[:, None] * (nh * nw) + local).reshape(-1)
    masks = (bias.unsqueeze(0) + border_masks.to(bias.dtype)[:, None])[pattern].repeat(b, 1, 1, 1)
    sub = F.scaled_dot_product_attention(q[index], k[index], v[index], attn_mask=masks.to(q.dtype),
                                         dropout_p=dropout, scale=scale)
    return out.index_copy(0, index, sub)


# oneDNN's linear with post-ops (what inductor's CPU backend calls): the bias, and GELU, applied inside the
# matmul instead of as separate passes over the output. Measured on SwinIR-M blocks (2,048 tokens x 180,
# bf16, Xeon with AMX, 2 threads): 121 us against 170 us for F.linear; with GELU 226 us against two passes.
_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, *, gelu: bool = False) -> Tensor:
    """``x W^T + b`` (then exact GELU when ``gelu``), in ``weight``'s dtype: ``x`` is cast to it.

    On a CPU with fp32 or bf16 weights this is one oneDNN call with the bias and GELU fused as post-ops;
    elsewhere (CUDA, float64, no bias) ``F.linear`` and ``F.gelu``. Inference only: it has no autograd rule.
    """
    x = x.to(weight.dtype)
    if (_ONEDNN_LINEAR is not None and bias is not None and x.device.type == "cpu"
            and weight.dtype in (torch.float32, torch.bfloat16)):
        return _ONEDNN_LINEAR(x, weight, bias, "gelu" if gelu else "none", [], "none" if gelu else "")
    out = F.linear(x, weight, bias)
    return F.gelu(out) if gelu else out


def inference_norm(norm: nn.LayerNorm, x: Tensor, dtype: torch.dtype) -> Tensor:
    """``norm(x)`` ready for a linear layer computing in ``dtype``: before bf16 matmuls, fp32 or bf16 tokens
    are normalised and rounded to bf16 in one pass (:func:`swinir.kernels.layer_norm_bf16`). Inference only."""
    if dtype == torch.bfloat16 and x.dtype in (torch.float32, torch.bfloat16):
        return kernels.layer_norm_bf16(x, norm.weight, norm.bias, norm.eps)
    return norm(x)


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


class Mlp(nn.Module):
    """fc1 -> GELU (exact erf form) -> fc2; dropout is kept for training parity with the reference."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample during training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows, with a learned relative-position bias.

    Args:
        dim: channels of the tokens.
        window_size: side of the square window.
        num_heads: attention heads; ``dim`` must be divisible by it.
        qkv_bias: learn a bias for the q, k, v projections.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection (training only).
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._bias_cache: tuple[tuple, Tensor] | None = None

    def relative_position_bias(self) -> Tensor:
        """(heads, N, N) bias gathered from the table; cached while the table is unchanged and no grad is needed."""
        table = self.relative_position_bias_table
        if (torch.is_grad_enabled() and table.requires_grad) or torch.compiler.is_compiling():
            return self._gather_bias()  # a traced graph (torch.compile, ONNX export) gathers it in the graph
        key = (table._version, table.data_ptr(), table.device, table.dtype)
        if self._bias_cache is None or self._bias_cache[0] != key:
            self._bias_cache = (key, self._gather_bias().detach())
        return self._bias_cache[1]

    def _gather_bias(self) -> Tensor:
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1).contiguous()

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B', N, C) tokens -> q, k, v of shape (B', heads, N, d)."""
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # one stack in backward, where three selects would each zero-fill a full grad
        return q, k, v

    def merge_heads(self, out: Tensor) -> Tensor:
        """(B', heads, N, d) -> projected tokens (B', N, C)."""
        b, h, n, d = out.shape
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, h * d)))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, border_masks: Tensor | None, grid: WindowGrid, *,
               sdpa: bool = False) -> Tensor:
        """Window attention with the cached relative-position bias (and the shift mask on border windows).

        The whole-map path (training, or inference with chunking switched off): on CPUs, and whenever
        autograd is on, :func:`matmul_window_attention`: CPU SDPA is slower for SwinIR's head dims of 10 to 30
        (``benchmarks/infer_speed.py``), and with autograd on it falls back to its "math" kernel, ~4x slower
        for the training step. On GPUs without autograd (chunking off), SDPA. ``sdpa=True`` always takes
        :func:`sdpa_window_attention`.
        """
        dropout = self.attn_drop if self.training else 0.0
        bias = self.relative_position_bias()
        if not sdpa and (q.device.type == "cpu" or (torch.is_grad_enabled() and q.requires_grad)):
            return matmul_window_attention(q, k, v, bias, border_masks, grid, self.scale, dropout)
        return sdpa_window_attention(q, k, v, bias, border_masks, grid, self.scale, dropout)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class SwinTransformerBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual; LayerNorm -> MLP -> residual.

    Args:
        dim: channels of the tokens.
        input_resolution: the training ``img_size`` (in tokens). As in the reference, a block whose
            resolution is not larger than the window uses a window of that size and no shift.
        num_heads: attention heads.
        window_size: side of the attention window.
        shift_size: cyclic shift (``window_size // 2`` in odd blocks, 0 in even ones).
        mlp_ratio: hidden width of the MLP relative to ``dim``.
        qkv_bias: learn a bias for q, k, v.
        drop, attn_drop, drop_path: dropout rates (training only).
        attention: ``"fused"``, ``"sdpa"`` or ``"reference"`` (see the module docstring).
    """

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        attention: Attention = "fused",
    ) -> None:
        super().__init__()
        if min(input_resolution) <= window_size:
            window_size, shift_size = min(input_resolution), 0
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must lie in [0, window_size {window_size})")
        self.dim = dim
        self.window_size = window_size
        self.shift_size = shift_size
        self.attention = attention
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        if shift_size:
            self.register_buffer("border_masks", border_mask_patterns(window_size, shift_size), persistent=False)
        self.register_load_state_dict_pre_hook(self._drop_derived_buffers)
        self._weights_cache: tuple[tuple, tuple[Tensor | None, ...]] | None = None

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C) tokens, H and W multiples of the window."""
        x = x + self.drop_path(self._attention(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _attention(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        ws, s = self.window_size, self.shift_size
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws)
        q, k, v = self.attn.qkv_heads(windows)
        if self.attention == "reference":
            mask = shift_attention_mask(h, w, ws, s).to(x) if s else None
            out = reference_window_attention(q * self.attn.scale, k, v, self.attn._gather_bias(), mask)
        else:
            masks = self.border_masks if s else None
            out = self.attn.attend(q, k, v, masks, (b, h // ws, w // ws), sdpa=self.attention == "sdpa")
        x = window_reverse(self.attn.merge_heads(out), ws, h, w)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x

    def window_biases(self, dtype: torch.dtype) -> Tensor:
        """(1, heads, N, N) relative-position bias, or for a shifted block (4, heads, N, N): the bias, then the
        bias plus the mask of a window in the bottom row, the right column and the corner (chunked inference)."""
        bias = self.attn.relative_position_bias().to(dtype).unsqueeze(0)
        if not self.shift_size:
            return bias
        return torch.cat([bias, bias + self.border_masks.to(dtype)[:, None]])

    def forward_windows(self, tokens: Tensor, add: Tensor) -> Tensor:
        """The whole block on the tokens of whole windows (inference, no drop path): ``tokens``
        (windows * N, C) in window order, ``add`` (windows * heads, N, N) the additive term of each window's
        logits (see :meth:`window_biases`). Returns the block's output tokens, in ``tokens``' dtype and order.

        The matmuls run in ``add``'s dtype (the compute precision: bf16 under bf16 inference) with weights
        converted once (:meth:`inference_weights`), not cast by autocast on every call; the residual stream
        stays in ``tokens``' dtype. The attention is :func:`matmul_window_attention`'s arithmetic with fewer
        copies: q, k, v laid out by one permute, the scale and the additive term taken by one ``baddbmm``;
        the linear layers fuse their bias and GELU (:func:`linear`). Under bf16 the softmax (in place) and
        the LayerNorms (straight to bf16) are the compiled kernels of :mod:`swinir.kernels`, in fp32
        arithmetic (PyTorch's formula where they are not built)."""
        attn = self.attn
        n = self.window_size**2
        windows, heads = tokens.shape[0] // n, attn.num_heads
        d = self.dim // heads
        qkv_w, qkv_b, proj_w, proj_b, fc1_w, fc1_b, fc2_w, fc2_b = self.inference_weights(add.dtype)
        with torch.autocast(tokens.device.type, enabled=False):
            qkv = linear(inference_norm(self.norm1, tokens, add.dtype), qkv_w, qkv_b)
            q, k, v = qkv.view(windows, n, 3, heads, d).permute(2, 0, 3, 1, 4).reshape(3, windows * heads, n, d)
            weights = kernels.softmax_(torch.baddbmm(add, q, k.transpose(1, 2), alpha=attn.scale))
            mixed = torch.bmm(weights, v).view(windows, heads, n, d).transpose(1, 2)
            tokens = tokens + linear(mixed.reshape(windows * n, self.dim), proj_w, proj_b)
            hidden = linear(inference_norm(self.norm2, tokens, add.dtype), fc1_w, fc1_b, gelu=True)
            return tokens + linear(hidden, fc2_w, fc2_b)

    def inference_weights(self, dtype: torch.dtype) -> tuple[Tensor | None, ...]:
        """The linear layers' weights and biases (qkv, proj, fc1, fc2) in ``dtype``, detached: converted once
        and kept while the parameters are unchanged (their version and storage), so bf16 inference does not
        cast every weight on every call. fp32 parameters are returned as they are."""
        layers = (self.attn.qkv, self.attn.proj, self.mlp.fc1, self.mlp.fc2)
        params = tuple(t for layer in layers for t in (layer.weight, layer.bias))
        if all(p is None or p.dtype == dtype for p in params):
            return tuple(None if p is None else p.detach() for p in params)
        key = (dtype, tuple((p._version, p.data_ptr(), p.device) for p in params if p is not None))
        if self._weights_cache is None or self._weights_cache[0] != key:
            self._weights_cache = (key, tuple(None if p is None else p.detach().to(dtype) for p in params))
        return self._weights_cache[1]

    def _drop_derived_buffers(self, _module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
        """Accept the reference's derived buffers: check them against what this block computes, then drop them."""
        index = state_dict.pop(prefix + "attn.relative_position_index", None)
        if index is not None and not torch.equal(index.cpu().long(), relative_position_index(self.window_size)):
            raise RuntimeError(
                f"{prefix}attn.relative_position_index does not match a window of {self.window_size}: "
                "the checkpoint was made for another window size"
            )
        mask = state_dict.pop(prefix + "attn_mask", None)
        if mask is None:
            return
        n = self.window_size**2
        side = math.isqrt(mask.shape[0]) * self.window_size if mask.ndim == 3 else 0
        if not self.shift_size or mask.shape[1:] != (n, n) or side == 0:
            raise RuntimeError(
                f"{prefix}attn_mask of shape {tuple(mask.shape)} does not fit this block "
                f"(window {self.window_size}, shift {self.shift_size})"
            )
        expected = shift_attention_mask(side, side, self.window_size, self.shift_size)
        if not torch.equal(mask.cpu().float(), expected):
            raise RuntimeError(f"{prefix}attn_mask is not the shift mask of a {side}x{side} map: corrupt checkpoint?")

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, shift_size={self.shift_size}, attention={self.attention!r}"


class BasicLayer(nn.Module):
    """``depth`` Swin blocks, alternating unshifted and shifted windows (key prefix ``residual_group``)."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        attention: Attention,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim, input_resolution, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                mlp_ratio, qkv_bias, drop, attn_drop, drop_path[i], attention,
            )
            for i in range(depth)
        )
        self.use_checkpoint = False
        self.chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS  # see set_inference_chunk

    def forward(self, x: Tensor) -> Tensor:
        if (self.chunk_tokens and not torch.is_grad_enabled()
                and all(block.attention == "fused" for block in self.blocks)):
            return run_blocks_chunked(self.blocks, x, self.chunk_tokens)
        for block in self.blocks:
            if self.use_checkpoint and x.requires_grad:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def residual_conv(dim: int, kind: ResiConnection) -> nn.Module:
    """The conv closing an RSTB and the body: one 3x3 conv, or the cheaper 3-conv bottleneck of SwinIR-L."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":
        q = dim // 4
        return nn.Sequential(
            nn.Conv2d(dim, q, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(q, q, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(q, dim, 3, 1, 1),
        )
    raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {kind!r}")


def conv_nhwc(conv: nn.Module, x: Tensor) -> Tensor:
    """Apply a conv to (B, H, W, C) tokens through a channels-last view (no layout copy on oneDNN/cuDNN)."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin layers, a conv, and a skip connection around both."""

    def __init__(self, dim: int, resi_connection: ResiConnection, **layer_kwargs: object) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim=dim, **layer_kwargs)  # type: ignore[arg-type]
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: Tensor) -> Tensor:
        return conv_nhwc(self.conv, self.residual_group(x)) + x


class PatchEmbed(nn.Module):
    """Feature map -> tokens; with patch size 1 it is only the LayerNorm of the reference (key ``norm``)."""

    def __init__(self, dim: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        return x if self.norm is None else self.norm(x)


class Upsample(nn.Sequential):
    """Scale 2^n: n x (conv to 4C, PixelShuffle 2); scale 3: conv to 9C, PixelShuffle 3."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"upscale {scale} is not supported by 'pixelshuffle': use 2, 3, 4 or 8")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """One conv to scale² x out channels and one PixelShuffle: the light head of SwinIR-S."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, scale**2 * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------


class SwinIR(nn.Module):
    """SwinIR with the reference constructor and state-dict layout.

    Args:
        upscale: super-resolution factor (1 for denoising and JPEG artifact reduction).
        in_chans: image channels (1 gray, 3 RGB); the output has as many.
        img_size: training patch size (LR side). It only matters where the reference lets it: a block whose
            ``img_size`` is not larger than the window uses a smaller window. Any input size works.
        window_size: side of the attention window (8, or 7 for JPEG).
        img_range: 1.0, or 255.0 for the JPEG models (inputs are scaled by it after mean subtraction).
        depths: Swin layers per RSTB.
        embed_dim: transformer width.
        num_heads: attention heads per RSTB.
        mlp_ratio: MLP hidden width relative to ``embed_dim``.
        upsampler: ``"pixelshuffle"`` (classical SR), ``"pixelshuffledirect"`` (lightweight SR),
            ``"nearest+conv"`` (real-world SR) or ``""`` (same-size restoration).
        resi_connection: ``"1conv"`` or ``"3conv"``.
        qkv_bias: learn biases for q, k, v (all published models do).
        patch_norm: LayerNorm after the shallow conv (all published models do).
        drop_rate, attn_drop_rate, drop_path_rate: regularisation during training (the reference default of
            drop_path_rate 0.1 is kept).
        attention: ``"fused"`` (default), ``"sdpa"`` or ``"reference"`` (the reference arithmetic, for
            benchmarks); see the module docstring.
    """

    def __init__(
        self,
        upscale: int = 2,
        in_chans: int = 3,
        img_size: int = 64,
        window_size: int = 7,
        img_range: float = 1.0,
        depths: Sequence[int] = (6, 6, 6, 6),
        embed_dim: int = 96,
        num_heads: Sequence[int] = (6, 6, 6, 6),
        mlp_ratio: float = 4.0,
        upsampler: Upsampler = "",
        resi_connection: ResiConnection = "1conv",
        qkv_bias: bool = True,
        patch_norm: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        attention: Attention = "fused",
    ) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        if upsampler == "" and upscale != 1:
            raise ValueError(f"upsampler '' restores at the same size; upscale must be 1, got {upscale}")
        if upsampler == "nearest+conv" and upscale not in (2, 4):
            raise ValueError(f"upsampler 'nearest+conv' supports upscale 2 or 4, got {upscale}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        self.upscale = upscale
        self.in_chans = in_chans
        self.img_size = img_size
        self.window_size = window_size
        self.img_range = img_range
        self.upsampler = upsampler
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            start = sum(depths[:i])
            self.layers.append(
                RSTB(
                    embed_dim, resi_connection, input_resolution=(img_size, img_size), depth=depth,
                    num_heads=heads, window_size=window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                    drop=drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[start : start + depth],
                    attention=attention,
                )
            )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)

        if upsampler in ("pixelshuffle", "nearest+conv"):
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True)  # slope 0.01, as the reference
            )
        if upsampler == "pixelshuffle":
            self.upsample = Upsample(upscale, NUM_FEAT)
            self.conv_last = nn.Conv2d(NUM_FEAT, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, embed_dim, in_chans)
        elif upsampler == "nearest+conv":
            self.conv_up1 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            if upscale == 4:
                self.conv_up2 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_hr = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_last = nn.Conv2d(NUM_FEAT, in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        self.apply(_init_weights)

    # ---- switches -----------------------------------------------------------------------------------

    def set_attention(self, attention: Attention) -> SwinIR:
        """Switch every block's attention implementation (see the module docstring)."""
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        for block in self.blocks():
            block.attention = attention
        return self

    def set_inference_chunk(self, tokens: int | None) -> SwinIR:
        """Run inference (no autograd) one chunk of ``tokens`` tokens' windows at a time (:mod:`swinir.windowed`);
        -1 (the default) sizes the chunks by the thread count, None runs every block on the whole map at once."""
        for layer in self.layers:
            layer.residual_group.chunk_tokens = tokens
        return self

    def set_grad_checkpointing(self, enabled: bool = True) -> SwinIR:
        """Recompute each Swin block in the backward pass instead of storing its activations."""
        for layer in self.layers:
            layer.residual_group.use_checkpoint = enabled
        return self

    def blocks(self) -> list[SwinTransformerBlock]:
        return [block for layer in self.layers for block in layer.residual_group.blocks]

    # ---- forward ------------------------------------------------------------------------------------

    def pad_to_window(self, x: Tensor) -> Tensor:
        """The model's own padding (reflect, to the next window multiple), used when called on any size."""
        h, w = x.shape[-2:]
        ws = self.window_size
        return F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), mode="reflect")

    def forward_features(self, x: Tensor) -> Tensor:
        """Deep features: (B, C, H, W) -> (B, C, H, W); the body works on (B, H, W, C) tokens."""
        t = self.pos_drop(self.patch_embed(x.permute(0, 2, 3, 1)))
        for layer in self.layers:
            t = layer(t)
        return self.norm(t).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_chans, h, w) in [0, 1] -> (B, in_chans, h*upscale, w*upscale); any h, w."""
        h, w = x.shape[-2:]
        x = self.pad_to_window(x)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range

        feat = self.conv_first(x)
        res = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(res)))
        elif self.upsampler == "pixelshuffledirect":
            x = self.upsample(res)
        elif self.upsampler == "nearest+conv":
            x = self.conv_before_upsample(res)
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
            if self.upscale == 4:
                x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        else:
            x = x + self.conv_last(res)
        x = x / self.img_range + mean
        return x[..., : h * self.upscale, : w * self.upscale]


def _init_weights(m: nn.Module) -> None:
    """The reference initialisation: truncated normal (std 0.02) linears, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
