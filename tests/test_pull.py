"""`swinir pull`, `--model NAME` and `swinir reproduce` against a loopback HTTP server (no test reaches the internet).

The server (a thread on 127.0.0.1) serves official-format checkpoints (``{"params": reference state dict}``) that
the tests make from tiny configs, registered under test names beside the real registry; the tests compute their
sizes and SHA-256. It honours ``Range`` (and ``If-Range``), and can cut a response halfway, answer 500 or 404.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import swinir
from swinir import authors, hub, presets
from swinir.authors import AuthorsModel
from swinir.checkpoints import read_checkpoint, reference_state_dict
from swinir.cli import build_parser, main

TINY = {"img_size": 16, "window_size": 8, "depths": (2,), "embed_dim": 12, "num_heads": (2,)}
SR_CONFIG = swinir.ModelConfig(upscale=2, upsampler="pixelshuffledirect", **TINY)
SR_FILE = "900_lightweightSR_TEST_s16w8_SwinIR-S_x2.pth"  # public record (size, hash) given by the test
FREE_FILE = "901_lightweightSR_TEST_s16w8_SwinIR-S_x2.pth"  # no public record: recorded at the first download
WRONG_FILE = "902_lightweightSR_TEST_s16w8_SwinIR-S_x2.pth"  # the right hash of a network of another shape


def checkpoint(config: swinir.ModelConfig, seed: int) -> tuple[bytes, swinir.SwinIR]:
    """An official-format .pth of a seeded network: ``{"params": reference state dict}``."""
    torch.manual_seed(seed)
    model = config.build().eval()
    buffer = io.BytesIO()
    torch.save({"params": reference_state_dict(model)}, buffer)
    return buffer.getvalue(), model


SR_BYTES, SR_MODEL = checkpoint(SR_CONFIG, 0)
FREE_BYTES, _ = checkpoint(SR_CONFIG, 1)
OTHER_BYTES, _ = checkpoint(SR_CONFIG, 2)
WRONG_BYTES, _ = checkpoint(SR_CONFIG.replace(embed_dim=16), 3)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------------
# the loopback server
# --------------------------------------------------------------------------------------------------


@dataclass
class Behaviour:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_once: set[str] = field(default_factory=set)  # send half of the body once, then close
    status: dict[str, int] = field(default_factory=dict)  # answer this status instead
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (file, Range header)


class Handler(http.server.BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        b = self.server.behaviour  # type: ignore[attr-defined]
        name = self.path.rsplit("/", 1)[-1]
        ranged = self.headers.get("Range")
        b.requests.append((name, ranged))
        if name in b.status:
            self.send_error(b.status[name])
            return
        if name not in b.files:
            self.send_error(404)
            return
        data, etag = b.files[name], f'"{sha256(b.files[name])[:16]}"'
        start = 0
        if ranged and self.headers.get("If-Range", etag) == etag:
            start = int(ranged.removeprefix("bytes=").split("-")[0])
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        body = data[start:]
        if name in b.cut_once:
            b.cut_once.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@dataclass
class Server:
    url: str
    behaviour: Behaviour
    httpd: http.server.ThreadingHTTPServer

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    behaviour = Behaviour(files={SR_FILE: SR_BYTES, FREE_FILE: FREE_BYTES, WRONG_FILE: WRONG_BYTES})
    httpd.behaviour = behaviour  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    srv = Server(f"http://127.0.0.1:{httpd.server_address[1]}/release/", behaviour, httpd)
    yield srv
    srv.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server) -> Path:
    """An empty cache, the test models registered (presets and registry rows), the server as the mirror."""
    folder = tmp_path / "home"
    monkeypatch.setenv("SWINIR_HOME", str(folder))
    monkeypatch.setenv("SWINIR_MODEL_BASE_URL", server.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("SWINIR_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "RETRIES", 1)
    monkeypatch.setattr(hub, "CHUNK", 4096)  # small reads, so that a cut leaves a part to resume
    monkeypatch.setitem(presets.PRESETS, "tiny_sr_x2", presets.Preset(
        "tiny_sr_x2", "lightweight_sr", SR_CONFIG, "a tiny SR x2 for tests", None, (SR_FILE, FREE_FILE, WRONG_FILE)))
    register(monkeypatch, "tiny-x2", SR_FILE, SR_BYTES)
    register(monkeypatch, "tiny-free-x2", FREE_FILE, None)
    register(monkeypatch, "tiny-wrong-x2", WRONG_FILE, WRONG_BYTES)
    return folder


def register(monkeypatch: pytest.MonkeyPatch, name: str, file: str, record: bytes | None, *,
             size: int | None = None, digest: str | None = None) -> AuthorsModel:
    """A registry row; ``record`` gives its public size and SHA-256 (None: no public record)."""
    model = AuthorsModel(name, file, size or (len(record) if record else None),
                         digest or (sha256(record) if record else None), None, f"test model {name}")
    monkeypatch.setitem(authors.MODELS, name, model)
    return model


def files_in(folder: Path) -> list[str]:
    """Every file under the cache, relative (empty folders are fine: nothing partial is a file)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def cached(name: str) -> Path:
    return hub.cached_path(authors.MODELS[name])


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("swinir: error:")]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------------------------------
# pull
# --------------------------------------------------------------------------------------------------


