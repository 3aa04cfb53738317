"""Training loop: exact resume, signals, atomic checkpoints, export, learning, the GAN stage, DDP.

Everything runs on tiny networks (embed 12-16, one RSTB of depth 2, window 4) and 16-pixel LR patches, so
the whole module takes well under a minute of CPU. The helpers here are also used by the other
``test_training_*`` modules.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

import swinir
from conftest import shared_path
from swinir import SwinIRError
from swinir.training import Trainer, export_weights, parse_config, train
from swinir.training.state import latest_checkpoint, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {"upscale": 2, "in_chans": 3, "img_size": 16, "window_size": 4, "depths": [2], "embed_dim": 12,
              "num_heads": [2], "mlp_ratio": 2.0, "upsampler": "pixelshuffledirect"}


def synthetic_images(folder: Path, count: int = 6, size: int = 48, seed: int = 0) -> Path:
    """Smooth random RGB images (PNG) that a network can learn something from."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"img{i:02d}.png"), img)
    return folder


def tiny_raw(root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A raw config of a tiny x2 SR run on ``root/train`` (validation on ``root/val`` when present)."""
    raw: dict[str, Any] = {
        "model": dict(TINY_MODEL),
        "task": {"name": "classical_sr", "scale": 2},
        "data": {"root": str(root), "train": ["train"], "patch_size": 16, "batch_size": 4, "num_workers": 0},
        "val": {"folder": "val" if (root / "val").is_dir() else None, "every": 1000},
        "train": {"iterations": 6, "lr": 1e-3, "seed": 3},
        "log": {"every": 1, "tensorboard": False, "plot": False},
        "checkpoint": {"every": 3, "keep": 5},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


def write_yaml(path: Path, raw: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    synthetic_images(tmp_path / "data" / "train")
    synthetic_images(tmp_path / "data" / "val", count=2, size=32, seed=1)
    return tmp_path / "data"


def final_state(run_dir: Path) -> dict[str, Any]:
    return latest_checkpoint(run_dir)[1]


# A checkpoint's top-level keys in format 1, written out by hand (the PSNR stage adds none).
CHECKPOINT_KEYS = {"format", "iteration", "config", "params", "params_ema", "optimizer", "scaler", "rng", "data",
                   "progress", "versions"}


def assert_same_tensors(a: Any, b: Any, where: str = "") -> None:
    """Bitwise equality of nested checkpoint content (tensors, numbers, lists, dicts)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# --------------------------------------------------------------------------------------------------
# Exact resume
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one_bitwise(data_root: Path, tmp_path: Path,
                                                                          precision: str) -> None:
    config = parse_config(tiny_raw(data_root, train={"precision": precision, "drop_path_rate": 0.2,
                                                     "grad_clip": 0.5}))
    assert train(config, tmp_path / "straight") == 0

    trainer = Trainer(config, tmp_path / "interrupted")
    step = trainer.step

    def step_then_signal(*args: Any) -> dict[str, float]:
        stats = step(*args)
        if trainer.iteration == 4:  # between two periodic checkpoints (3 and 6)
            signal.raise_signal(signal.SIGTERM)
        return stats

    trainer.step = step_then_signal
    assert trainer.run() == 143
    assert [it for it, _ in list_checkpoints(tmp_path / "interrupted")] == [3, 4]
    assert train(None, tmp_path / "interrupted", resume=True) == 0

    a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "interrupted")
    assert a["iteration"] == b["iteration"] == 6
    for key in ("params", "params_ema", "optimizer", "rng"):
        assert_same_tensors(a[key], b[key], key)
    rows = (tmp_path / "interrupted" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]  # no duplicated rows


def test_resume_refuses_a_different_config_but_accepts_safe_changes(data_root: Path, tmp_path: Path) -> None:
    raw = tiny_raw(data_root, train={"iterations": 3})
    assert train(parse_config(raw), tmp_path / "run") == 0
    with pytest.raises(SwinIRError, match=r"train\.lr: 0\.001 -> 0\.002.*start a new run"):
        train(None, tmp_path / "run", resume=True, overrides=["train.lr=0.002"])
    changed = parse_config(tiny_raw(data_root, train={"iterations": 3}, model={"embed_dim": 16}))
    with pytest.raises(SwinIRError, match=r"model\.embed_dim: 12 -> 16"):
        train(changed, tmp_path / "run", resume=True)
    assert train(None, tmp_path / "run", resume=True, overrides=["train.iterations=5", "log.every=2"]) == 0
    assert final_state(tmp_path / "run")["iteration"] == 5
    with pytest.raises(SwinIRError, match="already holds a run"):
        train(parse_config(raw), tmp_path / "run")


