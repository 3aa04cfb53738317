"""`swinir restore` on video files: frames through the model, timing and audio kept, damage refused.

Every clip is made here with PyAV (12 frames of about 24x20), and the models are tiny, so the file runs in
seconds. Exact checks use a lossless codec (ffv1 in RGB); lossy ones compare within the codec's loss.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import swinir
from swinir.cli import main
from swinir.pipeline import RestoreOptions, restore_image

TB = Fraction(1, 1000)


def tiny_weights(folder: Path, upscale: int) -> Path:
    torch.manual_seed(0)
    cfg = swinir.ModelConfig(upscale=upscale, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                             upsampler="pixelshuffledirect" if upscale > 1 else "")
    path = folder / f"tiny_x{upscale}.safetensors"
    swinir.save_safetensors(path, cfg.build(), cfg, {"task": "classical_sr" if upscale > 1 else "color_dn"})
    return path


@pytest.fixture(scope="module")
def sr_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w"), 2)


@pytest.fixture(scope="module")
def same_size_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w"), 1)


def picture(i: int, h: int, w: int) -> np.ndarray:
    """A smooth, moving test picture (compresses well, so lossy codecs stay close)."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = [128 + 100 * np.sin((x + 2 * i) / 5), 128 + 100 * np.cos((y - i) / 4), 60 + 4 * (x + y)]
    return np.clip(np.stack(rgb, axis=2), 0, 255).astype(np.uint8)


def make_clip(path: Path, w: int = 24, h: int = 20, frames: int = 12, *, codec: str = "libx264",
              pix_fmt: str = "yuv420p", audio: bool = False, vfr: bool = False, options: dict | None = None) -> None:
    """A clip at 12 fps (time base 1/1000); ``vfr``: frame gaps of 50, 80 and 110 ms in turn."""
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(codec, rate=12)
        video.width, video.height, video.pix_fmt = w, h, pix_fmt
        video.codec_context.time_base = TB
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=16000)
            sound.layout = "mono"
        pts = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(picture(i, h, w), format="rgb24")
            frame.pts, frame.time_base = pts, TB
            pts += (50, 80, 110)[i % 3] if vfr else 83
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            for start in range(0, 16 * pts, 1024):  # 16 samples per ms, as long as the video
                tone = np.sin(np.arange(start, start + 1024) / 7).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 16000, start, Fraction(1, 16000)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))


def frames_of(path: Path, fmt: str = "rgb24") -> tuple[list[np.ndarray], list[float]]:
    """Decoded frames and their timestamps in seconds."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
        return [f.to_ndarray(format=fmt) for f in decoded], [float(f.pts * f.time_base) for f in decoded]


def stream_facts(path: Path) -> dict:
    """Video duration (s), the size and pixel format, and the audio packets (bytes, timestamps)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts = {"duration": float(video.duration * video.time_base) if video.duration else None,
                 "container": container.duration / av.time_base, "size": (video.width, video.height),
                 "pix_fmt": video.codec_context.pix_fmt, "audio": []}
        if container.streams.audio:
            audio = container.streams.audio[0]
            facts["audio"] = [(bytes(p), float(p.pts * p.time_base), float(p.duration * p.time_base))
                              for p in container.demux(audio) if p.size]
        return facts


def luma(rgb: np.ndarray) -> np.ndarray:
    """The Y plane FFmpeg's yuv420p conversion gives (padded to even sizes as the encoder pads, then cropped)."""
    h, w = rgb.shape[:2]
    even = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return av.VideoFrame.from_ndarray(even, format="rgb24").reformat(format="yuv420p").to_ndarray()[:h, :w]


def lumas_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p")[: f.height] for f in container.decode(video=0)]