def test_pull_verifies_converts_and_the_cache_serves_with_the_server_stopped(
        home: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "tiny-x2"]) == 0
    out, err = capsys.readouterr()
    assert "size and SHA-256 match the public record" in out and "architecture checked" in out
    assert "tiny-x2: 100%" in err and "B/s" in err  # the progress bar: bytes, rate
    assert files_in(home) == ["models/900_lightweightSR_TEST_s16w8_SwinIR-S_x2.safetensors"]  # no .pth kept
    _, meta = read_checkpoint(cached("tiny-x2"))
    assert meta["swinir.source_sha256"] == sha256(SR_BYTES) and meta["swinir.task"] == "lightweight_sr"
    assert meta["swinir.source_url"] == server.url + SR_FILE
    assert json.loads(meta["swinir.config"]) == SR_CONFIG.to_dict()
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(swinir.load("tiny-x2")(x), SR_MODEL(x))  # the same network, by its name

    assert main(["pull", "tiny-x2", "--keep-original", "--quiet"]) == 0  # only the .pth is fetched again
    assert (home / "models" / SR_FILE).read_bytes() == SR_BYTES
    server.stop()
    requests_before = len(server.behaviour.requests)
    assert main(["pull", "tiny-x2"]) == 0
    assert "already downloaded" in capsys.readouterr().out
    img = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(home.parent / "a.png")
    assert main(["restore", str(home.parent / "a.png"), "-o", str(home.parent / "out"), "--model", "tiny-x2",
                 "--quiet", "--precision", "fp32"]) == 0
    out_img = np.asarray(Image.open(home.parent / "out" / "a.png"))
    assert np.array_equal(out_img, swinir.restore(SR_MODEL, img))
    assert len(server.behaviour.requests) == requests_before


