"""The web service through FastAPI's TestClient (ASGI in process, no socket), with tiny models.

The central check: the API adds nothing, so the PNG it returns decodes to exactly what ``swinir.restore``
gives for the same pixels at the same precision (the form defaults to ``auto``, so it is compared with the
library's ``auto``). Then sigma/quality against what each model was trained for, every kind of bad input, the queue
limit, and the discovery endpoints.
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
from swinir.precision import resolve_precision
from swinir.service import ModelRegistry, Settings, WeightsSpec, create_app, is_loopback, jobs

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


@pytest.fixture(scope="module")
def level_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Same-size tiny models that tell their task and trained level in the ways real files do."""
    folder = tmp_path_factory.mktemp("levels")
    torch.manual_seed(1)
    dn = swinir.ModelConfig(**TINY)
    car = swinir.ModelConfig(**{**TINY, "window_size": 7, "img_size": 14}, img_range=255.0)
    files = {  # key -> (file name, config, metadata)
        "blind_dn": ("blind_dn.safetensors", dn, {"training_config": {"task": {"sigma": [0, 50]}}}),
        "blind_car": ("blind_car.safetensors", car, {"training_config": {"task": {"quality": [10, 40]}}}),
        "noise25": ("tiny_noise25.safetensors", dn, {}),  # an official checkpoint's naming: one level
        "jpeg": ("jpeg.safetensors", dn, {}),
        "car": ("car_arch.safetensors", car, {}),
    }
    paths = {}
    for key, (name, config, meta) in files.items():
        paths[key] = folder / name
        swinir.save_safetensors(paths[key], config.build(), config, meta)
    return paths


@pytest.fixture(scope="module")
def level_client(level_weights: dict[str, Path]) -> Iterator[TestClient]:
    specs = tuple(WeightsSpec(level_weights[k]) for k in ("blind_dn", "blind_car", "noise25"))
    with TestClient(create_app(Settings(weights=specs, include_bundled=False))) as c:
        yield c


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


def library_restore(model: swinir.SwinIR, pixels: np.ndarray, **options: object) -> np.ndarray:
    """What the API must answer by default: ``swinir.restore`` at the form's default precision, ``auto``."""
    return swinir.restore(model, pixels, precision="auto", **options)  # type: ignore[arg-type]


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
    np.testing.assert_array_equal(out, library_restore(reference["tiny"], pixels))


def test_downloads_of_photo_jpg_and_photo_png_have_different_names(client: TestClient) -> None:
    data = png_bytes(random_image((16, 16, 3)))
    names = [post(client, data, name=name, task="tiny").headers["content-disposition"]
             for name in ("photo.png", "photo.jpg", "photo.JPG")]
    assert names == ['inline; filename="photo_swinir_x2.png"', 'inline; filename="photo_jpg_swinir_x2.png"',
                     'inline; filename="photo_jpg_swinir_x2.png"']


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_explicit_precision_matches_library_restore(client: TestClient, reference: dict, precision: str) -> None:
    pixels = random_image((16, 20, 3), seed=5)
    response = post(client, png_bytes(pixels), task="tiny", precision=precision)
    assert response.status_code == 200, response.text
    assert response.headers["x-swinir-precision"] == precision
    np.testing.assert_array_equal(np.asarray(decoded(response)),
                                  swinir.restore(reference["tiny"], pixels, precision=precision))


def test_precision_defaults_to_auto(client: TestClient) -> None:
    """No precision field means auto: bf16 where this CPU computes it natively, else fp32."""
    response = post(client, png_bytes(random_image((16, 16, 3))), task="tiny")
    assert response.status_code == 200, response.text
    assert response.headers["x-swinir-precision"] == resolve_precision("auto")
    assert post(client, png_bytes(random_image((16, 16, 3))), task="tiny", precision="auto").status_code == 200
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    form = next(schema for name, schema in schemas.items() if "restore" in name.lower())
    assert form["properties"]["precision"]["default"] == "auto"


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
    expected, _ = match_channels(library_restore(reference["tiny"], rgb), 1)
    np.testing.assert_array_equal(np.asarray(image), expected)
    assert "gray" in response.headers["x-swinir-notice"]


def test_rgba_keeps_alpha(client: TestClient, reference: dict) -> None:
    rgba = random_image((16, 20, 4), seed=2)
    response = post(client, png_bytes(rgba, "RGBA"), task="tiny")
    assert response.status_code == 200, response.text
    image = decoded(response)
    assert image.mode == "RGBA" and image.size == (40, 32)
    out = np.asarray(image)
    np.testing.assert_array_equal(out[..., :3], library_restore(reference["tiny"], np.ascontiguousarray(rgba[..., :3])))
    np.testing.assert_array_equal(out[..., 3], restore_alpha(np.ascontiguousarray(rgba[..., 3]), 2))


def test_sixteen_bit_stays_sixteen_bit(client: TestClient, reference: dict) -> None:
    gray16 = random_image((16, 16), np.uint16, seed=3)
    response = post(client, png_bytes(gray16), task="dn")
    assert response.status_code == 200, response.text
    out = np.asarray(decoded(response))
    assert out.dtype == np.uint16 and out.shape == (16, 16)
    rgb, _ = match_channels(gray16, 3)
    expected, _ = match_channels(library_restore(reference["dn"], rgb), 1)
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
                                  library_restore(reference["tiny"], pixels, tile=16))
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
    ({"task": "tiny", "sigma": 25}, "sigma is for denoise models"),
    ({"task": "dn", "sigma": 300}, "sigma"),
    ({"task": "dn", "quality": 50}, "quality is for jpeg models"),
    ({"task": "tiny", "precision": "fp64"}, "precision"),
    ({"task": "tiny", "tile": 4}, "16"),
    ({"task": "tiny", "scale": "two"}, "scale"),
])
def test_bad_form_fields(client: TestClient, form: dict, words: str) -> None:
    response = post(client, png_bytes(random_image((16, 16, 3))), **form)
    assert response.status_code == 422, response.text
    assert words in detail(response)


