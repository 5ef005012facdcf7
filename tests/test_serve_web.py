"""End to end: uvicorn on 127.0.0.1, the web page driven by headless Debian Chromium through Playwright.

Uploads a twin JSON, asks a query, and finds the overlay, the answer, the reasoning chain
and the objects table on the page; then picks a bundled demo scene. A screenshot is saved
(``FRS_SCREENSHOT_DIR`` or pytest's tmp folder) for a person to look at. Skips with the
reason when Chromium or Playwright is missing (CI installs both: ``apt-get install chromium``,
``pip install playwright``; no browser download).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fastreasonseg.reasoning.engine import RolloutEngine
from fastreasonseg.serve import ServeConfig, create_app
from fastreasonseg.serve.service import SegmentService
from fastreasonseg.serve.testing import BoxPerceiver, EchoBackend, running_server, sample_twin

pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server():
    service = SegmentService(RolloutEngine(EchoBackend()), ServeConfig(), perceiver=BoxPerceiver())
    with running_server(create_app(service)) as base:
        yield base


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FRS_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_upload_twin_ask_query_see_overlay_and_answer(server: str, page, tmp_path: Path) -> None:
    twin_path = tmp_path / "kitchen_twin.json"
    sample_twin().save(twin_path)
    failed_requests: list[str] = []
    page.on("requestfailed", lambda request: failed_requests.append(request.url))
    page.goto(server + "/")
    page.wait_for_selector("#demo option[value='kitchen']", state="attached")  # demos listed from the API
    page.set_input_files("#file", str(twin_path))
    page.fill("#query", "the nearer cup")
    page.click("#run")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#answer") == "3 (cup)"
    overlay_src = page.get_attribute("#overlay", "src")
    assert overlay_src.startswith("data:image/png;base64,")
    assert page.evaluate("document.getElementById('overlay').naturalWidth") == 320  # the PNG decoded
    chain = page.inner_text("#chain")
    assert "tool calls" in chain and "depth_order" in chain and "tool results" in chain and "answer" in chain
    rows = page.locator("#objects tbody tr")
    assert rows.count() == 4
    assert page.inner_text("#objects tr.selected").split("\t")[:2] == ["3", "cup"]
    assert "done in" in page.text_content("#status")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "serve_twin_query.png"), full_page=True)
    assert failed_requests == []  # every asset came from the app itself


def test_demo_scene_and_error_message(server: str, page, tmp_path: Path) -> None:
    page.goto(server + "/")
    page.wait_for_selector("#demo option[value='street']", state="attached")
    page.select_option("#demo", "street")
    # Polled with evaluate: wait_for_function evals a string in the page, which the page's CSP forbids.
    for _ in range(100):
        if page.evaluate("document.getElementById('preview').naturalWidth") > 0:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("document.getElementById('preview').naturalWidth") == 480  # the demo picture loaded
    page.fill("#query", "the nearest object")
    page.click("#run")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#answer") not in ("", "no object")
    assert page.locator("#objects tr.selected").count() == 1
    page.screenshot(path=str(screenshot_dir(tmp_path) / "serve_demo.png"), full_page=True)
    # A corrupt upload shows the server's message instead of breaking the page.
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    page.set_input_files("#file", str(bad))
    page.click("#run")
    page.wait_for_selector("#status.error")
    assert "error 422" in page.text_content("#status") and "cannot be decoded" in page.text_content("#status")
