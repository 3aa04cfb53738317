"""Degradations: MATLAB bicubic ``imresize``, the paper's test-time noise and JPEG, two real-world
degradation pipelines for training (BSRGAN / Real-ESRGAN's second-order one, and a first-order one for photos),
and the Poisson-Gaussian noise of photon-counting sensors (training denoisers for microscopy).

Everything here works on numpy images laid out HxW or HxWxC in **RGB** order (``imresize`` and ``modcrop``
also take torch tensors (C,H,W) or (B,C,H,W)). The test-time functions reproduce the reference test script
of the SwinIR paper bit for bit (see ``shared/PROTOCOL.md``): published numbers are only comparable when the
degraded inputs are identical, so their quirks (BGR draw order, no clipping, OpenCV's JPEG) are kept on
purpose and documented where they happen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import SwinIRError

ImageT = TypeVar("ImageT", np.ndarray, torch.Tensor)

# --------------------------------------------------------------------------------------------------
# MATLAB imresize (bicubic)
# --------------------------------------------------------------------------------------------------

CUBIC_KERNEL_WIDTH = 4.0  # the support of the cubic kernel is [-2, 2]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as MATLAB's ``imresize`` evaluates it."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


def contributions(in_length: int, out_length: int, scale: float,
                  antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Weights and source indices of a 1-D MATLAB bicubic resize, as MATLAB's ``contributions``.

    Output pixel ``i`` (1-based) sits at input coordinate ``u = i / scale + (1 - 1 / scale) / 2`` (pixel
    centres aligned). When shrinking with ``antialias`` the kernel is stretched by ``1 / scale`` (and scaled
    by ``scale``), so it averages over the footprint of the output pixel. Taps that fall outside the image
    are mirrored (symmetric padding: ``-1 -> 0``, ``L -> L-1``), each weight row is normalised to sum 1, and
    tap columns that are zero for every output are dropped.

    Returns:
        ``(weights, indices)``, both shaped ``(out_length, taps)``; indices are 0-based into the input.
    """
    stretch = antialias and scale < 1
    kernel_width = CUBIC_KERNEL_WIDTH / scale if stretch else CUBIC_KERNEL_WIDTH
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    ind = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, may fall outside
    dist = u[:, None] - ind
    weights = scale * cubic(scale * dist) if stretch else cubic(dist)
    weights = weights / np.sum(weights, axis=1, keepdims=True)
    # symmetric boundary: index sequence 1..L, L..1 repeated
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(ind.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _round_half_away_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> uint8 conversion: round half away from zero, then saturate to [0, 255]."""
    return np.clip(np.floor(x + 0.5), 0, 255)  # values below -0.5 saturate to 0 either way


def _resize_axis_numpy(x: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Weighted sum of input taps along ``axis`` (float64 in and out); taps summed in order as MATLAB."""
    src = np.moveaxis(x, axis, 0)
    shape = (weights.shape[0],) + (1,) * (src.ndim - 1)
    acc = weights[:, 0].reshape(shape) * src[indices[:, 0]]
    for k in range(1, weights.shape[1]):
        acc += weights[:, k].reshape(shape) * src[indices[:, k]]
    return np.moveaxis(acc, 0, axis)


def _resize_axis_torch(x: torch.Tensor, dim: int, weights: np.ndarray, indices: np.ndarray) -> torch.Tensor:
    """Torch version of :func:`_resize_axis_numpy` along ``dim`` (negative), in ``x``'s dtype."""
    w = torch.from_numpy(weights).to(device=x.device, dtype=x.dtype)
    idx = torch.from_numpy(indices).to(device=x.device)
    src = x.movedim(dim, 0)
    shape = (w.shape[0],) + (1,) * (src.ndim - 1)
    acc = w[:, 0].reshape(shape) * src[idx[:, 0]]
    for k in range(1, w.shape[1]):
        acc = acc + w[:, k].reshape(shape) * src[idx[:, k]]
    return acc.movedim(0, dim)


def _output_size(length: int, scale: float) -> int:
    """``ceil(length * scale)`` as MATLAB, ignoring float noise (``30 * 0.1`` is 3, not 4)."""
    return max(1, math.ceil(round(length * scale, 9)))


def imresize(img: ImageT, scale: float | None = None, *, output_shape: tuple[int, int] | None = None,
             antialias: bool = True) -> ImageT:
    """Resize like MATLAB's ``imresize(img, scale, 'bicubic')`` (or ``imresize(img, [h w], 'bicubic')``).

    Args:
        img: numpy HxW or HxWxC (uint8, or float in any range) or torch tensor (C,H,W) / (B,C,H,W).
        scale: the factor for both dimensions (output size ``ceil(size * scale)``). Give it or
            ``output_shape``, not both.
        output_shape: ``(height, width)`` of the result; the per-axis scale is ``out / in``.
        antialias: when shrinking, widen the kernel by ``1 / scale`` (MATLAB's default).

    uint8 input follows MATLAB's uint8 path: each 1-D pass (the dimension with the smaller scale first,
    height first on ties) is rounded half away from zero and clipped to [0, 255] before the next pass, and
    uint8 comes back. This reproduces MATLAB's own output (e.g. the LR_bicubic files of the SR benchmarks).
    Float input is processed in float64 (torch: in the tensor's own dtype) with no rounding or clipping;
    the result has the input's dtype. Other integer dtypes are rejected.
    """
    is_torch = isinstance(img, torch.Tensor)
    if is_torch:
        if img.ndim not in (3, 4):
            raise SwinIRError(f"imresize takes tensors shaped (C,H,W) or (B,C,H,W), got {tuple(img.shape)}")
        in_h, in_w = img.shape[-2:]
        axes = (img.ndim - 2, img.ndim - 1)
    else:
        if img.ndim not in (2, 3):
            raise SwinIRError(f"imresize takes arrays shaped HxW or HxWxC, got {img.shape}")
        in_h, in_w = img.shape[:2]
        axes = (0, 1)
    is_uint8 = img.dtype in (np.uint8, torch.uint8)
    is_float = img.is_floating_point() if is_torch else np.issubdtype(img.dtype, np.floating)
    if not (is_uint8 or is_float):
        raise SwinIRError(f"imresize takes uint8 or float images, got {img.dtype}")

    if (scale is None) == (output_shape is None):
        raise SwinIRError("imresize needs exactly one of scale or output_shape")
    if scale is not None:
        if scale <= 0:
            raise SwinIRError(f"imresize scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        sizes = (_output_size(in_h, scale), _output_size(in_w, scale))
    else:
        sizes = (int(output_shape[0]), int(output_shape[1]))
        if min(sizes) < 1:
            raise SwinIRError(f"imresize output_shape must be positive, got {output_shape}")
        scales = (sizes[0] / in_h, sizes[1] / in_w)

    if is_torch:
        work_dtype = torch.float64 if is_uint8 else img.dtype
        out = img.to(work_dtype)
    else:
        out = img.astype(np.float64)
    in_sizes = (in_h, in_w)
    for d in sorted((0, 1), key=lambda d: scales[d]):  # stable: height first on equal scales
        weights, indices = contributions(in_sizes[d], sizes[d], scales[d], antialias)
        if is_torch:
            out = _resize_axis_torch(out, axes[d] - out.ndim, weights, indices)
            if is_uint8:
                out = torch.clamp(torch.floor(out + 0.5), 0, 255)
        else:
            out = _resize_axis_numpy(out, axes[d], weights, indices)
            if is_uint8:
                out = _round_half_away_uint8(out)
    if is_torch:
        return out.to(img.dtype)
    return out.astype(img.dtype)


def modcrop(img: ImageT, scale: int) -> ImageT:
    """Crop the bottom/right so height and width are multiples of ``scale`` (numpy HxW[xC] or torch (...,H,W))."""
    if isinstance(img, torch.Tensor):
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


# --------------------------------------------------------------------------------------------------
# Test-time degradations of the paper's protocol
# --------------------------------------------------------------------------------------------------


def add_gaussian_noise(img: np.ndarray, sigma: float, seed: int | None = 0) -> np.ndarray:
    """The denoising test input: ``img + N(0, sigma / 255)``, exactly as the reference test script.

    Args:
        img: float image in [0, 1], HxW, HxWx1 or HxWx3 **RGB**. The reference adds noise to the
            ground truth as float32 (8-bit / 255); pass it that way to get identical values.
        sigma: noise standard deviation on the 0-255 scale (15, 25, 50 in the paper).
        seed: the reference calls ``np.random.seed(0)`` before every image; ``None`` draws fresh noise.

    Returns:
        float64, **neither clipped nor quantised**: the reference feeds this very array to the network,
        and published denoising numbers move by tenths of a dB when it is clipped or rounded.

    The noise stream is that of ``np.random.seed(seed); np.random.normal(0, sigma / 255, shape)`` (a
    private ``RandomState`` gives the same stream without touching numpy's global state). The reference
    draws it on the image as OpenCV reads it, i.e. **BGR**, HWC order; for a color image the noise is
    therefore drawn on the channel-reversed view and mapped back to RGB, so pixel (y, x, R) gets the
    value the reference gives to (y, x, R) of its BGR array.
    """
    img = np.asarray(img)
    if not np.issubdtype(img.dtype, np.floating):
        raise SwinIRError(f"add_gaussian_noise takes a float image in [0, 1], got {img.dtype}")
    rng = np.random.RandomState(seed)
    color = img.ndim == 3 and img.shape[2] == 3
    view = img[..., ::-1] if color else img  # RGB -> BGR view
    noisy = view + rng.normal(0, sigma / 255.0, view.shape)
    return np.ascontiguousarray(noisy[..., ::-1] if color else noisy)


def add_poisson_gaussian_noise(clean: np.ndarray, gain: float, read_sigma: float,
                               rng: np.random.Generator) -> np.ndarray:
    """The noise of a photon-counting sensor (the Poisson-Gaussian model of Foi et al., 2008), for training
    denoisers of microscopy and other low-light images: ``gain * Poisson(clean / gain) + N(0, read_sigma)``.

    Args:
        clean: float image on the [0, 1] scale (any layout); negative values count as no light.
        gain: the signal-dependent part (``a``): the variance each unit of signal adds, on the 0..1 scale.
            ``1 / gain`` photons make a white pixel, so small gains are bright, nearly clean images; 0 is
            no shot noise.
        read_sigma: the standard deviation of the signal-independent read noise on the 0..1 scale
            (``b = read_sigma ** 2``).
        rng: the seeded generator the sample is drawn from.

    Returns:
        float32 with mean ``clean`` and variance ``gain * clean + read_sigma ** 2``, neither clipped nor
        rounded (as the Gaussian training noise).
    """
    if gain < 0 or read_sigma < 0:
        raise SwinIRError(f"Poisson-Gaussian noise needs gain >= 0 and read noise >= 0, got {gain}, {read_sigma}")
    signal = np.clip(np.asarray(clean, dtype=np.float64), 0.0, None)
    shot = gain * rng.poisson(signal / gain) if gain > 0 else signal
    return (shot + rng.normal(0.0, read_sigma, signal.shape)).astype(np.float32)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with OpenCV's JPEG at ``quality`` (1-100), as the reference test script.

    Gray HxW is encoded as a gray JPEG; color HxWx3 (RGB) is encoded from its BGR view (OpenCV's native
    order, so the chroma planes are exactly the reference's) and returned as RGB uint8.
    """
    if img.dtype != np.uint8:
        raise SwinIRError(f"jpeg_compress takes a uint8 image, got {img.dtype}")
    if not 0 <= int(quality) <= 100:
        raise SwinIRError(f"JPEG quality must be in 0..100, got {quality}")
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img.reshape(img.shape[:2])), params)
        if not ok:
            raise SwinIRError("OpenCV could not JPEG-encode the image")
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).reshape(img.shape)
    if img.ndim == 3 and img.shape[2] == 3:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), params)
        if not ok:
            raise SwinIRError("OpenCV could not JPEG-encode the image")
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    raise SwinIRError(f"jpeg_compress takes HxW or HxWx3 images, got {img.shape}")


def rgb_to_y_uint8(img: np.ndarray) -> np.ndarray:
    """The Y channel of a uint8 RGB image as uint8: MATLAB ``rgb2ycbcr`` Y, rounded.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B on 0-255, rounded half to even
    (numpy's ``round``, as the reference's ``bgr2ycbcr(y_only=True)`` on uint8). This is the gray
    JPEG protocol's first step for 3-channel files.
    """
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise SwinIRError(f"rgb_to_y_uint8 takes a uint8 HxWx3 RGB image, got {img.dtype} {img.shape}")
    # the reference's dot product runs on the BGR array; same order here for identical rounding
    y = np.dot(img[..., ::-1], [24.966, 128.553, 65.481]) / 255.0 + 16.0
    return y.round().astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Real-world degradations for training (second-order, Real-ESRGAN / BSRGAN style)
# --------------------------------------------------------------------------------------------------

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class DegradationStage:
    """One round of blur -> random resize -> noise -> JPEG; ranges are ``(low, high)`` sampled uniformly.

    Defaults are Real-ESRGAN's first round (``train_realesrgan_x4plus.yml``).
    """

    blur_prob: float = 1.0
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_types: tuple[str, ...] = KERNEL_TYPES
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian shape
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau shape
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson noise
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma on the 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    noise_prob: float = 1.0  # chance of any noise at all (Real-ESRGAN: always)


def _second_stage() -> DegradationStage:
    return DegradationStage(blur_prob=0.8, blur_sigma=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3),
                            resize_range=(0.3, 1.2), noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))


@dataclass(frozen=True)
class RealDegradationConfig:
    """The second-order real-world degradation (Real-ESRGAN's parameter ranges by default).

    ``first`` and ``second`` are the two rounds; the second round's resize targets ``HR / scale`` times
    its random factor, and the final step brings the image to exactly ``HR / scale`` together with an
    optional sinc filter and the last JPEG, in random order.
    """

    scale: int = 4
    first: DegradationStage = field(default_factory=DegradationStage)
    second: DegradationStage = field(default_factory=_second_stage)
    final_sinc_prob: float = 0.8
    final_sinc_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)


def _kernel_grid(size: int) -> np.ndarray:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    return np.stack([xx, yy], axis=-1)  # (size, size, 2): (x, y) offsets from the centre


def anisotropic_quadratic(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """``d^T Sigma^-1 d`` on a size x size grid, Sigma = R(theta) diag(sx^2, sy^2) R(theta)^T."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    grid = _kernel_grid(size)
    return np.einsum("...i,ij,...j->...", grid, np.linalg.inv(cov), grid)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0, beta: float = 1.0,
                    plateau: bool = False) -> np.ndarray:
    """A normalised 2-D blur kernel: Gaussian (beta 1), generalized Gaussian ``exp(-q^beta / 2)``, or
    plateau ``1 / (1 + q^beta)``, where q is the anisotropic quadratic form."""
    q = anisotropic_quadratic(size, sigma_x, sigma_y, theta)
    kernel = 1.0 / (1.0 + q**beta) if plateau else np.exp(-0.5 * q**beta)
    return kernel / kernel.sum()


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """A normalised 2-D circular low-pass (sinc) kernel with cutoff frequency ``cutoff`` (radians/pixel).

    ``k(r) = cutoff * J1(cutoff * r) / (2 pi r)``, ``k(0) = cutoff^2 / (4 pi)``; it imitates ringing and
    overshoot artifacts.
    """
    r = np.linalg.norm(_kernel_grid(size), axis=-1)
    j1 = torch.special.bessel_j1(torch.from_numpy(cutoff * r)).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = np.where(r > 0, cutoff * j1 / (2 * np.pi * r), cutoff**2 / (4 * np.pi))
    return kernel / kernel.sum()


def _split_range(rng: np.random.Generator, low: float, high: float) -> float:
    """Shape parameter: half the time in [low, 1], else in [1, high] (as BasicSR samples beta)."""
    return float(rng.uniform(low, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, high))


def random_blur_kernel(rng: np.random.Generator, stage: DegradationStage) -> np.ndarray:
    """A random kernel of a random odd size: sinc with ``sinc_prob``, else one of ``kernel_types``."""
    size = int(rng.choice(stage.kernel_sizes))
    if rng.uniform() < stage.sinc_prob:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        return sinc_kernel(size, float(cutoff))
    probs = np.asarray(stage.kernel_probs, dtype=np.float64)
    kind = stage.kernel_types[int(rng.choice(len(stage.kernel_types), p=probs / probs.sum()))]
    lo, hi = stage.blur_sigma
    sigma_x = float(rng.uniform(lo, hi))
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_y, theta = float(rng.uniform(lo, hi)), float(rng.uniform(-np.pi, np.pi))
    if kind.startswith("generalized"):
        return gaussian_kernel(size, sigma_x, sigma_y, theta, beta=_split_range(rng, *stage.betag_range))
    if kind.startswith("plateau"):
        return gaussian_kernel(size, sigma_x, sigma_y, theta, beta=_split_range(rng, *stage.betap_range),
                               plateau=True)
    if kind not in ("iso", "aniso"):
        raise SwinIRError(f"unknown blur kernel type {kind!r}; use one of {', '.join(KERNEL_TYPES)}")
    return gaussian_kernel(size, sigma_x, sigma_y, theta)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter with ``kernel`` (reflect border, like Real-ESRGAN's ``filter2D``); the kernels are symmetric,
    so correlation equals convolution."""
    return cv2.filter2D(img.astype(np.float32), -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)


def resize_mode(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize HxWxC float to ``(h, w)`` with torch's ``area``/``bilinear``/``bicubic`` (as Real-ESRGAN)."""
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    kwargs = {} if mode == "area" else {"align_corners": False}
    y = F.interpolate(x, size=(max(1, size[0]), max(1, size[1])), mode=mode, **kwargs)
    return y[0].permute(1, 2, 0).numpy()


def _gray(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114], dtype=img.dtype)


def random_noise(rng: np.random.Generator, img: np.ndarray, stage: DegradationStage) -> np.ndarray:
    """Gaussian noise (with ``gaussian_noise_prob``) or Poisson noise, color or (``gray_noise_prob``) gray,
    then clipped to [0, 1]."""
    if stage.noise_prob < 1.0 and rng.uniform() >= stage.noise_prob:
        return img.astype(np.float32)
    gray = rng.uniform() < stage.gray_noise_prob
    if rng.uniform() < stage.gaussian_noise_prob:
        sigma = rng.uniform(*stage.noise_range) / 255.0
        shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
        noise = rng.normal(0.0, sigma, shape)
    else:
        scale = rng.uniform(*stage.poisson_scale_range)
        base = _gray(img)[..., None] if gray else img
        base = np.clip(np.round(base * 255.0), 0, 255) / 255.0
        levels = 2 ** np.ceil(np.log2(max(len(np.unique(base)), 2)))  # photon count per unit intensity
        noise = (rng.poisson(base * levels) / levels - base) * scale
    return np.clip(img + noise, 0.0, 1.0).astype(np.float32)


def _jpeg_float(img: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return jpeg_compress(u8, quality).astype(np.float32) / 255.0


def real_degrade(hr: np.ndarray, rng: np.random.Generator, config: RealDegradationConfig | None = None) -> np.ndarray:
    """Synthesise a real-world low-resolution image from ``hr`` (float HxWx3 RGB in [0, 1]).

    Two rounds of blur, random resize, Gaussian/Poisson noise and JPEG (OpenCV's encoder, i.e. real 8-bit
    JPEG, where Real-ESRGAN uses a differentiable one), then a resize to exactly ``HR / scale`` with a
    random mode, and a sinc filter (``final_sinc_prob``) and the last JPEG in random order. Every random
    choice comes from ``rng``, so the same seed gives the same output.

    Returns:
        float32 ``(H // scale) x (W // scale) x 3`` in [0, 1], rounded to multiples of 1/255 (an 8-bit image).
    """
    config = config or RealDegradationConfig()
    if hr.ndim != 3 or hr.shape[2] != 3 or not np.issubdtype(hr.dtype, np.floating):
        raise SwinIRError(f"real_degrade takes a float HxWx3 image in [0, 1], got {hr.dtype} {hr.shape}")
    h, w = hr.shape[:2]
    s = config.scale
    if h < s or w < s:
        raise SwinIRError(f"the image ({h}x{w}) is smaller than the scale {s}")
    out = hr.astype(np.float32)
    for n, stage in enumerate((config.first, config.second)):
        if rng.uniform() < stage.blur_prob:
            out = blur(out, random_blur_kernel(rng, stage))
        direction = rng.choice(3, p=np.asarray(stage.resize_probs) / np.sum(stage.resize_probs))
        factor = (rng.uniform(1.0, stage.resize_range[1]), rng.uniform(stage.resize_range[0], 1.0), 1.0)[direction]
        mode = RESIZE_MODES[int(rng.integers(len(RESIZE_MODES)))]
        if n == 0:
            size = (int(out.shape[0] * factor), int(out.shape[1] * factor))
        else:
            size = (int(h / s * factor), int(w / s * factor))
        out = resize_mode(out, size, mode)
        out = random_noise(rng, out, stage)
        if n == 0:
            out = _jpeg_float(out, int(rng.integers(stage.jpeg_range[0], stage.jpeg_range[1] + 1)))
    # final: resize to HR / scale + optional sinc, and JPEG, in random order
    if rng.uniform() < config.final_sinc_prob:
        size = int(rng.choice(config.final_sinc_sizes))
        final_kernel = sinc_kernel(size, float(rng.uniform(np.pi / 3, np.pi)))
    else:
        final_kernel = None
    mode = RESIZE_MODES[int(rng.integers(len(RESIZE_MODES)))]
    quality = int(rng.integers(config.second.jpeg_range[0], config.second.jpeg_range[1] + 1))

    def resize_and_sinc(img: np.ndarray) -> np.ndarray:
        img = resize_mode(img, (h // s, w // s), mode)
        return blur(img, final_kernel) if final_kernel is not None else img

    if rng.uniform() < 0.5:
        out = _jpeg_float(resize_and_sinc(out), quality)
    else:
        out = resize_and_sinc(_jpeg_float(out, quality))
    return (np.clip(np.round(out * 255.0), 0, 255) / 255.0).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# The first-order degradation of photos as people have them
# --------------------------------------------------------------------------------------------------

PHOTO_RESIZE_MODES = ("matlab", "area", "bilinear", "bicubic")


def _photo_stage() -> DegradationStage:
    return DegradationStage(blur_prob=0.5, kernel_sizes=(7, 9, 11, 13), sinc_prob=0.0, blur_sigma=(0.2, 1.5),
                            noise_prob=0.5, noise_range=(1.0, 10.0), poisson_scale_range=(0.05, 1.0),
                            gray_noise_prob=0.4, jpeg_range=(30, 95))


@dataclass(frozen=True)
class PhotoDegradationConfig:
    """One round of what happens to a phone or web photo: an optional mild blur (lens, motion, demosaicking),
    a downscale with a random antialiased kernel (the camera's or a website's resizer), optional mild
    Gaussian or Poisson noise (the sensor), then JPEG. Milder than Real-ESRGAN's two rounds, whose heavy
    blur and noise teach a model to paint over detail that a photo still has; a quarter of the samples are
    a clean resize plus JPEG, which is what the held-out test (MATLAB bicubic, then JPEG q75) measures."""

    scale: int = 4
    stage: DegradationStage = field(default_factory=_photo_stage)
    resize_modes: tuple[str, ...] = PHOTO_RESIZE_MODES
    resize_probs: tuple[float, ...] = (0.4, 0.3, 0.15, 0.15)


def resize_antialiased(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Downscale HxWxC float to ``(h, w)``: MATLAB's bicubic (``matlab``), or torch's area / antialiased
    bilinear / antialiased bicubic."""
    if mode == "matlab":
        return imresize(img.astype(np.float32), output_shape=size)
    if mode not in RESIZE_MODES:
        raise SwinIRError(f"unknown resize mode {mode!r}; use one of {', '.join(PHOTO_RESIZE_MODES)}")
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    kwargs = {} if mode == "area" else {"align_corners": False, "antialias": True}
    return F.interpolate(x, size=size, mode=mode, **kwargs)[0].permute(1, 2, 0).numpy()


def photo_degrade(hr: np.ndarray, rng: np.random.Generator, quality: int,
                  config: PhotoDegradationConfig | None = None) -> np.ndarray:
    """The network input of a photo's ground truth ``hr`` (float HxWx3 RGB in [0, 1]): blur (maybe), downscale
    by ``config.scale`` to exactly ``(H // scale, W // scale)``, noise (maybe), OpenCV JPEG at ``quality``.

    Returns float32 in [0, 1], rounded to multiples of 1/255 (an 8-bit image, as a decoded JPEG is).
    """
    config = config or PhotoDegradationConfig()
    if hr.ndim != 3 or hr.shape[2] != 3 or not np.issubdtype(hr.dtype, np.floating):
        raise SwinIRError(f"photo_degrade takes a float HxWx3 image in [0, 1], got {hr.dtype} {hr.shape}")
    h, w = hr.shape[:2]
    s = config.scale
    if h < s or w < s:
        raise SwinIRError(f"the image ({h}x{w}) is smaller than the scale {s}")
    out = hr.astype(np.float32)
    if rng.uniform() < config.stage.blur_prob:
        out = blur(out, random_blur_kernel(rng, config.stage))
    probs = np.asarray(config.resize_probs, dtype=np.float64)
    mode = config.resize_modes[int(rng.choice(len(config.resize_modes), p=probs / probs.sum()))]
    out = np.clip(resize_antialiased(out, (h // s, w // s), mode), 0.0, 1.0)
    out = random_noise(rng, out, config.stage)
    return _jpeg_float(out, int(quality))
