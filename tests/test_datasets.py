"""Benchmark folders shared by evaluation and training: listing, the reference reader, LR partners, names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared_path
from swinir.datasets import dataset_name, find_lr_partner, is_stored_gray, list_images, read_reference
from swinir.degradations import rgb_to_y_uint8
from swinir.errors import SwinIRError
from swinir.evaluation import EvalSettings, bundled_weights_for, has_bundled_model
from swinir.tasks import TASKS
from swinir.training.tasks import TASK_BEHAVIOURS

RNG = np.random.default_rng(3)
BGR = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (12, 10), dtype=np.uint8)


def test_list_images_sorted_by_name_images_only(tmp_path: Path) -> None:
    for name in ("b.png", "a.BMP", "c.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.BMP", "b.png", "c.jpg"]
    with pytest.raises(SwinIRError, match=r"^--hr: folder .*nope not found \(check the path\)$"):
        list_images(tmp_path / "nope", label="--hr", hint="check the path")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SwinIRError, match=r"^dataset: folder .*empty holds no images"):
        list_images(tmp_path / "empty")


def test_read_reference_modes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "c.png"), BGR)
    cv2.imwrite(str(tmp_path / "g.png"), GRAY)
    rgb = BGR[..., ::-1]
    assert np.array_equal(read_reference(tmp_path / "c.png", "color"), rgb)
    assert np.array_equal(read_reference(tmp_path / "c.png", "unchanged"), rgb)
    assert np.array_equal(read_reference(tmp_path / "c.png", "y"), rgb_to_y_uint8(rgb))
    assert np.array_equal(read_reference(tmp_path / "c.png", "gray"),
                          cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_GRAYSCALE))
    assert np.array_equal(read_reference(tmp_path / "g.png", "color"), np.repeat(GRAY[..., None], 3, axis=2))
    for mode in ("unchanged", "gray", "y"):
        assert np.array_equal(read_reference(tmp_path / "g.png", mode), GRAY), mode
    assert is_stored_gray(tmp_path / "g.png") and not is_stored_gray(tmp_path / "c.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(SwinIRError, match=r"bad\.png: not an image OpenCV can decode"):
        read_reference(tmp_path / "bad.png", "color")
    cv2.imwrite(str(tmp_path / "deep.png"), GRAY.astype(np.uint16) * 257)
    with pytest.raises(SwinIRError, match="uint16 images are not supported"):
        read_reference(tmp_path / "deep.png", "unchanged")


def test_set14_bridge_reads_as_its_replicated_gray() -> None:
    bridge = shared_path("datasets", "Set14", "HR", "bridge.png")
    assert is_stored_gray(bridge)
    gray = read_reference(bridge, "unchanged")
    assert np.array_equal(read_reference(bridge, "color"), np.repeat(gray[..., None], 3, axis=2))


def test_lr_partner_lookup(tmp_path: Path) -> None:
    hr = tmp_path / "baby.png"
    assert find_lr_partner(tmp_path, hr, 2) is None
    (tmp_path / "baby.png").write_bytes(b"")
    assert find_lr_partner(tmp_path, hr, 2) is None  # the HR file itself is no partner by default
    assert find_lr_partner(tmp_path, hr, 2, plain_stem=True) == tmp_path / "baby.png"
    (tmp_path / "babyx2.bmp").write_bytes(b"")
    assert find_lr_partner(tmp_path, hr, 2) == tmp_path / "babyx2.bmp"  # any image extension
    assert find_lr_partner(tmp_path, hr, 2, plain_stem=True) == tmp_path / "babyx2.bmp"  # x{scale} first
    (tmp_path / "babyx2.png").write_bytes(b"")
    assert find_lr_partner(tmp_path, hr, 2) == tmp_path / "babyx2.png"  # the ground truth's extension first
    assert find_lr_partner(tmp_path, hr, 3) is None


def test_dataset_names() -> None:
    assert dataset_name(Path("/data/Set5/HR")) == "Set5"
    assert dataset_name(Path("/data/Set5/LR_bicubic/X4")) == "Set5"
    assert dataset_name(Path("/data/classic5")) == "classic5"


def test_task_facts_come_from_the_one_table() -> None:
    for name, spec in TASKS.items():
        behaviour = TASK_BEHAVIOURS[name]
        assert behaviour.spec is spec and (behaviour.channels, behaviour.is_sr) == (spec.channels, spec.upsamples)
        if spec.has_ground_truth:
            settings = EvalSettings(name, 4 if spec.upsamples else 1, sigma=25, quality=10)
            assert (settings.metric_keys, settings.border, settings.is_sr) == (
                spec.metric_keys, spec.metric_border(settings.scale), spec.upsamples)
    # the bundled models are the colour models of the synthetic degradations and of photos (bicubic, then JPEG)
    assert {n for n, spec in TASKS.items() if has_bundled_model(spec)} == {
        "classical_sr", "lightweight_sr", "photo_sr", "color_dn", "color_car"}
    assert bundled_weights_for(EvalSettings("color_car", quality=10)).name == "swinir-c-jpeg.safetensors"
    with pytest.raises(SwinIRError, match="no bundled model for gray_dn"):
        bundled_weights_for(EvalSettings("gray_dn", sigma=25))


def test_evaluation_and_training_do_not_import_each_other() -> None:
    code = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
            "print(any(m == sys.argv[2] or m.startswith(sys.argv[2] + '.') for m in sys.modules))")
    for module, other in (("swinir.evaluation", "swinir.training"), ("swinir.training.data", "swinir.evaluation")):
        out = subprocess.run([sys.executable, "-c", code, module, other], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "False", f"{module} imports {other}"