def test_a_cut_connection_is_resumed_with_a_range_request(home: Path, server: Server,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    server.behaviour.cut_once.add(SR_FILE)
    assert main(["pull", "tiny-x2", "--quiet"]) == 0
    first, second = server.behaviour.requests
    assert first == (SR_FILE, None)
    assert second[1] is not None and second[1].startswith("bytes=")
    resumed_at = int(second[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(SR_BYTES) // 2  # from where the cut left it, not from 0
    assert read_checkpoint(cached("tiny-x2"))[1]["swinir.source_sha256"] == sha256(SR_BYTES)
    assert files_in(home) == ["models/900_lightweightSR_TEST_s16w8_SwinIR-S_x2.safetensors"]


def test_a_wrong_hash_is_refused_with_nothing_left_and_the_next_run_starts_cleanly(
        home: Path, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    register(monkeypatch, "tiny-x2", SR_FILE, SR_BYTES, digest=sha256(OTHER_BYTES))
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "SHA-256" in line and "does not match the public record" in line and "nothing was kept" in line
    assert files_in(home) == []
    register(monkeypatch, "tiny-x2", SR_FILE, SR_BYTES)
    assert main(["pull", "tiny-x2", "--quiet"]) == 0
    assert cached("tiny-x2").is_file()


def test_a_wrong_size_is_refused_before_the_download(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    register(monkeypatch, "tiny-x2", SR_FILE, SR_BYTES, size=len(SR_BYTES) + 1)
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"is {len(SR_BYTES):,} bytes, but the authors'" in line
    assert files_in(home) == [] and len(server.behaviour.requests) == 1  # not retried: a retry cannot fix it


def test_a_wrong_architecture_is_refused(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "tiny-wrong-x2", "--quiet"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "is not the tiny_sr_x2 network" in line and "shape conflicts" in line and "nothing was kept" in line
    assert files_in(home) == []


def test_http_errors_no_network_and_a_full_disk(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    server.behaviour.files.pop(SR_FILE)
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    assert "is not there (404" in one_error_line(capsys.readouterr().err)
    server.behaviour.status[SR_FILE] = 500
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "answered 500" in line and "2 tries" in line and "SWINIR_MODEL_BASE_URL" in line
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SWINIR_MODEL_BASE_URL", f"http://127.0.0.1:{port}/")
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    assert "cannot reach 127.0.0.1" in one_error_line(capsys.readouterr().err)
    monkeypatch.setenv("SWINIR_MODEL_BASE_URL", server.url)
    server.behaviour.status.clear()
    server.behaviour.files[SR_FILE] = SR_BYTES

    def full(file: object, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hub, "_write", full)
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    assert "no space left on the disk" in one_error_line(capsys.readouterr().err)
    assert files_in(home) == []


def test_unknown_names_get_the_closest_ones(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "clasical-x4"]) == 1
    assert "did you mean classical-x4" in one_error_line(capsys.readouterr().err)
    assert main(["restore", "x.png", "-o", "out", "--model", "tiny-x3"]) == 1
    assert "did you mean tiny-x2" in one_error_line(capsys.readouterr().err)


def test_no_public_hash_records_the_first_download_and_checks_it_ever_after(
        home: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "tiny-free-x2", "--quiet"]) == 0
    assert "recorded in" in capsys.readouterr().out
    record = json.loads((home / "recorded_sha256.json").read_text())[FREE_FILE]
    assert record["sha256"] == sha256(FREE_BYTES) and record["size"] == len(FREE_BYTES)
    assert main(["models", "--json"]) == 0
    entry = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == "tiny-free-x2")
    assert entry["sha256"] == sha256(FREE_BYTES) and entry["sha256_source"] == "recorded" and entry["downloaded"]
    cached("tiny-free-x2").unlink()
    server.behaviour.files[FREE_FILE] = OTHER_BYTES  # the server now has another (valid) file under that name
    assert main(["pull", "tiny-free-x2", "--quiet"]) == 1
    assert "does not match the one recorded at its first download" in one_error_line(capsys.readouterr().err)
    assert files_in(home) == ["recorded_sha256.json"]


def test_offline_with_and_without_the_file_cached(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(home.parent / "a.png")
    restore = ["restore", str(home.parent / "a.png"), "-o", str(home.parent / "out"), "--model", "tiny-x2", "--quiet"]
    assert main([*restore, "--offline"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "tiny-x2 is not downloaded" in line and "swinir pull tiny-x2" in line and "(0.2 MB)" in line
    monkeypatch.setenv("SWINIR_OFFLINE", "1")
    assert main(restore) == 1
    assert "offline" in one_error_line(capsys.readouterr().err)
    assert files_in(home) == []
    monkeypatch.delenv("SWINIR_OFFLINE")
    assert main(["pull", "tiny-x2", "--quiet"]) == 0
    monkeypatch.setenv("SWINIR_OFFLINE", "1")
    assert main([*restore, "--offline"]) == 0
    assert (home.parent / "out" / "a.png").is_file()


def test_a_file_url_mirror_is_verified_the_same_way(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("SWINIR_MODEL_BASE_URL", mirror.as_uri())
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    (mirror / SR_FILE).write_bytes(OTHER_BYTES[: len(SR_BYTES)].ljust(len(SR_BYTES), b"\0"))  # right size, wrong
    assert main(["pull", "tiny-x2", "--quiet"]) == 1
    assert "does not match the public record" in one_error_line(capsys.readouterr().err)
    (mirror / SR_FILE).write_bytes(SR_BYTES)
    assert main(["pull", "tiny-x2", "--quiet"]) == 0
    assert files_in(home) == ["models/900_lightweightSR_TEST_s16w8_SwinIR-S_x2.safetensors"]


def test_load_by_name_downloads_only_when_asked(home: Path, server: Server) -> None:
    with pytest.raises(swinir.SwinIRError, match="swinir pull tiny-x2"):
        swinir.load("tiny-x2")
    assert server.behaviour.requests == []
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.equal(swinir.load("tiny-x2", download=True)(x), SR_MODEL(x))


# --------------------------------------------------------------------------------------------------
# --model in eval, serve and export
# --------------------------------------------------------------------------------------------------


def test_model_flag_in_eval_and_serve(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr = tmp_path / "Set5" / "HR"
    hr.mkdir(parents=True)
    Image.fromarray((np.random.default_rng(1).random((24, 20, 3)) * 255).astype(np.uint8)).save(hr / "a.png")
    weights_json, model_json = tmp_path / "w.json", tmp_path / "m.json"
    assert main(["eval", "--task", "lightweight_sr", "--scale", "2", "--hr", str(hr), "--model", "tiny-x2",
                 "--precision", "fp32", "--quiet", "--json", str(model_json)]) == 0
    assert main(["eval", "--task", "lightweight_sr", "--scale", "2", "--hr", str(hr), "--weights",
                 str(cached("tiny-x2")), "--precision", "fp32", "--quiet", "--json", str(weights_json)]) == 0
    by_model, by_weights = json.loads(model_json.read_text()), json.loads(weights_json.read_text())
    assert by_model["method"] == "tiny-x2" and by_model["mean"] == by_weights["mean"]

    from swinir.service import ModelRegistry
    from swinir.service.command import settings_from_args

    args = build_parser("serve").parse_args(["serve", "--model", "tiny-x2", "--no-bundled"])
    settings = settings_from_args(args)
    assert [(s.path, s.name) for s in settings.weights] == [(cached("tiny-x2"), "tiny-x2")]
    entry = ModelRegistry.from_settings(settings).resolve("tiny-x2", None)
    assert (entry.task, entry.scale) == ("sr", 2)


def test_model_flag_in_export(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """export --model hands the cached file to the exporter (test_onnx.py tests the export itself, slowly)."""
    from swinir import export

    calls = []

    class Summary:
        def line(self) -> str:
            return "exported"

    def fake_export(weights: object, onnx: Path, **options: object) -> Summary:
        calls.append((Path(str(weights)), onnx))
        return Summary()

    monkeypatch.setattr(export, "export_onnx", fake_export)
    assert main(["export", "--model", "tiny-x2", "--onnx", str(tmp_path / "t.onnx")]) == 0
    assert calls == [(cached("tiny-x2"), tmp_path / "t.onnx")]
    assert main(["export", "--onnx", str(tmp_path / "u.onnx")]) == 1
    assert "--model NAME" in one_error_line(capsys.readouterr().err)
    assert main(["export", str(cached("tiny-x2")), "--model", "tiny-x2", "--onnx", str(tmp_path / "u.onnx")]) == 1
    assert "name two models" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------------------------------
# reproduce
# --------------------------------------------------------------------------------------------------


def test_reproduce_against_a_fake_paper_table(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    (data / "Set5" / "HR").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in ("a", "b"):
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(data / "Set5" / "HR" / f"{name}.png")
    assert main(["reproduce", "--data", str(data)]) == 1  # nothing downloaded yet
    assert "no authors' model is downloaded" in one_error_line(capsys.readouterr().err)
    assert main(["pull", "tiny-x2", "--quiet"]) == 0
    measured = tmp_path / "eval.json"
    assert main(["eval", "--task", "lightweight_sr", "--scale", "2", "--hr", str(data / "Set5" / "HR"), "--model",
                 "tiny-x2", "--precision", "fp32", "--quiet", "--json", str(measured)]) == 0
    psnr_y = json.loads(measured.read_text())["mean"]["psnr_y"]
    capsys.readouterr()

    monkeypatch.setitem(authors.PAPER_RESULTS, "tiny-x2",
                        {"Set5": {"psnr_y": round(psnr_y, 2), "ssim_y": 0.5}, "Urban100": {"psnr_y": 30.0}})
    assert main(["reproduce", "tiny-x2", "--data", str(data), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"| tiny-x2 | Set5 | PSNR-Y | {round(psnr_y, 2):.2f} | {psnr_y:.4f} |" in out
    assert "(not checked)" in out  # SSIM is shown, not held to the dB tolerance
    assert "not in" in out and "Urban100" in out  # a set DIR does not hold is named

    monkeypatch.setitem(authors.PAPER_RESULTS, "tiny-x2", {"Set5": {"psnr_y": round(psnr_y + 0.05, 2)}})
    assert main(["reproduce", "--data", str(data), "--quiet", "--json"]) == 1  # every downloaded model
    report = json.loads(capsys.readouterr().out)
    (row,) = report["rows"]
    assert report["passed"] is False and row["within"] is False and row["measured"] == pytest.approx(psnr_y)
    assert row["difference"] == pytest.approx(psnr_y - round(psnr_y + 0.05, 2))
    assert main(["reproduce", "tiny-x2", "--data", str(data), "--quiet", "--tolerance", "0.06"]) == 0

    monkeypatch.setitem(authors.PAPER_RESULTS, "tiny-x2", {"Kodak24": {"psnr_y": 30.0}})
    assert main(["reproduce", "tiny-x2", "--data", str(data), "--quiet"]) == 1
    assert "nothing to compare" in one_error_line(capsys.readouterr().err)