# --------------------------------------------------------------------------------------------------
# sigma and quality: accepted only where the model can honour them
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "form"), [("blind_dn", {"sigma": 25}), ("blind_car", {"quality": 30})])
def test_blind_models_refuse_a_level(level_client: TestClient, model: str, form: dict) -> None:
    data = png_bytes(random_image((16, 16, 3)))
    response = post(level_client, data, task=model, **form)
    assert response.status_code == 422, response.text
    (field,) = form
    assert "blind" in detail(response) and model in detail(response) and field in detail(response)
    assert "--" not in detail(response)  # the API has form fields, not command-line flags
    assert post(level_client, data, task=model).status_code == 200  # without the field it runs


def test_one_level_model_takes_its_level_and_echoes_it(level_client: TestClient) -> None:
    data = png_bytes(random_image((16, 16, 3)))
    response = post(level_client, data, task="tiny_noise25", sigma=25)
    assert response.status_code == 200, response.text
    assert response.headers["x-swinir-sigma"] == "25"
    refused = post(level_client, data, task="tiny_noise25", sigma=50)
    assert refused.status_code == 422 and "25" in detail(refused) and "50" in detail(refused)


def test_level_of_unknown_models_is_echoed(client: TestClient) -> None:
    response = post(client, png_bytes(random_image((16, 16, 3))), task="dn", sigma=15)
    assert response.status_code == 200, response.text
    assert response.headers["x-swinir-sigma"] == "15"


def test_models_endpoint_tells_levels(level_client: TestClient, level_weights: dict[str, Path]) -> None:
    models = {m["name"]: m for m in level_client.get("/v1/models").json()["models"]}
    assert models["blind_dn"]["blind"] and models["blind_dn"]["level"] == [0, 50]
    assert models["blind_car"]["task"] == "jpeg" and models["blind_car"]["level"] == [10, 40]
    assert not models["tiny_noise25"]["blind"] and models["tiny_noise25"]["level"] == [25, 25]
    assert models["blind_dn"]["task_label"] == "denoising"
    named = ModelRegistry.from_settings(Settings(weights=(WeightsSpec(level_weights["noise25"], "dn25"),),
                                                 include_bundled=False))
    assert named.entries["dn25"].info.level == (25, 25)  # the file name still tells the level under a NAME


def test_bundled_models_list_their_measured_quality() -> None:
    """The bundled models as /v1/models lists them: described from their headers, not loaded."""
    with TestClient(create_app(Settings())) as c:
        models = c.get("/v1/models").json()["models"]
    bundled = {m["task"] if m["task"] != "sr" else f"sr x{m['scale']}": m for m in models if m["source"] == "bundled"}
    if "sr x2" not in bundled:
        pytest.skip("this installation has no bundled x2 model")
    row = bundled["sr x2"]["quality"]["Set5 x2"]
    assert isinstance(row["model"]["psnr_y"], float) and isinstance(row["bicubic"]["psnr_y"], float)
    assert not any(m["loaded"] for m in models)
    if "denoise" in bundled:
        assert bundled["denoise"]["blind"]  # the bundled denoiser is trained for a range of sigma


# --------------------------------------------------------------------------------------------------
# the bounded queue
# --------------------------------------------------------------------------------------------------


def test_full_queue_answers_503_with_retry_after(weights: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    release, started = threading.Event(), threading.Event()
    real_restore = jobs.restore_image

    def blocking_restore(*args: object, **kwargs: object) -> object:
        started.set()
        assert release.wait(30), "test never released the worker"
        return real_restore(*args, **kwargs)

    monkeypatch.setattr(jobs, "restore_image", blocking_restore)
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


def test_models_are_recognised_by_name_metadata_and_architecture(weights: dict[str, Path],
                                                                 level_weights: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    """The task of a served file: a task-like name wins, then ``swinir.task`` metadata, then the architecture."""
    dn = swinir.ModelConfig(**TINY)
    sr4 = swinir.ModelConfig(upscale=4, upsampler="pixelshuffle", **TINY)
    paths = {}
    for stem, config, meta in (("sr4", sr4, {}), ("meta_car", dn, {"task": "color_car"}),
                               ("meta_sr", dn, {"task": "sr"})):
        paths[stem] = tmp_path / f"{stem}.safetensors"
        swinir.save_safetensors(paths[stem], config.build(), config, meta)
    specs = (WeightsSpec(paths["sr4"]), WeightsSpec(weights["dn"]), WeightsSpec(level_weights["car"]),
             WeightsSpec(level_weights["jpeg"]), WeightsSpec(paths["meta_car"]),
             WeightsSpec(paths["meta_sr"], "color_car"))
    registry = ModelRegistry.from_settings(Settings(weights=specs, include_bundled=False))
    assert {name: (e.task, e.scale) for name, e in registry.entries.items()} == {
        "sr4": ("sr", 4),  # an upscaling network is SR
        "tiny_dn": ("denoise", 1),  # same size, 8x8 windows on 0..1: a denoiser
        "car_arch": ("jpeg", 1),  # same size, 7x7 windows on 0..255: the JPEG models' architecture
        "jpeg": ("jpeg", 1),  # a denoiser's architecture in a file named jpeg.safetensors: the name decides
        "meta_car": ("jpeg", 1),  # swinir.task metadata
        "color_car": ("jpeg", 1),  # a task-like NAME wins over the metadata (which says sr)
    }


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
