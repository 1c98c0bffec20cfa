"""The README's screenshots of `birds ui`, taken in headless Chromium from a real server.

    python docs/make_screenshots.py PHOTO [--home BIRDS_HOME] [--lang zh|en]

Starts `birds ui` on a free port, identifies PHOTO on the recognition page (waiting for the description
to finish), asks one question on the Q&A page, opens the knowledge-base page, and writes
docs/images/ui-{identify,ask,kb}.png. Needs Debian's chromium and a CJK font (fonts-noto-cjk) for the
Chinese text.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
QUESTION = {"zh": "家朱雀吃什么？", "en": "What do house finches eat?"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("--home", help="BIRDS_HOME for the server (default: yours)")
    parser.add_argument("--lang", choices=("zh", "en"), default="zh")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from birdsdao.ui.serving import free_port, wait_until_serving

    port = free_port()
    env = {**os.environ, **({"BIRDS_HOME": args.home} if args.home else {})}
    server = subprocess.Popen([sys.executable, "-c", "from birdsdao_cli.main import app; app()", "ui", "--port",
                               str(port)], env=env, cwd=ROOT)
    IMAGES.mkdir(parents=True, exist_ok=True)
    try:
        wait_until_serving(port, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1700})
            page.goto(f"http://127.0.0.1:{port}")
            if args.lang == "en":
                page.get_by_text("English").click()
            sources = "来源" if args.lang == "zh" else "Sources"
            page.locator("input[type=file]").first.set_input_files(str(args.photo))
            page.get_by_text(args.photo.name).first.wait_for(timeout=30_000)
            page.get_by_role("button", name="开始识别" if args.lang == "zh" else "Identify").click()
            page.get_by_text(f"{sources}:").first.wait_for(timeout=600_000)  # the description has finished
            page.screenshot(path=str(IMAGES / "ui-identify.png"), full_page=True)

            page.get_by_text("鸟类问答" if args.lang == "zh" else "Ask about birds").first.click()
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=60_000)
            box.fill(QUESTION[args.lang])
            box.press("Enter")
            page.get_by_text(f"{sources}:").first.wait_for(timeout=600_000)
            page.screenshot(path=str(IMAGES / "ui-ask.png"), full_page=True)

            page.get_by_text("知识库管理" if args.lang == "zh" else "Knowledge bases").first.click()
            page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
            page.screenshot(path=str(IMAGES / "ui-kb.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name in ("identify", "ask", "kb"):
        print(IMAGES / f"ui-{name}.png")


if __name__ == "__main__":
    main()
