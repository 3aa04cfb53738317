"""The web service through FastAPI's TestClient (ASGI in process, no socket), with tiny models.

The central check: the API adds nothing, so the PNG it returns decodes to exactly what ``swinir.restore``
gives for the same pixels. Then every kind of bad input, the queue limit, and the discovery endpoints.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web service needs fastapi (pip install fastapi python-multipart)")
pytest.importorskip("multipart", reason="the web service needs python-multipart")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

import torch
from fastapi.testclient import TestClient
from PIL import Image

import swinir
from swinir import service
from swinir.images import match_channels
from swinir.pipeline import resize_alpha as restore_alpha
from swinir.service import ModelRegistry, Settings, WeightsSpec, create_app, is_loopback, task_of

TINY = {"img_size": 16, "window_size": 8, "depths": (2,), "embed_dim": 12, "num_heads": (2,)}


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny random models: an RGB x2 SR (task in its metadata) and an RGB denoiser (task inferred)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    sr = swinir.ModelConfig(upscale=2, upsampler="pixelshuffledirect", **TINY)
    dn = swinir.ModelConfig(upscale=1, upsampler="", **TINY)
    paths = {"tiny": folder / "tiny_x2.safetensors", "dn": folder / "tiny_dn.safetensors"}
    swinir.save_safetensors(paths["tiny"], sr.build(), sr, {"task": "classical_sr"})
    swinir.save_safetensors(paths["dn"], dn.build(), dn, {})
    return paths


def make_settings(weights: dict[str, Path], **changes: object) -> Settings:
    specs = (WeightsSpec(weights["tiny"], "tiny"), WeightsSpec(weights["dn"], "dn"))
    return Settings(weights=specs, include_bundled=False, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(weights: dict[str, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(weights, max_pixels=60_000, max_upload_bytes=300_000))) as c:
        yield c


@pytest.fixture(scope="module")
def reference(weights: dict[str, Path]) -> dict[str, swinir.SwinIR]:
    return {name: swinir.load(path) for name, path in weights.items()}


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG") if mode else Image.fromarray(array).save(
        buffer, format="PNG")
    return buffer.getvalue()


def random_image(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    peak = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, peak + 1, shape, dtype=np.int64).astype(dtype)


def post(client: TestClient, data: bytes, name: str = "photo.png", **form: object) -> object:
    return client.post("/v1/restore", files={"image": (name, data, "image/png")},
                       data={k: str(v) for k, v in form.items()})


def decoded(response: object) -> Image.Image:
    return Image.open(io.BytesIO(response.content))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# good images: the API adds nothing to the pixels
# --------------------------------------------------------------------------------------------------


def test_rgb_matches_library_restore(client: TestClient, reference: dict) -> None:
    pixels = random_image((20, 28, 3))
    response = post(client, png_bytes(pixels), task="tiny")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-swinir-model"] == "tiny"
    assert response.headers["x-swinir-scale"] == "2"
    assert float(response.headers["x-swinir-seconds"]) >= 0
    assert "restore;dur=" in response.headers["server-timing"]
    assert 'filename="photo_swinir_x2.png"' in response.headers["content-disposition"]
    out = np.asarray(decoded(response))
    assert out.shape == (40, 56, 3)
    np.testing.assert_array_equal(out, swinir.restore(reference["tiny"], pixels))


def test_task_names_choose_models(client: TestClient) -> None:
    data = png_bytes(random_image((16, 16, 3)))
    for form, model in (({"task": "classical_sr", "scale": 2}, "tiny"), ({"task": "sr"}, "tiny"), ({}, "tiny"),
                        ({"task": "color_dn"}, "dn"), ({"task": "denoise", "sigma": 25}, "dn"), ({"task": "dn"}, "dn")):
        response = post(client, data, **form)
        assert response.status_code == 200, (form, response.text)
        assert response.headers["x-swinir-model"] == model, form
    assert post(client, data, task="dn").headers["x-swinir-scale"] == "1"


def test_gray_stays_gray(client: TestClient, reference: dict) -> None:
    gray = random_image((18, 22), seed=1)
    response = post(client, png_bytes(gray), task="tiny")
    assert response.status_code == 200, response.text
    image = decoded(response)
    assert image.mode == "L" and image.size == (44, 36)
    rgb, _ = match_channels(gray, 3)
    expected, _ = match_channels(swinir.restore(reference["tiny"], rgb), 1)
    np.testing.assert_array_equal(np.asarray(image), expected)
    assert "gray" in response.headers["x-swinir-notice"]


def test_rgba_keeps_alpha(client: TestClient, reference: dict) -> None:
    rgba = random_image((16, 20, 4), seed=2)
    response = post(client, png_bytes(rgba, "RGBA"), task="tiny")
    assert response.status_code == 200, response.text
    image = decoded(response)
    assert image.mode == "RGBA" and image.size == (40, 32)
    out = np.asarray(image)
    np.testing.assert_array_equal(out[..., :3], swinir.restore(reference["tiny"], np.ascontiguousarray(rgba[..., :3])))
    np.testing.assert_array_equal(out[..., 3], restore_alpha(np.ascontiguousarray(rgba[..., 3]), 2))


def test_sixteen_bit_stays_sixteen_bit(client: TestClient, reference: dict) -> None:
    gray16 = random_image((16, 16), np.uint16, seed=3)
    response = post(client, png_bytes(gray16), task="dn")
    assert response.status_code == 200, response.text
    out = np.asarray(decoded(response))
    assert out.dtype == np.uint16 and out.shape == (16, 16)
    rgb, _ = match_channels(gray16, 3)
    expected, _ = match_channels(swinir.restore(reference["dn"], rgb), 1)
    np.testing.assert_array_equal(out, expected)


def test_job_reports_tile_progress_and_same_pixels(client: TestClient, reference: dict) -> None:
    pixels = random_image((24, 24, 3), seed=4)
    submitted = client.post("/v1/jobs", files={"image": ("a.png", png_bytes(pixels), "image/png")},
                            data={"task": "tiny", "tile": "16"})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["state"] in ("queued", "running", "done") and job["result_url"].endswith("/result")
    deadline = time.monotonic() + 30
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["state"] == "done", job
    assert job["total"] > 1 and job["done"] == job["total"]
    assert (job["width"], job["height"]) == (48, 48)
    result = client.get(job["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(decoded(result)),
                                  swinir.restore(reference["tiny"], pixels, tile=16))
    assert client.get("/v1/jobs/nope").status_code == 404


def test_model_loaded_once_and_reused(weights: dict[str, Path]) -> None:
    app = create_app(make_settings(weights))
    entry = app.state.registry.entries["tiny"]
    assert not entry.loaded  # lazy: describing the file at start-up does not build the network
    with TestClient(app) as c:
        data = png_bytes(random_image((16, 16, 3)))
        assert post(c, data, task="tiny").status_code == 200
        first = entry.model()
        assert post(c, data, task="tiny").status_code == 200
        assert entry.model() is first
        assert c.get("/v1/models").json()["models"][0]["loaded"] is True


# --------------------------------------------------------------------------------------------------
# bad input: one clear line each
# --------------------------------------------------------------------------------------------------


def detail(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert isinstance(body["detail"], str) and "\n" not in body["detail"], body
    return body["detail"]


def test_not_an_image(client: TestClient) -> None:
    response = post(client, b"hello, this is text", name="notes.txt")
    assert response.status_code == 422
    assert "notes.txt" in detail(response) and "not an image" in detail(response)


def test_truncated_png(client: TestClient) -> None:
    data = png_bytes(random_image((32, 32, 3)))
    response = post(client, data[: len(data) // 2], name="cut.png")
    assert response.status_code == 422
    assert "truncated" in detail(response) or "damaged" in detail(response)


def test_too_many_pixels_names_the_numbers(client: TestClient) -> None:
    response = post(client, png_bytes(np.zeros((250, 250), np.uint8)), name="big.png")
    assert response.status_code == 422
    assert "62,500" in detail(response) and "60,000" in detail(response)


def test_too_many_pixels_other_formats(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((250, 250), np.uint8)).save(buffer, format="BMP")
    response = post(client, buffer.getvalue(), name="big.bmp")
    assert response.status_code == 422 and "60,000" in detail(response)


def test_upload_too_large(client: TestClient) -> None:
    response = post(client, b"\0" * 400_000, name="huge.png")
    assert response.status_code == 413
    assert "limit of 0.286102 MB" in detail(response)


def test_upload_too_large_without_content_length(client: TestClient) -> None:
    """A chunked body that never announces its size is cut off while it streams in."""
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(50):
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post("/v1/restore", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and "MB" in detail(response)


def test_missing_image_field(client: TestClient) -> None:
    response = client.post("/v1/restore", data={"task": "tiny"})
    assert response.status_code == 422
    assert "missing form field 'image'" in detail(response)


def test_unknown_task_lists_the_available(client: TestClient) -> None:
    response = post(client, png_bytes(random_image((16, 16, 3))), task="colorize")
    assert response.status_code == 422
    assert "colorize" in detail(response) and "tiny (sr x2)" in detail(response) and "dn (denoise)" in detail(response)
    response = post(client, png_bytes(random_image((16, 16, 3))), task="sr", scale=4)
    assert response.status_code == 422 and "x4" in detail(response)


@pytest.mark.parametrize(("form", "words"), [
    ({"task": "tiny", "sigma": 25}, "sigma applies to denoise"),
    ({"task": "dn", "sigma": 300}, "sigma"),
    ({"task": "dn", "quality": 50}, "quality applies to jpeg"),
    ({"task": "tiny", "precision": "fp64"}, "precision"),
    ({"task": "tiny", "tile": 4}, "window"),
    ({"task": "tiny", "scale": "two"}, "scale"),
])
def test_bad_form_fields(client: TestClient, form: dict, words: str) -> None:
    response = post(client, png_bytes(random_image((16, 16, 3))), **form)
    assert response.status_code == 422, response.text
    assert words in detail(response)


# --------------------------------------------------------------------------------------------------
# the bounded queue
# --------------------------------------------------------------------------------------------------


def test_full_queue_answers_503_with_retry_after(weights: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    release, started = threading.Event(), threading.Event()
    real_restore = service.restore_image

    def blocking_restore(*args: object, **kwargs: object) -> object:
        started.set()
        assert release.wait(30), "test never released the worker"
        return real_restore(*args, **kwargs)

    monkeypatch.setattr(service, "restore_image", blocking_restore)
    data = png_bytes(random_image((16, 16, 3)))
    files = {"image": ("a.png", data, "image/png")}
    with TestClient(create_app(make_settings(weights, workers=1, queue=1))) as c:
        running = c.post("/v1/jobs", files=files, data={"task": "tiny"}).json()
        assert started.wait(30)
        waiting = c.post("/v1/jobs", files=files, data={"task": "tiny"}).json()
        assert c.get(f"/v1/jobs/{waiting['id']}").json()["ahead"] == 0
        assert c.get("/healthz").json() == {"status": "ok", "models": 2, "busy": 2, "capacity": 2}
        for path in ("/v1/jobs", "/v1/restore"):
            refused = c.post(path, files=files, data={"task": "tiny"})
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert "busy" in detail(refused)
        release.set()
        for job in (running, waiting):
            deadline = time.monotonic() + 30
            while c.get(f"/v1/jobs/{job['id']}").json()["state"] != "done" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert c.get(job["result_url"]).status_code == 200
        deadline = time.monotonic() + 10  # a slot comes back just after its job reports "done"
        while c.get("/healthz").json()["busy"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.get("/healthz").json()["busy"] == 0
        assert post(c, data, task="tiny").status_code == 200  # slots came back


# --------------------------------------------------------------------------------------------------
# discovery: models, health, schema, page
# --------------------------------------------------------------------------------------------------


def test_models_endpoint(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert list(models) == ["tiny", "dn"]
    assert models["tiny"]["task"] == "sr" and models["tiny"]["scale"] == 2 and models["tiny"]["channels"] == 3
    assert models["dn"]["task"] == "denoise" and models["dn"]["scale"] == 1
    assert models["tiny"]["source"] == "file" and models["tiny"]["description"]
    assert body["task_names"]["color_car"] == "jpeg" and body["task_names"]["lightweight_sr"] == "sr"


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"


def test_openapi_schema_describes_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/restore", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result", "/v1/models",
            "/healthz"} <= set(schema["paths"])
    restore = schema["paths"]["/v1/restore"]["post"]
    assert "image/png" in restore["responses"]["200"]["content"]
    assert {"413", "422", "503"} <= set(restore["responses"])
    form = next(iter(schema["components"]["schemas"][name] for name in schema["components"]["schemas"]
                     if "restore" in name.lower()))
    assert form["required"] == ["image"]
    assert all(prop.get("description") for prop in form["properties"].values())
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.replace('href="/openapi.json"', "")
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


# --------------------------------------------------------------------------------------------------
# units: settings and naming
# --------------------------------------------------------------------------------------------------


def test_weights_spec_parsing() -> None:
    assert WeightsSpec.parse("a/b.safetensors") == WeightsSpec(Path("a/b.safetensors"))
    assert WeightsSpec.parse("fast=a/b.pth") == WeightsSpec(Path("a/b.pth"), "fast")
    with pytest.raises(swinir.SwinIRError):
        WeightsSpec.parse("=x.pth")


def test_task_inference() -> None:
    sr = swinir.ModelConfig(upscale=4, upsampler="pixelshuffle", **TINY)
    dn = swinir.ModelConfig(**TINY)
    car = swinir.ModelConfig(**{**TINY, "window_size": 7, "img_size": 14}, img_range=255.0)
    assert task_of(sr, {}) == "sr"
    assert task_of(dn, {}) == "denoise"
    assert task_of(car, {}) == "jpeg"
    assert task_of(dn, {"swinir.task": "color_car"}) == "jpeg"
    assert task_of(dn, {"swinir.task": "sr"}, name="jpeg") == "jpeg"  # a task-like name wins


def test_duplicate_names_and_no_models(weights: dict[str, Path]) -> None:
    with pytest.raises(swinir.SwinIRError, match="two models"):
        specs = (WeightsSpec(weights["tiny"], "x"), WeightsSpec(weights["dn"], "x"))
        ModelRegistry.from_settings(Settings(weights=specs, include_bundled=False))
    empty = ModelRegistry([])
    with pytest.raises(swinir.SwinIRError, match="no models"):
        empty.resolve("sr", None)


def test_bad_weights_file_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(swinir.SwinIRError, match=r"bad\.safetensors"):
        create_app(Settings(weights=(WeightsSpec(bad),), include_bundled=False))


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.org"))


def test_serve_arguments_map_to_settings(weights: dict[str, Path]) -> None:
    from swinir.cli import build_parser

    args = build_parser("serve").parse_args(["serve", "--weights", f"fast={weights['tiny']}", "--max-upload-mb", "2",
                                             "--max-pixels", "1000", "--queue", "3", "--workers", "2", "--no-bundled"])
    settings = service.settings_from_args(args)
    assert settings.weights == (WeightsSpec(weights["tiny"], "fast"),)
    assert (settings.max_upload_bytes, settings.max_pixels, settings.queue, settings.workers) == (2 << 20, 1000, 3, 2)
    assert not settings.include_bundled and args.host == "127.0.0.1"
