"""The model contract: the metadata record, the descriptor (precisions, memory), what weights cannot tell, and
refusals as data worded by each front end (issue 28, items 1-3)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import swinir
from swinir import engine
from swinir.cli import error_line
from swinir.descriptor import BACKENDS, ModelDescriptor, ModelInfo, backend_precision, describe
from swinir.errors import OptionRefused, SwinIRError, WeightsMismatch
from swinir.metadata import CONFIG_KEY, ModelMetadata, entries
from swinir.presets import PRESETS, ModelConfig, architecture_family, published_img_range
from swinir.service.registry import api_words
from swinir.taskops import DEGRADATIONS, paper_degradation, run_baseline, score
from swinir.tasks import RESTORE_LEVELS, TASKS, get_task, level_family

SMALL = ModelConfig(upscale=2, in_chans=3, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                    upsampler="pixelshuffledirect")


# --------------------------------------------------------------------------------------------------
# metadata: one module reads and writes the swinir.* keys
# --------------------------------------------------------------------------------------------------


def test_metadata_reads_typed_values_and_drops_other_keys() -> None:
    stored = {CONFIG_KEY: SMALL.to_json(), "swinir.task": "color_dn", "swinir.iterations": "12",
              "swinir.train_hours": "1.5", "swinir.history": '[{"start": 0, "end": 12}]',
              "swinir.training_config": '{"task": {"sigma": [0, 50], "quality": 40}}', "format": "not ours"}
    meta = ModelMetadata(stored)
    assert len(meta) == 6 and "format" not in meta and meta["swinir.task"] == "color_dn"
    assert (meta.config, meta.task, meta.iterations, meta.train_hours) == (SMALL, "color_dn", 12, 1.5)
    assert meta.cpu_hours is None and meta.val_psnr is None and meta.description is None
    assert meta.history == ({"start": 0, "end": 12},)
    assert meta.trained_level("sigma") == (0.0, 50.0)
    assert meta.trained_level("quality") is None  # one number is not a range the file records
    assert CONFIG_KEY not in meta.without_config() and len(meta.without_config()) == 5


def test_metadata_refuses_what_does_not_parse_in_one_line() -> None:
    with pytest.raises(SwinIRError, match=r"'swinir\.config' metadata is not valid JSON"):
        _ = ModelMetadata({CONFIG_KEY: "{oops"}).config
    with pytest.raises(SwinIRError, match=r"'swinir\.iterations' metadata is not a number"):
        _ = ModelMetadata({"swinir.iterations": "many"}).iterations


def test_entries_are_the_stored_strings() -> None:
    written = entries(SMALL, {"task": "classical_sr", "swinir.iterations": 7, "data": {"a": [1]}})
    assert written == {"swinir.config": SMALL.to_json(), "swinir.task": "classical_sr", "swinir.iterations": "7",
                       "swinir.data": '{"a": [1]}'}
    assert ModelMetadata(written).iterations == 7 and json.loads(written["swinir.config"])["embed_dim"] == 12


def test_a_saved_file_reads_back_through_the_record(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    swinir.save_safetensors(path, SMALL.build(), SMALL, {"task": "classical_sr", "iterations": 3})
    model = swinir.load(path)
    assert isinstance(model, ModelDescriptor) and isinstance(model.network, swinir.SwinIR)
    assert model.metadata.task == "classical_sr" and model.metadata.iterations == 3 and model.config == SMALL
    assert not hasattr(model.network, "config") and not hasattr(model.network, "metadata")  # nothing attached
    assert (model.info.family, model.info.scale, model.info.channels) == ("sr", 2, 3)


# --------------------------------------------------------------------------------------------------
# the descriptor: precisions and memory, no magic numbers
# --------------------------------------------------------------------------------------------------


def test_memory_per_pixel_from_the_config_by_backend() -> None:
    """SwinIR-S x4: embed 60, MLP x2, 6 heads, 8x8 windows, x4 head: 60 * (8 + 4) + 6 * 64 * 2 + 64 * 16 * 3 =
    4560 elements per LR pixel; 4 bytes in fp32, 2 in bf16; PyTorch's factor 1.5, onnxruntime's 1.2 (fp32 only)."""
    config = PRESETS["lightweight_sr_x4"].config
    info = ModelInfo.of_architecture(config)
    torch_model = ModelDescriptor(None, config, info)
    assert torch_model.activation_bytes_per_pixel("fp32") == pytest.approx(4560 * 4 * 1.5)
    assert torch_model.activation_bytes_per_pixel("bf16") == pytest.approx(4560 * 2 * 1.5)
    ort = ModelDescriptor(None, config, info, backend="onnxruntime")
    assert ort.activation_bytes_per_pixel("bf16") == pytest.approx(4560 * 4 * 1.2)
    assert (torch_model.default_memory_cap, ort.default_memory_cap) == (None, 2 << 30)


def test_the_engine_asks_the_descriptor_and_describes_a_bare_network() -> None:
    network = SMALL.build().eval()
    elements = 12 * (8 + 2 * 2.0) + 2 * 64 * 2 + 64 * 4 * 3  # embed 12, MLP x2, 2 heads, window 8, x2
    assert engine.bytes_per_pixel(network) == pytest.approx(elements * 4 * 1.5)
    assert describe(network).config == SMALL and describe(network).info.family == "sr"

    class StandIn(nn.Module):  # not a SwinIR: no estimate, so no automatic tiles (it runs whole)
        upscale, in_chans, window_size = 1, 1, 4

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    assert engine.bytes_per_pixel(StandIn()) is None
    assert engine.auto_tile(StandIn(), 4000, 4000, max_memory=1) is None


@pytest.mark.parametrize("name", ["classical_sr_x3", "real_sr_x4_l", "color_car", "gray_dn", "lightweight_sr_x2"])
def test_config_of_a_built_network_is_its_config(name: str) -> None:
    config = PRESETS[name].config.replace(depths=(2,) * len(PRESETS[name].config.depths))
    assert ModelConfig.of(config.build()) == config


def test_precisions_by_backend() -> None:
    assert BACKENDS["torch"].precisions == ("fp32", "bf16", "fp16")
    assert backend_precision("torch", "auto") == "auto" and backend_precision("torch", "bf16") == "bf16"
    assert backend_precision("onnxruntime", "auto") == "fp32" == backend_precision("onnxruntime", "fp32")
    with pytest.raises(OptionRefused) as refused:
        backend_precision("onnxruntime", "bf16")
    err = refused.value
    assert (err.option, err.value, err.accepted, err.alternatives) == ("precision", "bf16", ("fp32",),
                                                                        ("the torch backend for bf16",))
    assert error_line(err) == ("--precision bf16 is not available: the onnxruntime backend computes in fp32; use "
                               "--precision fp32 or the torch backend for bf16")


# --------------------------------------------------------------------------------------------------
# what weights cannot tell, from the table of published networks
# --------------------------------------------------------------------------------------------------


def test_input_range_and_family_come_from_the_published_table() -> None:
    assert published_img_range("", 7) == 255.0  # the JPEG models
    assert published_img_range("", 8) == 1.0 and published_img_range("pixelshuffle", 8) == 1.0
    assert published_img_range("pixelshuffle", 7) == 1.0  # nothing published: the default
    expected = {"classical_sr_x2": "sr", "lightweight_sr_x3": "sr", "real_sr_x4_m": "photo", "color_dn": "denoise",
                "gray_dn": "denoise", "color_car": "jpeg", "gray_car": "jpeg"}
    assert {name: architecture_family(PRESETS[name].config) for name in expected} == expected
    same_size = ModelConfig(window_size=8, upsampler="", upscale=1)
    assert architecture_family(same_size) == "denoise"
    assert architecture_family(same_size.replace(window_size=7)) == "jpeg"  # the JPEG models' window
    assert architecture_family(same_size.replace(img_range=255.0)) == "jpeg"  # or their input range


def test_levels_belong_to_one_family_each() -> None:
    assert RESTORE_LEVELS == {"denoise": "sigma", "jpeg": "quality"}
    assert (level_family("sigma"), level_family("quality")) == ("denoise", "jpeg")


# --------------------------------------------------------------------------------------------------
# refusals as data, worded by the CLI and by the service
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("info", "options", "cli", "api"), [
    (ModelInfo("denoise", 1, 3, (0, 50)), {"sigma": 25},
     "--sigma 25 does not apply: the model is blind (trained for sigma 0-50) and estimates the level itself; "
     "remove --sigma",
     "sigma 25 does not apply: the model is blind (trained for sigma 0-50) and estimates the level itself; "
     "leave out the sigma field"),
    (ModelInfo("denoise", 1, 3, (25, 25)), {"sigma": 50},
     "--sigma 50 does not fit: the model was trained for sigma 25 only; use --sigma 25, weights trained for 50 "
     "or a blind model",
     "sigma 50 does not fit: the model was trained for sigma 25 only; use sigma 25, weights trained for 50 or a "
     "blind model"),
    (ModelInfo("sr", 4, 3), {"quality": 10},
     "--quality 10 does not apply: super-resolution models take none (quality is for jpeg models); remove --quality",
     "quality 10 does not apply: super-resolution models take none (quality is for jpeg models); leave out the "
     "quality field"),
    (ModelInfo("sr", 2, 3), {"scale": 3},
     "--scale 3 does not apply: these weights upscale x2; remove --scale, or use weights trained for x3",
     "scale 3 does not apply: these weights upscale x2; leave out the scale field, or use weights trained for x3"),
    (ModelInfo("jpeg", 1, 3), {"scale": 2},
     "--scale 2 does not apply: JPEG artifact reduction keeps the image size; remove --scale",
     "scale 2 does not apply: JPEG artifact reduction keeps the image size; leave out the scale field"),
])
def test_one_refusal_two_wordings(info: ModelInfo, options: dict, cli: str, api: str) -> None:
    with pytest.raises(OptionRefused) as refused:
        info.check_options(**options)
    err = refused.value
    (option, value), = options.items()
    assert (err.option, err.value) == (option, value)
    assert error_line(err) == cli and api_words(err) == api
    assert "--" not in str(err)  # the numerics layer names no flag


def test_refusals_survive_pickling_and_mismatches_keep_their_detail() -> None:
    with pytest.raises(OptionRefused) as refused:
        ModelInfo("denoise", 1, 3, (0, 50)).check_options(sigma=25)
    back = pickle.loads(pickle.dumps(refused.value))
    assert isinstance(back, OptionRefused) and str(back) == str(refused.value) and back.omit
    mismatch = pickle.loads(pickle.dumps(WeightsMismatch("checkpoint does not match the model: 1 missing (a)")))
    assert error_line(mismatch) == ("checkpoint does not match the model: 1 missing (a). Use the preset it was "
                                    "trained with, or omit --preset to infer it")
    assert "--" not in str(mismatch)


# --------------------------------------------------------------------------------------------------
# what a task does to images, shared by evaluation and validation
# --------------------------------------------------------------------------------------------------


def test_every_degradation_has_its_training_draw_and_a_test_protocol_where_there_is_ground_truth() -> None:
    assert {t.degradation for t in TASKS.values()} == set(DEGRADATIONS)
    assert all(DEGRADATIONS[t.degradation].paper is not None for t in TASKS.values() if t.has_ground_truth)
    with pytest.raises(SwinIRError, match="no synthetic test degradation"):
        paper_degradation(get_task("real_sr"), np.zeros((8, 8, 3), np.uint8), 4, None)


def test_scores_and_baselines_by_hand() -> None:
    """A uniform error of 10 on 0-255 everywhere: MSE 100, PSNR 10 log10(255^2 / 100) = 28.1308 dB, on every
    channel; on luma the shift is 10 * (65.481 + 128.553 + 24.966) / 255 = 8.59, so 29.45 dB."""
    gt = np.full((16, 16, 3), 100, np.uint8)
    out = gt + np.uint8(10)
    scores = score(get_task("color_dn"), out, gt, 1, ("psnr", "psnr_y"))
    assert scores["psnr"] == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-4)
    luma = 10 * (65.481 + 128.553 + 24.966) / 255
    assert scores["psnr_y"] == pytest.approx(10 * math.log10(255**2 / luma**2), abs=1e-3)
    assert get_task("classical_sr").headline_metrics == ("psnr_y", "ssim_y")
    assert get_task("color_dn").headline_metrics == ("psnr", "ssim")
    lq = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert run_baseline("identity", lq, 1) is lq
    assert run_baseline("bicubic", np.full((4, 4), 7, np.uint8), 2).tolist() == [[7] * 8] * 8  # flat stays flat
    assert get_task("real_sr").baseline == "bicubic"  # training validates real-world SR against bicubic