def expected(weights: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    model = swinir.load(weights)
    return [restore_image(model, f, RestoreOptions()).pixels for f in frames]  # the CLI's default options


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def run(*args: str | Path) -> int:
    return main([str(a) for a in args] + ["--quiet"])


def test_video_and_image_folder_keeps_audio_timing_and_frames(tmp_path: Path, sr_weights: Path) -> None:
    src, out = tmp_path / "clips", tmp_path / "out"
    src.mkdir()
    make_clip(src / "talk.mp4", audio=True)
    PILImage.fromarray(picture(0, 20, 27)).save(src / "still.png")
    assert run("restore", src, "-o", out, "--weights", sr_weights) == 0
    assert sorted(p.name for p in out.iterdir()) == ["still.png", "talk.mp4"]  # no temporary files left
    before, after = stream_facts(src / "talk.mp4"), stream_facts(out / "talk.mp4")
    assert after["size"] == (48, 40) and after["pix_fmt"] == "yuv420p"
    assert after["duration"] == pytest.approx(before["duration"], abs=1e-3)
    assert after["container"] == pytest.approx(before["container"], abs=1e-3)
    assert len(after["audio"]) == len(before["audio"]) > 10 and after["audio"] == before["audio"]  # copied as is
    inputs, times_in = frames_of(src / "talk.mp4")
    _, times_out = frames_of(out / "talk.mp4")
    outputs = lumas_of(out / "talk.mp4")
    assert len(outputs) == 12 and times_out == pytest.approx(times_in, abs=1e-3)
    # within CRF 18's loss on luma (the tiny random model's output is colour noise, which 4:2:0 averages away)
    for got, want in zip(outputs, expected(sr_weights, inputs), strict=True):
        assert got.shape == (40, 48) and psnr(got, luma(want)) > 30
    assert PILImage.open(out / "still.png").size == (54, 40)


def test_lossless_codec_stores_exactly_the_model_output(tmp_path: Path, same_size_weights: Path) -> None:
    clip = tmp_path / "odd.mkv"
    make_clip(clip, 23, 19, codec="ffv1", pix_fmt="bgr0")  # odd, and not a multiple of the window (8)
    assert run("restore", clip, "-o", tmp_path / "clean.mkv", "--weights", same_size_weights, "--codec", "ffv1") == 0
    inputs, times_in = frames_of(clip)
    outputs, times_out = frames_of(tmp_path / "clean.mkv")
    assert stream_facts(tmp_path / "clean.mkv")["size"] == (23, 19) and times_out == times_in
    want = expected(same_size_weights, inputs)
    assert len(outputs) == 12 and all(np.array_equal(g, w) for g, w in zip(outputs, want, strict=True))


def test_odd_size_with_the_default_codec_is_padded_to_even(tmp_path: Path, same_size_weights: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "odd.mkv"
    make_clip(clip, 23, 19, codec="ffv1", pix_fmt="bgr0")
    # CRF 0 makes x264 lossless: what is left is the RGB -> yuv420p conversion, exact on luma
    assert run("restore", clip, "-o", tmp_path / "out.mp4", "--weights", same_size_weights, "--crf", "0") == 0
    assert "stored as 24x20 (last column/row repeated)" in capsys.readouterr().out
    outputs = lumas_of(tmp_path / "out.mp4")
    want = expected(same_size_weights, frames_of(clip)[0])
    assert len(outputs) == 12 and outputs[0].shape == (20, 24)
    assert all(np.array_equal(g[:19, :23], luma(w)) for g, w in zip(outputs, want, strict=True))
    assert all(np.array_equal(g[19], g[18]) and np.array_equal(g[:, 23], g[:, 22]) for g in outputs)  # repeated


def test_variable_frame_rate_keeps_every_timestamp(tmp_path: Path, sr_weights: Path) -> None:
    clip = tmp_path / "vfr.mp4"
    make_clip(clip, vfr=True)
    assert run("restore", clip, "-o", tmp_path / "out.mp4", "--weights", sr_weights, "--crf", "0") == 0
    inputs, times_in = frames_of(clip)
    _, times_out = frames_of(tmp_path / "out.mp4")
    assert len(set(np.round(np.diff(times_in), 3))) == 3  # the input really is variable
    assert times_out == pytest.approx(times_in, abs=1e-3)
    want = expected(sr_weights, inputs)
    assert all(np.array_equal(g, luma(w)) for g, w in zip(lumas_of(tmp_path / "out.mp4"), want, strict=True))
    assert stream_facts(tmp_path / "out.mp4")["duration"] == pytest.approx(stream_facts(clip)["duration"], abs=1e-3)


def test_deep_input_stays_deep(tmp_path: Path, same_size_weights: Path) -> None:
    clip = tmp_path / "deep.mkv"
    make_clip(clip, frames=3, codec="ffv1", pix_fmt="yuv444p10le")
    assert run("restore", clip, "-o", tmp_path / "out.mkv", "--weights", same_size_weights) == 0
    facts = stream_facts(tmp_path / "out.mkv")
    assert facts["pix_fmt"] == "yuv420p10le" and len(frames_of(tmp_path / "out.mkv")[0]) == 3


@pytest.mark.parametrize("case", ["mp4", "mp4-faststart", "mkv", "not-a-video"])
def test_truncated_or_unreadable_video_fails_in_one_line(tmp_path: Path, sr_weights: Path, case: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    clip = src / f"clip.{'mkv' if case == 'mkv' else 'mp4'}"
    if case == "not-a-video":
        clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    else:
        make_clip(clip, options={"movflags": "faststart"} if case == "mp4-faststart" else None)
        data = clip.read_bytes()
        clip.write_bytes(data[: len(data) * 2 // 3])
    assert run("restore", clip, "-o", out, "--weights", sr_weights) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(f"error: {clip}:") and "re-export or re-download" in err[0], err
    assert err[1].startswith("restored 0 of 1 videos") and "1 failed" in err[1]
    assert not out.exists() or list(out.iterdir()) == []  # no output, no temporary file


def test_interrupted_video_leaves_nothing_and_says_how_to_continue(tmp_path: Path, sr_weights: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip)
    calls = 0

    def restore_then_interrupt(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt
        return restore_image(*args, **kwargs)

    monkeypatch.setattr("swinir.video.restore_image", restore_then_interrupt)
    out = tmp_path / "out"
    assert run("restore", clip, "-o", out, "--weights", sr_weights) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run the same command to continue" in err[0]
    assert not out.exists() or list(out.iterdir()) == []
    monkeypatch.undo()
    out.mkdir(exist_ok=True)
    (out / "clip.mp4").write_bytes(b"done before")
    assert run("restore", clip, "-o", out, "--weights", sr_weights) == 0  # existing outputs are skipped
    assert (out / "clip.mp4").read_bytes() == b"done before"


def test_video_options_that_cannot_work_are_refused_up_front(tmp_path: Path, sr_weights: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=2)
    cases = [(["--codec", "nope"], "no such encoder"), (["--codec", "ffv1", "--crf", "10"], "--crf does not apply"),
             (["--pix-fmt", "bgr0"], "libx264 does not store it"), (["-o", tmp_path / "x.png"], "is a video")]
    for extra, message in cases:
        target = [] if "-o" in extra else ["-o", tmp_path / "o.mp4"]
        assert run("restore", clip, *target, "--weights", sr_weights, *extra) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (extra, err)
