"""MATLAB imresize, the protocol's noise and JPEG, and the real-world degradation pipeline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import shared_path
from swinir.degradations import (
    DegradationStage,
    PhotoDegradationConfig,
    RealDegradationConfig,
    add_gaussian_noise,
    contributions,
    cubic,
    gaussian_kernel,
    imresize,
    jpeg_compress,
    modcrop,
    photo_degrade,
    random_noise,
    real_degrade,
    rgb_to_y_uint8,
    sinc_kernel,
)
from swinir.errors import SwinIRError
from swinir.metrics import psnr


def read_unchanged_rgb(path: Path) -> np.ndarray:
    """uint8 as stored: HxW for 1-channel files (Set14 bridge), RGB HxWx3 otherwise."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return img if img.ndim == 2 else img[..., ::-1]


# --------------------------------------------------------------------------------------------------
# imresize: the distributed MATLAB LR files
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_imresize_reproduces_matlab_lr_files(dataset: str, scale: int) -> None:
    root = shared_path("datasets", dataset)
    total = identical = 0
    worst = 0
    for hr_path in sorted((root / "HR").glob("*.png")):
        hr = read_unchanged_rgb(hr_path)  # bridge stays gray, as its LR file is stored
        lr = read_unchanged_rgb(root / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png")
        out = imresize(modcrop(hr, scale), 1 / scale)
        assert out.dtype == np.uint8 and out.shape == lr.shape, hr_path.name
        diff = np.abs(out.astype(np.int16) - lr)
        total += diff.size
        identical += int((diff == 0).sum())
        worst = max(worst, int(diff.max()))
        if dataset == "Set5" and scale == 2:
            assert worst == 0, f"{hr_path.name}: Set5 x2 must match exactly"
    assert identical / total >= 0.999
    assert worst <= 1


def test_imresize_float_path_reproduces_set5_x8() -> None:
    # Set5 X8 was made with a float MATLAB-style bicubic rounded once at the end (MANIFEST.md)
    root = shared_path("datasets", "Set5")
    for hr_path in sorted((root / "HR").glob("*.png")):
        hr = read_unchanged_rgb(hr_path)
        lr = read_unchanged_rgb(root / "LR_bicubic" / "X8" / f"{hr_path.stem}x8.png")
        out = imresize(modcrop(hr, 8).astype(np.float64) / 255, 1 / 8)
        assert np.array_equal(np.clip(np.round(out * 255), 0, 255), lr), hr_path.name


# --------------------------------------------------------------------------------------------------
# imresize: hand cases
# --------------------------------------------------------------------------------------------------


def test_cubic_kernel_values() -> None:
    x = np.array([0, 0.25, 0.75, 1, 1.25, 1.75, 2, 2.5, -0.25])
    expected = [1, 0.8671875, 0.2265625, 0, -0.0703125, -0.0234375, 0, 0, 0.8671875]
    assert np.allclose(cubic(x), expected, rtol=0, atol=1e-15)


def test_contributions_upscale_hand_case() -> None:
    # x2 up, output pixel 1 sits at u = 0.75; taps at 1-based -1, 0, 1, 2 with cubic(1.75, 0.75, 0.25, 1.25)
    weights, indices = contributions(4, 8, 2.0)
    row = dict.fromkeys(range(4), 0.0)
    for w, i in zip(weights[0], indices[0], strict=True):
        row[int(i)] += w  # -1 mirrors to 1 (0-based), 0 to 0
    assert row == {0: 0.2265625 + 0.8671875, 1: -0.0234375 - 0.0703125, 2: 0.0, 3: 0.0}


def test_contributions_antialiased_downscale_hand_case() -> None:
    # x1/2: the kernel is stretched to width 8 and halved: weights 0.5 * cubic(dist / 2), dist = +-0.5 .. +-3.5
    weights, indices = contributions(4, 2, 0.5)
    half = [-0.0234375, -0.0703125, 0.2265625, 0.8671875]
    expected = 0.5 * np.array([*half, *half[::-1]])
    assert np.allclose(weights[0], expected, atol=1e-15)
    assert indices[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 3]  # mirrored at the top edge
    assert np.allclose(weights.sum(axis=1), 1)


def test_imresize_1d_upscale_value() -> None:
    column = np.array([[10.0], [42.0], [0.0], [0.0]])
    out = imresize(column, output_shape=(8, 1))
    assert out[0, 0] == pytest.approx(1.09375 * 10 - 0.09375 * 42)  # from the hand case above: 7.0


def test_imresize_uint8_rounds_half_away_from_zero() -> None:
    # 1.09375 * 48 - 0.09375 * 0 = 52.5 exactly: MATLAB gives 53 (numpy's round would give 52)
    column = np.array([[48], [0], [0], [0]], dtype=np.uint8)
    out = imresize(column, output_shape=(8, 1))
    assert out.dtype == np.uint8 and out[0, 0] == 53
    # negative overshoot clips to 0 in the uint8 path, stays negative in float
    assert out[3, 0] == 0 and imresize(column.astype(np.float64), output_shape=(8, 1))[3, 0] == -3.375


def test_imresize_uint8_rounds_after_each_pass() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    # equal scales: height first
    rows_then_cols = imresize(imresize(img, output_shape=(18, 11)), output_shape=(18, 22))
    assert np.array_equal(imresize(img, 2), rows_then_cols)
    assert not np.array_equal(imresize(imresize(img, output_shape=(9, 22)), output_shape=(18, 22)), rows_then_cols)
    single = np.clip(np.floor(imresize(img.astype(np.float64), 2) + 0.5), 0, 255)
    assert not np.array_equal(single, rows_then_cols)  # the per-pass rounding is visible
    # unequal scales: the dimension with the smaller scale first (MATLAB's order), here the width
    cols_then_rows = imresize(imresize(img, output_shape=(9, 24)), output_shape=(20, 24))
    assert np.array_equal(imresize(img, output_shape=(20, 24)), cols_then_rows)


def test_imresize_constant_image_stays_constant() -> None:
    for shape, scale in [((7, 5), 3.0), ((16, 12, 3), 0.5), ((9, 9), 1 / 3)]:
        flat = np.full(shape, 0.3)
        assert np.allclose(imresize(flat, scale), 0.3, atol=1e-12)
        u8 = np.full(shape, 77, np.uint8)
        assert np.all(imresize(u8, scale) == 77)


def test_imresize_shapes_and_dtypes() -> None:
    img = np.zeros((30, 20, 3), np.float32)
    assert imresize(img, 0.1).shape == (3, 2, 3)  # 30 * 0.1 is 3.0000000000000004 in floating point
    assert imresize(img, 0.1).dtype == np.float32
    assert imresize(img, output_shape=(7, 9)).shape == (7, 9, 3)
    assert imresize(np.zeros((5, 5)), 2.5).shape == (13, 13)
    with pytest.raises(SwinIRError):
        imresize(img)
    with pytest.raises(SwinIRError):
        imresize(img.astype(np.int32), 2)


def test_imresize_without_antialias_differs_when_shrinking() -> None:
    img = np.random.default_rng(2).random((32, 32))
    assert not np.allclose(imresize(img, 0.5), imresize(img, 0.5, antialias=False))
    assert np.allclose(imresize(img, 2), imresize(img, 2, antialias=False))  # no effect when enlarging


def test_imresize_torch_batched_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    batch = rng.random((2, 3, 17, 13))
    out = imresize(torch.from_numpy(batch), 1 / 3)
    assert out.shape == (2, 3, 6, 5) and out.dtype == torch.float64
    for b in range(2):
        expected = imresize(batch[b].transpose(1, 2, 0), 1 / 3).transpose(2, 0, 1)
        assert np.allclose(out[b].numpy(), expected, atol=1e-12)
    chw = torch.from_numpy(batch[0]).float()
    assert imresize(chw, 2).shape == (3, 34, 26) and imresize(chw, 2).dtype == torch.float32
    u8 = rng.integers(0, 256, (3, 12, 10), dtype=np.uint8)
    via_torch = imresize(torch.from_numpy(u8), 0.5).numpy().transpose(1, 2, 0)
    assert np.array_equal(via_torch, imresize(u8.transpose(1, 2, 0), 0.5))


def test_modcrop() -> None:
    assert modcrop(np.zeros((13, 10, 3)), 4).shape == (12, 8, 3)
    assert modcrop(np.zeros((13, 10)), 3).shape == (12, 9)
    assert modcrop(torch.zeros(1, 3, 13, 10), 4).shape == (1, 3, 12, 8)


# --------------------------------------------------------------------------------------------------
# Gaussian noise, JPEG, Y
# --------------------------------------------------------------------------------------------------


def test_randomstate_stream_equals_global_seed_stream() -> None:
    saved = np.random.get_state()
    try:
        np.random.seed(0)
        global_draw = np.random.normal(0, 25 / 255, (4, 5, 3))
    finally:
        np.random.set_state(saved)
    assert np.array_equal(np.random.RandomState(0).normal(0, 25 / 255, (4, 5, 3)), global_draw)


def test_gaussian_noise_gray_matches_reference_and_leaves_global_state() -> None:
    img = np.random.default_rng(4).random((6, 7)).astype(np.float32)
    before = np.random.get_state()[1].copy()
    noisy = add_gaussian_noise(img, 25, seed=0)
    assert np.array_equal(np.random.get_state()[1], before)  # the global RNG is untouched
    expected = img + np.random.RandomState(0).normal(0, 25 / 255, img.shape)
    assert noisy.dtype == np.float64 and np.array_equal(noisy, expected)


def test_gaussian_noise_color_is_drawn_in_bgr_order() -> None:
    rgb = np.random.default_rng(5).random((5, 4, 3)).astype(np.float32)
    bgr = rgb[..., ::-1]
    reference_bgr = bgr + np.random.RandomState(0).normal(0, 15 / 255, bgr.shape)  # the reference's draw
    noisy = add_gaussian_noise(rgb, 15, seed=0)
    assert np.array_equal(noisy, reference_bgr[..., ::-1])
    # not the same as drawing on the RGB array
    assert not np.array_equal(noisy, rgb + np.random.RandomState(0).normal(0, 15 / 255, rgb.shape))


def test_gaussian_noise_is_not_clipped() -> None:
    noisy = add_gaussian_noise(np.zeros((32, 32)), 50, seed=0)
    assert noisy.min() < 0
    assert not np.array_equal(noisy, np.round(noisy * 255) / 255)


def test_jpeg_matches_opencv_on_bgr() -> None:
    rng = np.random.default_rng(6)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), (5, 5), 2)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 20])
    assert ok
    assert np.array_equal(jpeg_compress(rgb, 20), cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    gray = rgb[..., 1].copy()
    ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 10])
    out = jpeg_compress(gray, 10)
    assert out.shape == gray.shape and np.array_equal(out, cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    with pytest.raises(SwinIRError):
        jpeg_compress(gray.astype(np.float32), 10)


def test_rgb_to_y_uint8_hand_values() -> None:
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]], np.uint8)
    y = rgb_to_y_uint8(img)
    manual = 16 + (65.481 * 100 + 128.553 * 150 + 24.966 * 200) / 255  # 128.59...
    assert y.dtype == np.uint8
    assert y[0].tolist() == [16, 235, 81, 145, 41, round(manual)]


