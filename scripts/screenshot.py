"""Take README's screenshot: the Generate tab offline, "一只戴眼镜的狗" with the demo models, in headless Chromium.

    python scripts/screenshot.py [--prompt 一只戴眼镜的狗] [--seed 11] [--out docs/screenshot.png]

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; never downloads a browser.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/...` from anywhere
    sys.path.insert(0, str(ROOT))

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", default="一只戴眼镜的狗")
    parser.add_argument("--seed", default="11")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from clipdemo import Studio, resolve_settings
    from clipdemo.ui import build_app

    demo = build_app(Studio(resolve_settings(preset="demo")))
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(180_000)
            page.goto(url)
            page.locator("#generate-prompt textarea").fill(args.prompt)
            page.get_by_label("Seed (blank = random)").fill(args.seed)
            page.locator("#generate-button").click()
            page.wait_for_function(
                "() => document.querySelectorAll('#ranked-gallery .grid-wrap .caption-label').length === 4")
            page.evaluate("window.scrollTo(0, 0)")  # filling the seed scrolled the page down to it
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out), full_page=False)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
