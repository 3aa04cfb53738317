"""End to end in a real browser: uvicorn on a loopback port, Debian's chromium driven by Playwright.

Two runs of the page, each uploading a Set5 image and waiting for the job:

* with a tiny hand-set model: the comparison shows the x2 result and the downloaded PNG is exactly what
  ``swinir.restore`` gives; the screenshot is ``ci-artifacts/web_e2e.png``. The model sharpens (3x3 kernel,
  5 in the middle, -1 on the sides) and upscales x2 by nearest neighbour, through the real SwinIR network
  (the transformer body's contribution is zeroed), so the two halves differ visibly;
* with the real bundled models (no ``--weights``): every model's description and measured quality read as
  text, the bundled x2 model gives a result twice the input's size; ``ci-artifacts/web_e2e_bundled.png``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import ROOT, shared_path

pytest.importorskip("fastapi", reason="the web service needs fastapi and python-multipart")
uvicorn = pytest.importorskip("uvicorn", reason="the browser test serves the app with uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install "
                                                             "playwright; no browser download: Debian's chromium)")

import swinir  # noqa: E402
from swinir.bundled import bundled_models  # noqa: E402
from swinir.images import decode_image  # noqa: E402
from swinir.precision import resolve_precision  # noqa: E402
from swinir.service import Settings, WeightsSpec, create_app  # noqa: E402

CHROMIUM = os.environ.get("SWINIR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / "ci-artifacts" / "web_e2e.png"
SCREENSHOT_BUNDLED = ROOT / "ci-artifacts" / "web_e2e_bundled.png"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")


def sharpen_x2_model(path: Path) -> None:
    """A tiny SwinIR whose output is the input sharpened and upscaled x2 by nearest neighbour."""
    config = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                                upsampler="pixelshuffledirect")
    model = config.build()
    kernel = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for c in range(3):
            model.conv_first.weight[c, c] = kernel  # features 0..2 = sharpened (input - mean)
            for k in range(4):  # PixelShuffle(2) takes output channel c from conv channels 4c..4c+3
                model.upsample[0].weight[4 * c + k, c, 1, 1] = 1.0
    swinir.save_safetensors(path, model, config, {"task": "classical_sr", "description": "test: sharpen + x2"})


@pytest.fixture
def bird() -> Path:
    """Set5 bird, x2 bicubic input (skips with the reason when ../shared is absent)."""
    return shared_path("datasets", "Set5", "LR_bicubic", "X2", "birdx2.png")


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The app on a free loopback port (the socket is bound first, so no port race), while the block runs."""
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The tiny sharpening model alone."""
    weights = tmp_path / "sharpen_x2.safetensors"
    sharpen_x2_model(weights)
    with serving(Settings(weights=(WeightsSpec(weights, "sharpen-x2"),), include_bundled=False)) as url:
        yield url


@pytest.fixture
def bundled_server() -> Iterator[str]:
    """What ``swinir serve`` with no flags serves: the bundled models."""
    with serving(Settings()) as url:
        yield url


@contextlib.contextmanager
def browser_page(profile: Path) -> Iterator[Any]:
    """A chromium page; the console errors and page errors it collects must be none when the block ends."""
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1100, "height": 1000}, accept_downloads=True,
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            yield page
        finally:
            context.close()
    assert not problems, f"browser console errors: {problems}"


def restore_in_page(page: Any, image: Path, timeout_ms: int) -> None:
    """Choose ``image``, press Restore, wait for the job to finish, and require that it succeeded."""
    page.set_input_files("#file", str(image))
    page.wait_for_function("() => document.getElementById('file-info').textContent.includes('×')")
    page.click("#restore")
    page.wait_for_selector("body[data-state=done], body[data-state=failed]", timeout=timeout_ms)
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#error")


def test_page_restores_a_set5_image(bird: Path, server: str, tmp_path: Path) -> None:
    source = decode_image(bird.read_bytes(), name=bird.name)
    height, width = source.size
    with browser_page(tmp_path / "profile") as page:
        page.goto(server + "/")
        page.wait_for_selector("#model option", state="attached", timeout=10_000)
        assert page.locator("#model").input_value() == "sharpen-x2"
        assert page.locator("#precision").input_value() == "auto"
        restore_in_page(page, bird, timeout_ms=120_000)

        after = page.locator("#result-image")
        assert after.is_visible() and page.locator("#before-image").is_visible()
        natural = page.evaluate("() => ['result-image', 'before-image'].map(id => document.getElementById(id))"
                                ".map(img => [img.naturalWidth, img.naturalHeight])")
        assert natural == [[2 * width, 2 * height], [width, height]]
        shown = after.bounding_box()
        before = page.locator("#before-image").bounding_box()
        assert shown and before and shown["width"] > 100 and (shown["width"], shown["height"]) == (
            before["width"], before["height"])  # both at the same zoom
        assert f"{width}×{height} → {2 * width}×{2 * height}" in page.text_content("#result-info")

        page.locator("#slider").fill("35")
        assert "35%" in page.evaluate("() => document.getElementById('result-image').style.clipPath")

        with page.expect_download() as download_info:
            page.click("#download")
        download = download_info.value
        assert download.suggested_filename == "birdx2_swinir_x2.png"
        restored = decode_image(Path(download.path()).read_bytes(), name="download")
        # the page asks for its default precision, auto; the library computes the same for the same choice
        expected = swinir.restore(swinir.load(tmp_path / "sharpen_x2.safetensors"), source.pixels, precision="auto")
        np.testing.assert_array_equal(restored.pixels, expected)

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_page_with_the_bundled_models(bird: Path, bundled_server: str, tmp_path: Path) -> None:
    """The page as ``swinir serve`` shows it out of the box: real models, their quality as text, a real x2."""
    x2 = next((m for m in bundled_models() if m.task == "sr" and m.scale == 2), None)
    if x2 is None:
        pytest.skip("this installation has no bundled x2 SR model")
    source = decode_image(bird.read_bytes(), name=bird.name)
    height, width = source.size
    with browser_page(tmp_path / "profile") as page:
        page.goto(bundled_server + "/")
        page.wait_for_selector("#model option", state="attached", timeout=10_000)
        names = page.evaluate("() => [...document.getElementById('model').options].map(o => o.value)")
        assert names == [m.name for m in bundled_models()]
        for name in names:  # every model's description and measured quality read as text
            page.select_option("#model", name)
            assert "[object" not in page.inner_text("body"), name
        page.select_option("#model", x2.name)
        label, value, baseline, base = x2.quality_rows()[0]
        assert f"{label}: {value:.2f} dB ({baseline} {base:.2f})" in page.inner_text("#model-quality")
        assert page.locator("#precision").input_value() == "auto"

        restore_in_page(page, bird, timeout_ms=300_000)
        natural = page.evaluate("() => ['result-image', 'before-image'].map(id => document.getElementById(id))"
                                ".map(img => [img.naturalWidth, img.naturalHeight])")
        assert natural == [[2 * width, 2 * height], [width, height]]
        info = page.text_content("#result-info")
        assert f"{width}×{height} → {2 * width}×{2 * height}" in info
        assert f"model {x2.name} ({resolve_precision('auto')})" in info
        assert "[object" not in page.content() and "[object" not in page.inner_text("body")

        SCREENSHOT_BUNDLED.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_BUNDLED), full_page=True)