# --------------------------------------------------------------------------------------------------
# Real-world degradations
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hr_patch() -> np.ndarray:
    path = shared_path("datasets", "Set5", "HR", "butterfly.png")
    return cv2.imread(str(path))[64:192, 64:192, ::-1].astype(np.float32) / 255


def test_default_ranges_are_real_esrgan() -> None:
    cfg = RealDegradationConfig()
    assert cfg.first.kernel_sizes == tuple(range(7, 22, 2)) and cfg.second.kernel_sizes == cfg.first.kernel_sizes
    assert (cfg.first.blur_sigma, cfg.second.blur_sigma) == ((0.2, 3.0), (0.2, 1.5))
    assert (cfg.first.resize_range, cfg.second.resize_range) == ((0.15, 1.5), (0.3, 1.2))
    assert (cfg.first.noise_range, cfg.second.noise_range) == ((1, 30), (1, 25))
    assert (cfg.first.poisson_scale_range, cfg.second.poisson_scale_range) == ((0.05, 3), (0.05, 2.5))
    assert cfg.first.jpeg_range == cfg.second.jpeg_range == (30, 95)
    assert (cfg.first.blur_prob, cfg.second.blur_prob, cfg.final_sinc_prob) == (1.0, 0.8, 0.8)
    assert dataclasses.is_dataclass(DegradationStage)


