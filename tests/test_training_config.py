"""Training configs: typed validation, clear errors, overrides, recipes, the LR schedule, the task table."""

from __future__ import annotations

from pathlib import Path

import pytest

from swinir import PRESETS, SwinIRError
from swinir.tasks import TASKS
from swinir.training.config import RunConfig, apply_overrides, load_config, parse_config, recipe_names
from test_training import tiny_raw, write_yaml


def test_every_shipped_recipe_validates() -> None:
    names = recipe_names()
    assert {"classical_sr_x2", "classical_sr_x8", "lightweight_sr_x4", "real_sr_x4_psnr", "real_sr_x4_gan", "gray_dn",
            "color_dn", "gray_car", "color_car", "cpu_sr_x2", "bundled_sr_x2"} <= set(names)
    for name in names:
        config = load_config(recipe=name)
        assert parse_config(config.to_dict()) == config  # plain data round trip (what checkpoints store)


def test_recipes_inherit_with_base() -> None:
    x4 = load_config(recipe="classical_sr_x4")
    assert x4.model == PRESETS["classical_sr_x4"].config and x4.task.scale == 4 and x4.data.patch_size == 48
    gan = load_config(recipe="real_sr_x4_gan")
    assert gan.train.stage == "gan" and gan.train.milestones == () and gan.data.patch_size == 64
    gray = load_config(recipe="cpu_gray_car")
    assert gray.model.in_chans == 1 and gray.model.window_size == 7 and gray.val.folder == "classic5"


def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path, train={"lrate": 1e-4})
    with pytest.raises(SwinIRError, match=r"unknown key 'train\.lrate'; valid keys in train: iterations, lr, betas"):
        parse_config(raw)
    with pytest.raises(SwinIRError, match=r"unknown key 'train\.batch_size'.*did you mean data\.batch_size"):
        parse_config(tiny_raw(tmp_path, train={"batch_size": 8}))
    with pytest.raises(SwinIRError, match=r"unknown key 'optim'; valid keys in config: model, task, data"):
        parse_config({**tiny_raw(tmp_path), "optim": {}})
    with pytest.raises(SwinIRError, match=r"unknown model config keys|unknown key 'model\.width'"):
        parse_config(tiny_raw(tmp_path, model={"width": 3}))


@pytest.mark.parametrize(("section", "values", "message"), [
    ("train", {"lr": "fast"}, r"train\.lr: expected a number, got 'fast' \(str\)"),
    ("data", {"batch_size": 1.5}, r"data\.batch_size: expected an integer, got 1\.5"),
    ("log", {"tensorboard": "yes"}, r"log\.tensorboard: expected true or false"),
    ("train", {"precision": "fp8"}, r"train\.precision: 'fp8' is not one of fp32, bf16, fp16"),
    ("task", {"sigma": [15]}, r"task\.sigma: expected a list of 2 values, got 1"),
    ("data", {"train": "train"}, r"data\.train: expected a list"),
    ("model", {"depths": ["two"]}, r"model\.depths\[0\]: expected an integer"),
])
def test_wrong_types_are_errors(tmp_path: Path, section: str, values: dict, message: str) -> None:
    with pytest.raises(SwinIRError, match=message):
        parse_config(tiny_raw(tmp_path, **{section: values}))


def test_cross_section_rules(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match=r"model\.upscale 2 differs from task\.scale 3"):
        parse_config(tiny_raw(tmp_path, task={"scale": 3}))
    with pytest.raises(SwinIRError, match="patch_size 18 must be a positive multiple of the window size 4"):
        parse_config(tiny_raw(tmp_path, data={"patch_size": 18}))
    with pytest.raises(SwinIRError, match="color_dn keeps the image size"):
        parse_config(tiny_raw(tmp_path, task={"name": "color_dn", "scale": 2}))
    with pytest.raises(SwinIRError, match=r"works on 1-channel images but model\.in_chans is 3"):
        parse_config(tiny_raw(tmp_path, task={"name": "gray_dn", "scale": 1}, model={"upscale": 1, "upsampler": ""}))
    with pytest.raises(SwinIRError, match=r"task\.quality must be \[low, high\] within 1\.\.100"):
        parse_config(tiny_raw(tmp_path, task={"quality": [50, 10]}))
    with pytest.raises(SwinIRError, match="missing section"):
        parse_config({"task": {"name": "classical_sr"}})


