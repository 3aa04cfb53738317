"""Training data: degradations per task, alignment, reproducibility across workers and ranks, bad images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from swinir import SwinIRError
from swinir.degradations import imresize, jpeg_compress
from swinir.training.config import parse_config
from swinir.training.data import BatchKeys, TrainDataset, load_validation, make_loader
from test_training import synthetic_images, tiny_raw


def u8(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) float tensor on [0, 1] holding 8-bit values -> HxWxC uint8."""
    return np.round(t.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    synthetic_images(tmp_path / "train", count=5, size=40)
    synthetic_images(tmp_path / "val", count=2, size=36, seed=1)
    return tmp_path


def test_sr_sample_is_the_matlab_bicubic_of_its_hr_patch(root: Path) -> None:
    dataset = TrainDataset(parse_config(tiny_raw(root)))
    lq, hr = dataset[(3, 1)]
    assert lq.shape == (3, 16, 16) and hr.shape == (3, 32, 32)
    assert np.array_equal(u8(lq), imresize(u8(hr), 0.5))


def box_down(img: np.ndarray) -> np.ndarray:
    """2x2 block means, rounded: a downscaling that commutes with crops on even offsets, flips and rotations."""
    x = img.astype(np.int32)
    return ((x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2] + 2) // 4).astype(np.uint8)


def test_paired_folders_give_aligned_crops(root: Path) -> None:
    (root / "lr").mkdir()
    for path in (root / "train").iterdir():
        cv2.imwrite(str(root / "lr" / f"{path.stem}x2.png"), box_down(cv2.imread(str(path))))
    dataset = TrainDataset(parse_config(tiny_raw(root, data={"train_lr": ["lr"]})))
    for key in [(0, 0), (1, 2), (7, 3)]:
        lq, hr = dataset[key]
        assert np.array_equal(u8(lq), box_down(u8(hr))), key  # the LR file's crop matches the HR crop


def test_denoising_and_jpeg_samples(root: Path) -> None:
    same_size = {"upscale": 1, "upsampler": ""}
    dn = TrainDataset(parse_config(tiny_raw(root, task={"name": "color_dn", "scale": 1, "sigma": [20, 20]},
                                            model=same_size)))
    noise = [(lq - hr).numpy() * 255 for lq, hr in (dn[(i, 0)] for i in range(4))]
    assert abs(np.std(noise) - 20) < 1.5 and np.min(noise) < -40  # unclipped Gaussian noise, sigma 20
    gray = TrainDataset(parse_config(tiny_raw(root, task={"name": "gray_car", "scale": 1, "quality": [10, 10]},
                                              model={**same_size, "in_chans": 1, "window_size": 4})))
    lq, hr = gray[(0, 0)]
    assert lq.shape == hr.shape == (1, 16, 16)
    assert np.array_equal(u8(lq)[..., 0], jpeg_compress(u8(hr)[..., 0], 10))


def test_real_world_sample_shapes(root: Path) -> None:
    dataset = TrainDataset(parse_config(tiny_raw(root, task={"name": "real_sr", "scale": 2},
                                                 model={"upsampler": "nearest+conv"})))
    lq, hr = dataset[(0, 0)]
    assert lq.shape == (3, 16, 16) and hr.shape == (3, 32, 32) and lq.min() >= 0 and lq.max() <= 1


def test_samples_do_not_depend_on_workers_or_ranks(root: Path) -> None:
    config = parse_config(tiny_raw(root, data={"batch_size": 4}))
    dataset = TrainDataset(config)
    alone = [b for b in make_loader(dataset, 2, 5, num_workers=0)]
    workers = [b for b in make_loader(TrainDataset(config), 2, 5, num_workers=2)]
    for (a_lq, a_hr), (w_lq, w_hr) in zip(alone, workers, strict=True):
        assert torch.equal(a_lq, w_lq) and torch.equal(a_hr, w_hr)
    ranks = [list(make_loader(dataset, 2, 5, rank=r, world_size=2)) for r in (0, 1)]
    for i, (lq, hr) in enumerate(alone):
        assert torch.equal(torch.cat([ranks[0][i][0], ranks[1][i][0]]), lq)
        assert torch.equal(torch.cat([ranks[0][i][1], ranks[1][i][1]]), hr)
    with pytest.raises(SwinIRError, match="batch_size 4 must be divisible by the 3 processes"):
        BatchKeys(0, 1, 4, 0, 3)


def test_every_image_is_used_once_per_epoch(root: Path) -> None:
    dataset = TrainDataset(parse_config(tiny_raw(root, data={"batch_size": 5})))
    for epoch in range(3):
        assert sorted(dataset.image_index(epoch, s) for s in range(5)) == [0, 1, 2, 3, 4]


def test_bad_and_small_images_are_skipped_and_counted(root: Path) -> None:
    (root / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "train" / "cut.jpg").write_bytes((root / "train" / "img00.png").read_bytes()[:50])
    cv2.imwrite(str(root / "train" / "small.png"), np.zeros((20, 60, 3), np.uint8))
    messages: list[str] = []
    dataset = TrainDataset(parse_config(tiny_raw(root)), log=messages.append)
    assert len(dataset) == 5
    assert dataset.skipped == {"unreadable": 2, "smaller than 32x32": 1}
    assert messages == ["warning: skipped 3 of 8 training images (1 smaller than 32x32, 2 unreadable)"]


def test_unusable_or_empty_folders_fail_at_once(root: Path, tmp_path: Path) -> None:
    (root / "empty").mkdir()
    with pytest.raises(SwinIRError, match=r"data\.train: folder .*empty holds no images"):
        TrainDataset(parse_config(tiny_raw(root, data={"train": ["train", "empty"]})))
    with pytest.raises(SwinIRError, match=r"data\.train: folder .*missing not found"):
        TrainDataset(parse_config(tiny_raw(root, data={"train": ["missing"]})))
    with pytest.raises(SwinIRError, match=r"none of the 5 images is usable \(5 smaller than 128x128\)"):
        TrainDataset(parse_config(tiny_raw(root, data={"patch_size": 64})))


def test_validation_set_is_fixed_cropped_and_degraded_at_the_given_level(root: Path) -> None:
    config = parse_config(tiny_raw(root, task={"name": "color_dn", "scale": 1}, model={"upscale": 1, "upsampler": ""},
                                   val={"crop": 24, "sigma": 30}))
    first, again = load_validation(config), load_validation(config)
    assert [v.name for v in first] == ["img00", "img01"]
    assert first[0].gt.shape == (24, 24, 3) and first[0].lq.shape == (3, 24, 24)
    assert torch.equal(first[1].lq, again[1].lq)
    noise = (first[0].lq.numpy().transpose(1, 2, 0) - first[0].gt / 255.0) * 255
    assert abs(noise.std() - 30) < 3
    sr = load_validation(parse_config(tiny_raw(root, val={"images": ["img01"]})))
    assert len(sr) == 1 and sr[0].gt.shape == (36, 36, 3) and np.array_equal(u8(sr[0].lq), imresize(sr[0].gt, 0.5))