def test_kernels_are_normalised_and_symmetric() -> None:
    for k in [gaussian_kernel(21, 3.0, 1.0, 0.7), gaussian_kernel(7, 1.0, 2.0, -1.0, beta=0.6),
              gaussian_kernel(15, 2.0, 2.0, 0.0, beta=1.5, plateau=True), sinc_kernel(13, np.pi / 4)]:
        assert k.sum() == pytest.approx(1.0)
        assert np.allclose(k, k[::-1, ::-1])  # point symmetric: filtering == convolution
    iso = gaussian_kernel(11, 1.5, 1.5)
    g = cv2.getGaussianKernel(11, 1.5)
    assert np.allclose(iso, g @ g.T)


def test_real_degrade_shape_range_and_determinism(hr_patch: np.ndarray) -> None:
    a = real_degrade(hr_patch, np.random.default_rng(7))
    b = real_degrade(hr_patch, np.random.default_rng(7))
    c = real_degrade(hr_patch, np.random.default_rng(8))
    assert a.shape == (32, 32, 3) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)  # 8-bit values
    x2 = real_degrade(hr_patch[:125, :127], np.random.default_rng(9), RealDegradationConfig(scale=2))
    assert x2.shape == (62, 63, 3)


def test_real_degrade_lowers_psnr(hr_patch: np.ndarray) -> None:
    bicubic = np.clip(np.round(imresize(hr_patch.astype(np.float64), 0.25) * 255), 0, 255)
    scores = [psnr(real_degrade(hr_patch, np.random.default_rng(seed)) * 255, bicubic) for seed in range(6)]
    assert np.mean(scores) < 30, scores  # a clean bicubic LR would be infinite; degradations are substantial
    assert max(scores) < 45, scores