def test_yaml_quirks_numeric_strings_and_preset_names(tmp_path: Path) -> None:
    config = parse_config(tiny_raw(tmp_path, train={"lr": "2e-4"}))  # PyYAML reads 2e-4 as a string
    assert config.train.lr == 2e-4
    raw = tiny_raw(tmp_path)
    raw["model"] = "lightweight_sr_x2"
    raw["data"]["patch_size"] = 64
    assert parse_config(raw).model == PRESETS["lightweight_sr_x2"].config
    raw["model"] = "lightweight_x2"
    with pytest.raises(SwinIRError, match="unknown preset 'lightweight_x2'; choose one of"):
        parse_config(raw)


def test_overrides_are_parsed_as_yaml_and_validated_like_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", tiny_raw(tmp_path))
    config = load_config(path, overrides=["data.batch_size=16", "task.sigma=[5, 25]", "val.folder=null",
                                          "train.betas=[0.9, 0.999]"])
    assert config.data.batch_size == 16 and config.task.sigma == (5.0, 25.0) and config.val.folder is None
    assert config.train.betas == (0.9, 0.999)
    # one number is a non-blind level: [x, x]
    fixed = load_config(path, overrides=["task.sigma=25", "task.quality=10"])
    assert fixed.task.sigma == (25.0, 25.0) and fixed.task.quality == (10, 10)
    assert parse_config(fixed.to_dict()) == fixed
    with pytest.raises(SwinIRError, match=r"--set expects SECTION\.KEY=VALUE, got 'data\.batch_size'"):
        load_config(path, overrides=["data.batch_size"])
    with pytest.raises(SwinIRError, match=r"unknown section 'optim'; valid sections: model, task"):
        load_config(path, overrides=["optim.lr=1"])
    with pytest.raises(SwinIRError, match=r"unknown key 'batch_size' in train \(did you mean data\.batch_size\?\)"):
        load_config(path, overrides=["train.batch_size=16"])
    with pytest.raises(SwinIRError, match=r"data\.batch_size: expected an integer, got 'many'"):
        load_config(path, overrides=["data.batch_size=many"])
    with pytest.raises(SwinIRError, match="not valid YAML"):
        load_config(path, overrides=["task.sigma=[5, 25"])


def test_override_of_one_model_key_expands_a_preset_name() -> None:
    raw = apply_overrides({"model": "lightweight_sr_x2"}, ["model.embed_dim=48"])
    assert raw["model"]["embed_dim"] == 48 and raw["model"]["depths"] == [6, 6, 6, 6]


def test_data_root_is_fixed_at_load_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tiny_raw(tmp_path)
    del raw["data"]["root"]
    path = write_yaml(tmp_path / "c.yaml", raw)
    monkeypatch.setenv("SWINIR_DATA", str(tmp_path / "datasets"))
    config = load_config(path)
    assert config.data.root == str((tmp_path / "datasets").resolve())
    assert config.resolve_path("train/T91") == tmp_path / "datasets" / "train" / "T91"
    assert config.resolve_path("/abs/folder") == Path("/abs/folder")


