"""Image quality metrics exactly as the SwinIR paper's test script computes them (``shared/PROTOCOL.md``).

Inputs are numpy images HxW or HxWxC in **RGB** order (the reference code works on OpenCV's BGR arrays;
the Y coefficients below are laid out for RGB accordingly), either uint8 or float already on the
0-255 scale (e.g. a uint8 image cast to float, or Y from :func:`rgb_to_y`). To score a network output
held as float in [0, 1], :func:`quantize` it first: the paper's numbers are measured on 8-bit images.

``border`` crops that many pixels from every side before measuring (``scale`` for SR, 0 otherwise).
``y_channel=True`` scores the luma of 3-channel images (SR tables); 1-channel images are scored as they
are, as the reference does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .errors import SwinIRError

# MATLAB rgb2ycbcr luma on [0, 1] inputs: Y = 16 + 65.481 R + 128.553 G + 24.966 B
Y_COEFFS_RGB = np.array([65.481, 128.553, 24.966])
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
PSNRB_BLOCK = 8


def quantize(img: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] to uint8 as the reference: ``(img.clip(0, 1) * 255).round()``.

    Computed in the input's float dtype (the reference rounds a float32 network output); ``round`` is
    numpy's round-half-to-even, as in the reference.
    """
    if not np.issubdtype(img.dtype, np.floating):
        raise SwinIRError(f"quantize takes a float image in [0, 1], got {img.dtype}")
    return (np.clip(img, 0, 1) * 255.0).round().astype(np.uint8)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma of an RGB image on the 0-255 scale: MATLAB ``rgb2ycbcr`` Y, in [16, 235], float64, **not rounded**.

    ``img`` is HxWx3 RGB, uint8 or float on 0-255. Returns HxW float64.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise SwinIRError(f"rgb_to_y takes an HxWx3 RGB image, got shape {img.shape}")
    return 16.0 + img.astype(np.float64) @ Y_COEFFS_RGB / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 HxWxC after cropping ``border`` and (for 3 channels) converting to Y."""
    if a.shape != b.shape:
        raise SwinIRError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise SwinIRError(f"images must be HxW or HxWxC, got shape {a.shape}")
    if border < 0 or 2 * border >= min(a.shape[:2]):
        raise SwinIRError(f"border {border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
    out = []
    for img in (a, b):
        img = img[border : img.shape[0] - border, border : img.shape[1] - border, ...].astype(np.float64)
        if y_channel and img.ndim == 3 and img.shape[2] == 3:
            img = rgb_to_y(img)
        out.append(img[..., None] if img.ndim == 2 else img)
    return out[0], out[1]


def psnr(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB on the 0-255 scale: ``20 log10(255 / sqrt(mse))`` over all pixels and channels (float64);
    ``inf`` when the images are identical."""
    x, y = _prepare(a, b, border, y_channel)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of one HxW float64 channel pair: Gaussian 11x11 (sigma 1.5) local statistics, valid region only."""
    g = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA)
    window = g @ g.T
    t = SSIM_WINDOW // 2

    def filt(img: np.ndarray) -> np.ndarray:  # filter2D then trim = 'valid' filtering
        return cv2.filter2D(img, -1, window)[t:-t, t:-t]

    mu_x, mu_y = filt(x), filt(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = filt(x * x) - mu_xx
    var_y = filt(y * y) - mu_yy
    cov = filt(x * y) - mu_xy
    ssim_map = ((2 * mu_xy + SSIM_C1) * (2 * cov + SSIM_C2)) / ((mu_xx + mu_yy + SSIM_C1) * (var_x + var_y + SSIM_C2))
    return float(ssim_map.mean())


def ssim(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_channel: bool = False) -> float:
    """SSIM as the protocol: 11x11 Gaussian window (sigma 1.5), 'valid' filtering (5 px trimmed per side),
    C1 = (0.01*255)^2, C2 = (0.03*255)^2, mean of the SSIM map, averaged over channels.

    No MATLAB-style downsampling. Needs at least 11x11 pixels after the border crop.
    """
    x, y = _prepare(a, b, border, y_channel)
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise SwinIRError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {x.shape[0]}x{x.shape[1]}")
    return float(np.mean([_ssim_channel(x[..., c], y[..., c]) for c in range(x.shape[2])]))


def blocking_effect_factor(img: np.ndarray) -> float:
    """BEF of one HxW channel in [0, 1] on the 8x8 JPEG block grid (Yim & Bovik 2011, PSNR-B).

    Mean squared difference between horizontal/vertical neighbours straddling a block boundary (after
    columns/rows 7, 15, ...) minus that of all other neighbour pairs, scaled by
    ``log2(8) / log2(min(H, W))`` and floored at 0. The boundary count is ``H * (W // 8 - 1)`` (and
    likewise vertically), as in the reference, which matters only for sizes that are not multiples of 8.
    """
    h, w = img.shape
    bs = PSNRB_BLOCK
    d_h = (img[:, :-1] - img[:, 1:]) ** 2  # pair (x, x+1) for x = 0..W-2
    d_v = (img[:-1, :] - img[1:, :]) ** 2
    cols = np.arange(bs - 1, w - 1, bs)
    rows = np.arange(bs - 1, h - 1, bs)
    boundary_sum = d_h[:, cols].sum() + d_v[rows, :].sum()
    nonboundary_sum = d_h.sum() - d_h[:, cols].sum() + d_v.sum() - d_v[rows, :].sum()
    n_boundary_h = h * (w // bs - 1)
    n_boundary_v = w * (h // bs - 1)
    n_nonboundary_h = h * (w - 1) - n_boundary_h
    n_nonboundary_v = w * (h - 1) - n_boundary_v
    boundary = boundary_sum / (n_boundary_h + n_boundary_v)
    nonboundary = nonboundary_sum / (n_nonboundary_h + n_nonboundary_v)
    if boundary <= nonboundary:
        return 0.0
    return float(math.log2(bs) / math.log2(min(h, w)) * (boundary - nonboundary))


def psnrb(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_channel: bool = False) -> float:
    """PSNR-B in dB: PSNR with the blocking effect factor of ``a`` added to the MSE.

    ``a`` is the image under test (the restored or decoded image; its blockiness is penalised), ``b`` the
    ground truth. Per channel, on [0, 1] values: ``10 log10(1 / (mse + BEF(a)))``, then averaged over
    channels (``inf`` for a channel with mse + BEF = 0).
    """
    x, y = _prepare(a, b, border, y_channel)
    if min(x.shape[:2]) < 2 * PSNRB_BLOCK:
        raise SwinIRError(f"PSNR-B needs at least 16x16 pixels, got {x.shape[0]}x{x.shape[1]}")
    x, y = x / 255.0, y / 255.0
    total = 0.0
    for c in range(x.shape[2]):
        mse = float(np.mean((x[..., c] - y[..., c]) ** 2))
        denom = mse + blocking_effect_factor(x[..., c])
        total += math.inf if denom == 0 else 10.0 * math.log10(1.0 / denom)
    return total / x.shape[2]
