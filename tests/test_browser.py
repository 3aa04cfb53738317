"""End to end in a real browser: uvicorn on a loopback port, Debian's chromium driven by Playwright.

Opens the page, uploads a Set5 image, waits for the job, checks the comparison shows the x2 result and that
the downloaded PNG is exactly what ``swinir.restore`` gives, then saves ``ci-artifacts/web_e2e.png``.

The model is tiny and hand-set rather than random, so the screenshot is meaningful: it sharpens (3x3
kernel, 5 in the middle, -1 on the sides) and upscales x2 by nearest neighbour, through the real SwinIR
network (the transformer body's contribution is zeroed).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, shared_path

pytest.importorskip("fastapi", reason="the web service needs fastapi and python-multipart")
uvicorn = pytest.importorskip("uvicorn", reason="the browser test serves the app with uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install "
                                                             "playwright; no browser download: Debian's chromium)")

import swinir  # noqa: E402
from swinir.images import decode_image  # noqa: E402
from swinir.service import Settings, WeightsSpec, create_app  # noqa: E402

CHROMIUM = os.environ.get("SWINIR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / "ci-artifacts" / "web_e2e.png"

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The app on a free loopback port (the socket is bound first, so no port race), for the test's duration."""
    weights = tmp_path / "sharpen_x2.safetensors"
    sharpen_x2_model(weights)
    app = create_app(Settings(weights=(WeightsSpec(weights, "sharpen-x2"),), include_bundled=False))
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


def test_page_restores_a_set5_image(bird: Path, server: str, tmp_path: Path) -> None:
    source = decode_image(bird.read_bytes(), name=bird.name)
    height, width = source.size
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1100, "height": 1000}, accept_downloads=True,
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(server + "/")
            page.wait_for_selector("#model option", state="attached", timeout=10_000)
            assert page.locator("#model").input_value() == "sharpen-x2"
            page.set_input_files("#file", str(bird))
            page.wait_for_function("() => document.getElementById('file-info').textContent.includes('×')")
            page.click("#restore")
            page.wait_for_selector("body[data-state=done], body[data-state=failed]", timeout=120_000)
            assert page.get_attribute("body", "data-state") == "done", page.text_content("#error")

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
            expected = swinir.restore(swinir.load(tmp_path / "sharpen_x2.safetensors"), source.pixels)
            np.testing.assert_array_equal(restored.pixels, expected)

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            context.close()
    assert not problems, f"browser console errors: {problems}"