def test_base_may_be_a_recipe_or_a_file_and_cycles_are_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("base: cpu_sr_x2\ntrain: {iterations: 10}\nmodel: {embed_dim: 36}\n")
    config = load_config(tmp_path / "mine.yaml")
    assert config.train.iterations == 10 and config.model.embed_dim == 36 and config.model.depths == (4, 4, 4, 4)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(SwinIRError, match="includes itself"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(SwinIRError, match="unknown recipe 'nope'; choose one of: "):
        load_config(recipe="nope")


OLD_GAN_CONFIG = """\
base: cpu_real_sr_x4
train:
  stage: gan
  iterations: 20000
  lr: 1.0e-4
  milestones: []
  d_lr: 2.0e-4
  d_channels: 32
  gan_loss: hinge
  perceptual_weights: vgg19.pth
  perceptual_layers: {conv5_4: 1.0}
"""


def test_configs_with_the_gan_settings_in_train_still_load(tmp_path: Path) -> None:
    """Before the GAN stage had its section, its settings were train's: such files load as they did."""
    path = tmp_path / "old_gan.yaml"
    path.write_text(OLD_GAN_CONFIG)
    old = load_config(path)
    assert (old.gan.d_lr, old.gan.d_channels, old.gan.gan_loss, old.gan.perceptual_weights) == (
        2e-4, 32, "hinge", "vgg19.pth")
    assert old.gan.perceptual_layers == {"conv5_4": 1.0} and old.gan.gan_weight == 0.1  # the rest: defaults
    new = load_config(recipe="cpu_real_sr_x4_gan", overrides=[
        "gan.d_lr=2e-4", "gan.gan_loss=hinge", "gan.perceptual_weights=vgg19.pth",
        "gan.perceptual_layers={conv5_4: 1}"])
    assert old == new and "d_lr" not in old.to_dict()["train"]
    assert load_config(path, overrides=["gan.d_lr=3e-4"]).gan.d_lr == 3e-4  # overrides land on the new section
    with pytest.raises(SwinIRError, match=r"unknown key 'd_lr' in train \(did you mean gan\.d_lr\?\)"):
        load_config(path, overrides=["train.d_lr=3e-4"])
    with pytest.raises(SwinIRError, match=r"train\.d_lr is gan\.d_lr now, and both are given"):
        parse_config(tiny_raw(tmp_path, train={"d_lr": 1e-4}, gan={"d_lr": 2e-4}))


def test_learning_rate_halves_at_50_80_90_95_percent(tmp_path: Path) -> None:
    config = parse_config(tiny_raw(tmp_path, train={"iterations": 1000, "lr": 2e-4}))
    assert config.milestone_iterations == (500, 800, 900, 950)
    assert [config.learning_rate(i) for i in (0, 499, 500, 799, 800, 900, 950, 999)] == [
        2e-4, 2e-4, 1e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5, 1.25e-5]


# What training does with each task, written out by hand: the degradation, the images' channels, the scale.
TRAINING_EXPECTATIONS = {
    "classical_sr": ("bicubic", 3, 2), "lightweight_sr": ("bicubic", 3, 2), "real_sr": ("real", 3, 2),
    "photo_sr": ("photo", 3, 4), "gray_dn": ("noise", 1, 1), "color_dn": ("noise", 3, 1),
    "gray_car": ("jpeg", 1, 1), "color_car": ("jpeg", 3, 1),
}


def _task_config(tmp_path: Path, name: str) -> RunConfig:
    _, channels, scale = TRAINING_EXPECTATIONS[name]
    upsampler = {1: "", 2: "pixelshuffledirect", 4: "pixelshuffledirect"}[scale]
    return parse_config(tiny_raw(tmp_path, task={"name": name, "scale": scale, "sigma": [25, 25], "quality": [10, 10]},
                                 model={"in_chans": channels, "upscale": scale, "upsampler": upsampler}))


@pytest.mark.parametrize("name", sorted(TRAINING_EXPECTATIONS))
def test_every_task_trains_with_its_own_degradation(tmp_path: Path, name: str) -> None:
    """Each task's training input from a flat 32x32 patch of value 100: its size, channels and degradation."""
    import cv2
    import numpy as np

    from swinir.training.tasks import task_behaviour

    kind, channels, scale = TRAINING_EXPECTATIONS[name]
    config = _task_config(tmp_path, name)
    assert config.task.name == name
    hr = np.full((32, 32, 3) if channels == 3 else (32, 32), 100, np.uint8)
    level = task_behaviour(name).draw_level(config.task, np.random.default_rng(0))
    lq = task_behaviour(name).degrade(hr, np.random.default_rng(0), config.task, None)
    assert lq.dtype == np.float32 and lq.shape == (32 // scale, 32 // scale, *hr.shape[2:])
    if kind == "bicubic":  # MATLAB bicubic of a flat image is the same flat image
        assert np.array_equal(lq, np.full_like(lq, np.float32(100 / 255))) and level is None
    elif kind == "noise":  # N(0, 25/255) around the patch, neither clipped nor rounded
        assert level == 25.0 and abs(float(lq.mean()) - 100 / 255) < 0.01
        assert abs(float(lq.std()) - 25 / 255) < 0.01
    elif kind == "jpeg":  # OpenCV's JPEG at quality 10, decoded
        assert level == 10
        ok, buf = cv2.imencode(".jpg", hr, [int(cv2.IMWRITE_JPEG_QUALITY), 10])
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        assert ok and np.array_equal(lq, decoded.astype(np.float32) / 255)
    else:  # real-world pipelines: random blur, noise and JPEG, so the flat patch does not stay flat
        assert level == (10 if kind == "photo" else None) and float(lq.std()) > 0


def test_task_names_are_the_task_tables(tmp_path: Path) -> None:
    """Every name of swinir.tasks' table is a task a config accepts; any other is refused, naming them."""
    assert set(TASKS) == set(TRAINING_EXPECTATIONS)  # a new task needs its expectation above
    with pytest.raises(SwinIRError, match=r"task\.name: 'gray_sr' is not one of classical_sr, lightweight_sr, "):
        parse_config(tiny_raw(tmp_path, task={"name": "gray_sr"}))


def test_train_precision_is_the_package_precision_type() -> None:
    """One Precision type: the config's train.precision values are swinir.precision's (fp32, bf16, fp16)."""
    import typing

    from swinir import precision
    from swinir.training import config

    assert config.Precision is precision.Precision
    assert typing.get_type_hints(config.TrainSection)["precision"] is precision.Precision
