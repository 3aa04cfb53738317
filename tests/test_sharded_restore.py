"""`torchrun -m swinir restore`: the files shared among processes, every output once, one summary, exit 1.

Two processes on loopback (gloo) restore a folder of small images, a small video and one bad file with a
tiny model; the outputs must be exactly those of a one-process run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import swinir
from swinir import SwinIRError
from swinir.cli import main
from swinir.processes import ProcessPlace as Shard
from swinir.processes import process_place as shard_from_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                             upsampler="pixelshuffledirect")
    path = tmp_path_factory.mktemp("w") / "tiny_x2.safetensors"
    swinir.save_safetensors(path, cfg.build(), cfg, {"task": "classical_sr"})
    return path


def make_inputs(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        PILImage.fromarray((rng.random((16 + i, 20 + 2 * i, 3)) * 255).astype(np.uint8)).save(folder / f"img{i}.png")
    (folder / "bad.png").write_bytes(b"not a png at all")
    # img0.jpg and img0.png would share img0.png: every process must name them alike, and both survive
    PILImage.fromarray((rng.random((18, 22, 3)) * 255).astype(np.uint8)).save(folder / "img0.jpg")
    with av.open(str(folder / "clip.mkv"), "w") as out:
        video = out.add_stream("ffv1", rate=10)
        video.width, video.height, video.pix_fmt = 20, 16, "bgr0"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray((rng.random((16, 20, 3)) * 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))


def pixels(path: Path) -> bytes:
    """The decoded pixels of an output (all frames of a video)."""
    if path.suffix == ".mkv":
        with av.open(str(path)) as container:
            return b"".join(f.to_ndarray(format="rgb24").tobytes() for f in container.decode(video=0))
    return np.asarray(PILImage.open(path)).tobytes()


def test_two_processes_restore_each_file_once_as_one_process_does(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    make_inputs(src)
    common = ["--weights", str(weights), "--quiet", "--codec", "ffv1", "--precision", "fp32"]
    assert main(["restore", str(src), "-o", str(tmp_path / "one"), *common, "--threads", "1"]) == 1

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                                                os.environ.get("PYTHONPATH", "")])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "swinir",
         "restore", str(src), "-o", str(tmp_path / "two"), *common],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    log = run.stdout + run.stderr
    assert run.returncode == 1, log
    summaries = [line for line in log.splitlines() if line.startswith("restored ")]
    assert summaries == [f"restored 6 of 7 files into {tmp_path / 'two'} with 2 processes; 1 failed: {src / 'bad.png'}"]
    assert log.count("named img0_jpg.png, img0_png.png instead") == 1  # said once, by rank 0
    assert log.count("exitcode  : 1") == 2, log  # both processes report the failure, neither a signal
    assert log.count(f"error: {src / 'bad.png'}") == 1

    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    two = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert one == two == ["clip.mkv", "img0_jpg.png", "img0_png.png", "img1.png", "img2.png", "img3.png"]  # no temps
    for name in one:
        assert pixels(tmp_path / "two" / name) == pixels(tmp_path / "one" / name), name


def test_shares_split_the_list_and_the_cores() -> None:
    shards = [shard_from_env({"RANK": str(r), "WORLD_SIZE": "3", "LOCAL_RANK": str(r), "LOCAL_WORLD_SIZE": "3"})
              for r in range(3)]
    items = list(range(8))
    assert [s.take(items) for s in shards] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert shard_from_env({}) == Shard() and Shard().take(items) == items and not Shard().active
    cores = len(os.sched_getaffinity(0))
    assert shards[0].default_threads() == max(1, cores // 3) and Shard().default_threads() == cores
    assert shards[1].device("cuda") == "cuda:1" and shards[1].device("cpu") == "cpu" and shards[1].prefix == "[rank 1] "
    with pytest.raises(SwinIRError, match="start the processes with torchrun"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