# --------------------------------------------------------------------------------------------------
# Signals and atomic checkpoints (subprocesses)
# --------------------------------------------------------------------------------------------------


def _wait_for(predicate: Any, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the training process ended early (rc {proc.returncode}): {out[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the training process")
        time.sleep(0.05)


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_exits_143(data_root: Path, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "run.yaml", tiny_raw(data_root, train={"iterations": 100000},
                                                        checkpoint={"every": 0}))
    log = tmp_path / "run" / "log.csv"
    proc = subprocess.Popen([sys.executable, "-m", "swinir.training", str(config), "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: log.is_file() and len(log.read_text().splitlines()) >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert "received SIGTERM" in out and "--resume" in out
    (iteration, path), = list_checkpoints(tmp_path / "run")
    assert iteration >= 2 and load_checkpoint(path)["iteration"] == iteration


SLOW_SAVE = """
import sys, time, torch
real_save = torch.save
calls = []
def save(obj, f, *args, **kwargs):
    calls.append(1)
    real_save(obj, f, *args, **kwargs)
    if len(calls) == 2:  # the second checkpoint: its bytes are in the temporary file, not yet renamed
        print("SAVING", flush=True)
        time.sleep(120)
torch.save = save
from swinir.training import load_config, train
train(load_config(sys.argv[1]), sys.argv[2])
"""


def test_a_writer_killed_mid_save_leaves_the_previous_checkpoint_loadable(data_root: Path, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "run.yaml", tiny_raw(data_root, checkpoint={"every": 2}))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(config), str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: any(p.name.endswith(".tmp") for p in (run / "checkpoints").glob(".iter_*")), proc)
    while proc.stdout.readline().strip() != "SAVING":  # the temporary file is complete, the rename pending
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [it for it, _ in list_checkpoints(run)] == [2]
    assert list((run / "checkpoints").glob(".iter_00000004.pt.*.tmp"))  # the half-done save, never renamed
    assert load_checkpoint(run / "checkpoints" / "iter_00000002.pt")["iteration"] == 2
    assert train(None, run, resume=True) == 0  # cleans the temporary file up and finishes
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert final_state(run)["iteration"] == 6


# --------------------------------------------------------------------------------------------------
# Outputs: export, logs
# --------------------------------------------------------------------------------------------------


def test_exported_ema_weights_load_with_swinir_load(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(parse_config(tiny_raw(data_root, val={"every": 3}, log={"tensorboard": True, "plot": True})),
                 run) == 0
    for name in ("best.safetensors", "last.safetensors", "progress.png", "log.csv", "config.yaml"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    state = final_state(run)
    out = export_weights(run, tmp_path / "last.safetensors", "last")
    model = swinir.load(out)
    assert model.metadata["swinir.task"] == "classical_sr" and model.metadata["swinir.iterations"] == "6"
    assert model.metadata["swinir.weights"] == "params_ema"
    for key, value in model.network.state_dict().items():
        assert torch.equal(value, state["params_ema"][key])
    best = swinir.load(export_weights(run, tmp_path / "best.safetensors", "best"))
    assert float(best.metadata["swinir.val_psnr"]) > 0
    header = (run / "log.csv").read_text().splitlines()[0]
    assert header == "iteration,loss,lr,val_psnr,val_ssim,val_l1,seconds"
    from_checkpoint = swinir.load(list_checkpoints(run)[-1][1])  # a training checkpoint loads too: params_ema
    assert all(torch.equal(v, state["params_ema"][k]) for k, v in from_checkpoint.network.state_dict().items())


def test_tensorboard_records_are_framed_and_checksummed(tmp_path: Path) -> None:
    import struct

    from swinir.training.monitor import EventWriter

    writer = EventWriter(tmp_path)
    crc = writer._masked_crc(b"123456789")
    unmasked = ((crc - 0xA282EAD8) & 0xFFFFFFFF)
    assert ((unmasked << 15) | (unmasked >> 17)) & 0xFFFFFFFF == 0xE3069283  # the CRC-32C check value
    writer.scalar("val/psnr", 31.5, 1200)
    writer.close()
    data, records = writer.path.read_bytes(), []
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        assert struct.unpack("<I", data[8:12])[0] == writer._masked_crc(data[:8])
        body = data[12 : 12 + length]
        assert struct.unpack("<I", data[12 + length : 16 + length])[0] == writer._masked_crc(body)
        records.append(body)
        data = data[16 + length :]
    assert b"brain.Event:2" in records[0]
    assert b"val/psnr" in records[1] and struct.pack("<f", 31.5) in records[1]


def test_cli_export_and_print_config(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from swinir.training.__main__ import main

    config = write_yaml(tmp_path / "run.yaml", tiny_raw(data_root, train={"iterations": 2}))
    assert main([str(config), "--out", str(tmp_path / "run"), "--set", "data.batch_size=2"]) == 0
    assert main(["--out", str(tmp_path / "run"), "--export", str(tmp_path / "w.safetensors"), "--which", "last"]) == 0
    assert swinir.load(tmp_path / "w.safetensors").config.embed_dim == 12
    capsys.readouterr()
    assert main(["--resume", str(tmp_path / "run"), "--print-config"]) == 0
    assert "batch_size: 2" in capsys.readouterr().out
    assert main([str(config)]) == 1
    assert "--out RUN_DIR is required" in capsys.readouterr().err


def test_cli_export_calls_weights_best_only_after_a_validation(data_root: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    from swinir.training.__main__ import main

    config = write_yaml(tmp_path / "run.yaml", tiny_raw(data_root, train={"iterations": 2}, val={"folder": None}))
    assert main([str(config), "--out", str(tmp_path / "run"), "--set", "data.batch_size=2"]) == 0
    assert not (tmp_path / "run" / "best.safetensors").exists()  # no validation folder: none ran
    capsys.readouterr()
    assert main(["--out", str(tmp_path / "run"), "--export", str(tmp_path / "w.safetensors")]) == 0  # --which best
    said = capsys.readouterr().out
    assert "newest checkpoint's EMA weights, iteration 2: no validation has run yet, so there is no best" in said
    assert "best validated" not in said and "(best" not in said
    validated = write_yaml(tmp_path / "val.yaml", tiny_raw(data_root, train={"iterations": 2}))
    assert main([str(validated), "--out", str(tmp_path / "v"), "--set", "data.batch_size=2"]) == 0  # validates at 2
    psnr = float(swinir.load(tmp_path / "v" / "best.safetensors").metadata["swinir.val_psnr"])
    capsys.readouterr()
    assert main(["--out", str(tmp_path / "v"), "--export", str(tmp_path / "b.safetensors")]) == 0
    assert f"the best validated EMA weights, {psnr:.2f} dB at iteration 2" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# It learns
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_model_beats_bicubic_on_held_out_crops(tmp_path: Path) -> None:
    """600 CPU steps on 12 T91 crops: validation L1 (EMA weights) clearly below MATLAB bicubic's."""
    train_dir = shared_path("datasets", "train")
    for split, folder, count in (("train", "T91", 12), ("val", "BSD200", 4)):
        (tmp_path / split).mkdir()
        for i, path in enumerate(sorted((train_dir / folder).iterdir())[:count]):
            img = cv2.imread(str(path))
            h, w = img.shape[:2]
            top, left = (h - 64) // 2, (w - 64) // 2
            cv2.imwrite(str(tmp_path / split / f"{i}.png"), img[top : top + 64, left : left + 64])
    raw = tiny_raw(tmp_path, model={"embed_dim": 16}, data={"batch_size": 8},
                   train={"iterations": 600, "lr": 2e-3, "drop_path_rate": 0.0, "milestones": [0.8]},
                   val={"every": 600}, log={"every": 100}, checkpoint={"every": 0, "export_best": False})
    trainer = Trainer(parse_config(raw), tmp_path / "run")
    assert trainer.run() == 0
    learned, bicubic = trainer.last_val, trainer.baseline
    assert learned["l1"] < 0.95 * bicubic["l1"], (learned, bicubic)
    assert learned["psnr"] > bicubic["psnr"] + 0.3, (learned, bicubic)


# --------------------------------------------------------------------------------------------------
# GAN stage
# --------------------------------------------------------------------------------------------------


def test_gan_stage_losses_are_finite_and_reach_generator_and_discriminator(data_root: Path, tmp_path: Path) -> None:
    from swinir.training.gan import VGG19Features

    torch.manual_seed(0)
    vgg = tmp_path / "vgg19.pth"
    torch.save(VGG19Features(["conv5_4"]).state_dict(), vgg)  # torchvision's layout: features.N.weight
    raw = tiny_raw(data_root, task={"name": "real_sr", "scale": 2},
                   model={"upsampler": "nearest+conv"}, data={"patch_size": 16, "batch_size": 2},
                   train={"stage": "gan", "iterations": 2}, gan={"perceptual_weights": str(vgg), "d_channels": 8},
                   checkpoint={"every": 0})
    trainer = Trainer(parse_config(raw), tmp_path / "gan")
    before_g = [p.detach().clone() for p in trainer.model.parameters()]
    before_d = [p.detach().clone() for p in trainer.stage.discriminator.parameters()]
    lq, hr = next(iter(torch.utils.data.DataLoader(trainer.dataset, batch_sampler=[[(0, 0), (0, 1)]])))
    stats = trainer.step(lq, hr)
    assert set(stats) == {"loss", "loss_pixel", "loss_perceptual", "loss_gan", "loss_d"}
    assert all(np.isfinite(v) for v in stats.values()) and stats["loss_perceptual"] > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainer.model.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainer.stage.discriminator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before_g, trainer.model.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, trainer.stage.discriminator.parameters(), strict=True))
    assert trainer.run() == 0  # the whole loop with its checkpoint (discriminator included)
    gan_keys = set(final_state(tmp_path / "gan")) - CHECKPOINT_KEYS
    assert gan_keys == {"discriminator", "optimizer_d", "scaler_d"}  # the names old GAN checkpoints hold


def test_gan_stage_without_vgg_weights_is_a_clear_error(data_root: Path, tmp_path: Path) -> None:
    raw = tiny_raw(data_root, task={"name": "real_sr", "scale": 2}, model={"upsampler": "nearest+conv"},
                   train={"stage": "gan"})
    with pytest.raises(SwinIRError, match=r"perceptual_weights.*never downloaded"):
        Trainer(parse_config(raw), tmp_path / "gan")


# --------------------------------------------------------------------------------------------------
# Distributed (2 gloo processes)
# --------------------------------------------------------------------------------------------------

DDP_SCRIPT = """
import os, sys, torch
from swinir.training import Trainer, load_config
trainer = Trainer(load_config(sys.argv[1]), sys.argv[2])
assert trainer.run() == 0
trainer.close()
rank = int(os.environ.get("RANK", "0"))
torch.save({k: v.clone() for k, v in trainer.model.state_dict().items()}, f"{sys.argv[2]}/rank{rank}.pt")
"""


@pytest.mark.slow
def test_ddp_on_two_gloo_processes_matches_one_process_with_the_same_global_batch(data_root: Path,
                                                                                   tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "ddp.yaml", tiny_raw(data_root, train={"iterations": 4, "drop_path_rate": 0.0},
                                                        checkpoint={"every": 2}))
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(config), str(tmp_path / "two")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    one = subprocess.run([sys.executable, str(script), str(config), str(tmp_path / "one")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / "two" / f"rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "one" / "rank0.pt")
    for key in single:
        assert torch.equal(rank0[key], rank1[key]), key  # replicas identical
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=2e-5, msg=key)
    assert [it for it, _ in list_checkpoints(tmp_path / "two")] == [2, 4]  # rank 0 wrote them
    assert load_checkpoint(tmp_path / "two" / "checkpoints" / "iter_00000004.pt")["progress"]["world_size"] == 2



def test_curve_ticks_stay_distinct_on_a_narrow_range() -> None:
    from swinir.training.monitor import tick_labels

    # a recipe comparison spanning 30.41-30.45 dB: two decimals would print 30.44 twice
    assert tick_labels(30.41, 30.45, 6) == ["30.410", "30.418", "30.426", "30.434", "30.442", "30.450"]
    assert tick_labels(20.0, 35.0, 6) == ["20.00", "23.00", "26.00", "29.00", "32.00", "35.00"]
    assert tick_labels(-2.0, 0.0, 3, log_y=True) == ["0.01", "0.1", "1"]
