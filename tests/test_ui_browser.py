"""`birds ui` end to end: the real server in headless Chromium, from upload to the result table."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from birdsdao.ui.serving import free_port, wait_until_serving
from tests.conftest import biased_detector, jpeg_bytes

CHROMIUM = "/usr/bin/chromium"  # Debian's package: .ci/run installs it; Playwright downloads no browser


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is not installed (sudo apt-get install chromium)"
        if os.environ.get("BIRDS_REQUIRE_BROWSER"):  # set by .ci/run, which installs it
            pytest.fail(reason)
        pytest.skip(reason)
    pytest.importorskip("playwright", reason="Playwright comes with the [dev] extra")
    return CHROMIUM


@pytest.fixture
def server(tmp_path):
    port = free_port()
    weights = biased_detector(tmp_path / "sure.pt", [4.0, -1.0, -9.0])
    env = {**os.environ, "BIRDS_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    birds = shutil.which("birds", path=str(Path(sys.executable).parent)) or "birds"
    log = tmp_path / "server.log"  # a file, not a pipe nobody reads (a full pipe would stall the server)
    process = subprocess.Popen([birds, "ui", "--port", str(port), "--no-llm", "--weights", str(weights)], env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        try:
            wait_until_serving(port, process)
        except RuntimeError as exc:
            process.kill()
            raise AssertionError(f"{exc}:\n{log.read_text()}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_upload_a_photo_identify_and_see_the_table(chromium, server, tmp_path):
    from playwright.sync_api import sync_playwright

    photo = tmp_path / "finch.jpg"
    photo.write_bytes(jpeg_bytes(160, 120, seed=4))
    screenshot = tmp_path / "identified.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server)
            page.get_by_text("鸟类识别").first.wait_for(timeout=60_000)
            page.locator("input[type=file]").first.set_input_files(str(photo))
            page.get_by_text("finch.jpg").first.wait_for(timeout=30_000)  # the uploader lists it
            page.get_by_text("生成科普介绍").click()  # the table is the point here, not the card text
            page.get_by_role("button", name="开始识别").click()
            table = page.locator("[data-testid='stDataFrame']")
            table.wait_for(timeout=120_000)
            page.locator("[data-testid='stImage'] img").first.wait_for(timeout=30_000)
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    with Image.open(screenshot) as shot:
        assert shot.width == 1280 and shot.height >= 600
        assert len(set(shot.convert("L").resize((64, 64)).get_flattened_data())) > 10  # a page was drawn, not a blank
