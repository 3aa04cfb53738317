"""Training configs: typed validation, clear errors, overrides, recipes, the LR schedule, the task table."""

from __future__ import annotations

from pathlib import Path

import pytest

from swinir import PRESETS, SwinIRError
from swinir.tasks import TASKS
from swinir.training.config import apply_overrides, load_config, parse_config, recipe_names
from swinir.training.tasks import TASK_BEHAVIOURS
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


def test_learning_rate_halves_at_50_80_90_95_percent(tmp_path: Path) -> None:
    config = parse_config(tiny_raw(tmp_path, train={"iterations": 1000, "lr": 2e-4}))
    assert config.milestone_iterations == (500, 800, 900, 950)
    assert [config.learning_rate(i) for i in (0, 499, 500, 799, 800, 900, 950, 999)] == [
        2e-4, 2e-4, 1e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5, 1.25e-5]


def test_every_task_of_the_table_can_be_trained() -> None:
    """Each task in swinir.tasks has a degradation sampler and is a name the training config accepts."""
    import typing

    from swinir.training.config import TaskConfig
    from swinir.training.tasks import DEGRADATIONS

    accepted = set(typing.get_args(typing.get_type_hints(TaskConfig)["name"]))
    for name, spec in TASKS.items():
        assert spec.degradation in DEGRADATIONS, name
        assert name in accepted, name
    assert set(TASK_BEHAVIOURS) == set(TASKS) == accepted


def test_train_precision_is_the_package_precision_type() -> None:
    """One Precision type: the config's train.precision values are swinir.precision's (fp32, bf16, fp16)."""
    import typing

    from swinir import precision
    from swinir.training import config

    assert config.Precision is precision.Precision
    assert typing.get_type_hints(config.TrainSection)["precision"] is precision.Precision