# --------------------------------------------------------------------------------------------------
# The first-order photo degradation
# --------------------------------------------------------------------------------------------------


def test_photo_degrade_without_blur_and_noise_is_matlab_bicubic_then_opencv_jpeg(hr_patch: np.ndarray) -> None:
    """With blur and noise switched off and MATLAB's resize forced, the photo degradation is exactly what the
    held-out test feeds the model: MATLAB bicubic x1/4, rounded to 8 bits, then OpenCV's JPEG (on BGR)."""
    stage = dataclasses.replace(PhotoDegradationConfig().stage, blur_prob=0.0, noise_prob=0.0)
    config = PhotoDegradationConfig(stage=stage, resize_modes=("matlab",), resize_probs=(1.0,))
    out = photo_degrade(hr_patch, np.random.default_rng(3), 75, config)
    lr = np.clip(np.round(imresize(hr_patch.astype(np.float64), output_shape=(32, 32)) * 255), 0, 255)
    ok, buf = cv2.imencode(".jpg", lr.astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    expected = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    assert ok and out.shape == (32, 32, 3) and out.dtype == np.float32
    assert np.abs(out - expected).max() <= 1 / 255 + 1e-6  # float-to-8-bit rounding may differ by one level
    assert np.mean(np.abs(out - expected) > 1e-6) < 0.01


def test_photo_degrade_is_milder_than_the_real_world_pipeline(hr_patch: np.ndarray) -> None:
    """Every sample is an 8-bit image of exactly H/4 x W/4; on average it stays much closer to a clean
    bicubic LR than Real-ESRGAN's second-order degradation (the point of a first-order one)."""
    bicubic = np.clip(np.round(imresize(hr_patch.astype(np.float64), 0.25) * 255), 0, 255)
    photo, real = [], []
    for seed in range(8):
        out = photo_degrade(hr_patch, np.random.default_rng(seed), 30 + 8 * seed)
        assert out.shape == (32, 32, 3) and out.min() >= 0 and out.max() <= 1
        assert np.allclose(out * 255, np.round(out * 255), atol=1e-4)
        photo.append(psnr(out * 255, bicubic))
        real.append(psnr(real_degrade(hr_patch, np.random.default_rng(seed)) * 255, bicubic))
    assert np.mean(photo) > np.mean(real) + 3, (photo, real)
    assert np.array_equal(photo_degrade(hr_patch, np.random.default_rng(1), 50),
                          photo_degrade(hr_patch, np.random.default_rng(1), 50))


def test_noise_probability_zero_leaves_the_image_alone() -> None:
    img = np.full((8, 8, 3), 0.5, dtype=np.float32)
    assert np.array_equal(random_noise(np.random.default_rng(0), img, DegradationStage(noise_prob=0.0)), img)
    assert not np.array_equal(random_noise(np.random.default_rng(0), img, DegradationStage()), img)


def test_photo_degrade_refuses_what_it_cannot_degrade() -> None:
    with pytest.raises(SwinIRError, match="float HxWx3"):
        photo_degrade(np.zeros((16, 16, 3), np.uint8), np.random.default_rng(0), 75)
    with pytest.raises(SwinIRError, match="smaller than the scale"):
        photo_degrade(np.zeros((3, 16, 3), np.float32), np.random.default_rng(0), 75)
