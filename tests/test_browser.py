"""Real-browser tests: Debian's Chromium, driven by Playwright, against the app with the demo models.

Screenshots of each step go to test-artifacts/browser/ (git-ignored). Needs /usr/bin/chromium and the
trained demo models in assets/models; skipped otherwise. Never downloads a browser.
"""

import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from clipdemo.config import PRESETS
from tests.servers import launch_local

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
LONG = 120_000  # ms: the first click loads the models
MEDIUM = 120_000  # a loaded 2-core machine needs the slack

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found (install Debian's chromium package to run the browser tests)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not (Path(PRESETS["demo"].sd_model).is_dir() and Path(PRESETS["demo"].clip_model).is_dir()):
    pytest.skip("the demo models are not in assets/models (run scripts/train_demo_models.py)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server_url():
    from clipdemo import Studio, resolve_settings
    from clipdemo.ui import build_app

    studio = Studio(resolve_settings(preset="demo"))
    demo = build_app(studio)
    demo.queue(max_size=32)
    url = launch_local(demo)
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser, server_url):
    """One page for the module: the steps run in order, like a user going through the tabs."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(MEDIUM)
    page.goto(server_url, wait_until="domcontentloaded")
    page.locator("#generate-button").wait_for(state="visible", timeout=LONG)
    try:
        yield page
    finally:
        context.close()


@contextmanager
def step(page, name: str):
    """Screenshot the page after the step; when it fails, keep the page's HTML and a screenshot instead."""
    try:
        yield
    except BaseException:
        try:
            (ARTIFACTS / f"{name}-failure.html").write_text(page.content())
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        raise
    page.wait_for_timeout(300)  # settle: let the last render finish before the screenshot
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def test_generate_ranks_candidates_best_first(page):
    with step(page, "1-generate"):
        page.get_by_label("Prompt", exact=True).fill("a red circle")
        candidates = page.get_by_label("number input for Candidates")
        if candidates.input_value() != "4":
            candidates.fill("4")
            candidates.press("Enter")
        stop = page.locator("#stop-button")
        assert not stop.is_visible()  # nothing to stop yet
        page.locator("#generate-button").click()
        stop.wait_for(state="visible", timeout=MEDIUM)  # while the run goes on

        gallery = page.locator("#ranked-gallery")
        page.wait_for_function(
            "() => document.querySelectorAll('#ranked-gallery .grid-wrap .caption-label').length === 4",
            timeout=LONG,
        )
        stop.wait_for(state="hidden", timeout=MEDIUM)
        # The demo preset has no PickScore model: its column would only ever be empty.
        headers = page.locator("#ranking-table thead").inner_text()
        assert "CLIP score" in headers and "PickScore" not in headers, headers
        assert gallery.locator(".grid-wrap img").count() == 4
        texts = [c.inner_text().strip() for c in gallery.locator(".grid-wrap .caption-label").all()]
        scores = []
        for text in texts:
            match = re.search(r"CLIP\s+(-?\d+(?:\.\d+)?)", text)
            assert match, f"no CLIP score in caption {text!r}"
            scores.append(float(match.group(1)))
        assert [t.split(" ")[0] for t in texts] == ["#1", "#2", "#3", "#4"], texts
        assert scores == sorted(scores, reverse=True), texts


def test_history_tab_lists_the_run_and_clears(page):
    with step(page, "2-history"):
        open_tab(page, "History")
        has_run = "() => (document.querySelector('#history-table')?.innerText || '').includes('a red circle')"
        page.wait_for_function(has_run, timeout=MEDIUM)
        page.get_by_role("button", name="Clear history").click()
        page.wait_for_function(f"() => !({has_run})()", timeout=MEDIUM)


def test_compare_tab_runs_both_settings(page):
    with step(page, "3-compare"):
        open_tab(page, "Compare")
        page.locator("#compare-prompt textarea").fill("a blue square")
        page.locator("#compare-button").click()
        page.wait_for_function(
            "() => (document.querySelector('#compare-summary')?.innerText || '').includes('seeds won')", timeout=LONG)
        summary = page.locator("#compare-summary").inner_text()
        assert re.search(r"(A wins|B wins|A draw)", summary), summary
        open_tab(page, "History")  # both settings were recorded
        page.wait_for_function(
            "() => (document.querySelector('#history-table')?.innerText.match(/compare [AB]/g) || []).length >= 2",
            timeout=MEDIUM)


def test_zero_shot_tab_classifies_a_green_star(page, tmp_path):
    from demo_world import world

    image, _ = world.render("green", "star", np.random.default_rng(5))
    path = tmp_path / "green-star.png"
    image.save(path)

    with step(page, "4-zero-shot"):
        open_tab(page, "Zero-shot")
        page.locator("#classify-files input[type=file]").set_input_files(str(path))
        # The file list renders the name as two spans ("green-star" ".png") whose text may be joined by a
        # space, so wait for the row's aria-label, which holds the whole name.
        page.locator("#classify-files td.filename[aria-label='green-star.png']").wait_for(state="visible",
                                                                                           timeout=LONG)

        labels = ", ".join(world.class_name(c, s) for c, s in world.CLASSES)
        page.locator("#classify-labels textarea").fill(labels)
        page.locator("#classify-button").click()

        top = page.locator("#classify-label [data-testid='label-output-value']")
        top.wait_for(state="visible", timeout=LONG)
        page.wait_for_function(
            "() => document.querySelector(\"#classify-label [data-testid='label-output-value']\")"
            ".textContent.trim() !== ''",
            timeout=MEDIUM,
        )
        shown = [t.strip() for t in page.locator("#classify-label dt").all_inner_texts()]
        shares = [t.strip() for t in page.locator("#classify-label dd").all_inner_texts()]
        assert top.inner_text().strip() == "green star", f"the page shows {list(zip(shown, shares))}"


def test_similarity_tab_shows_its_controls(page):
    with step(page, "5-similarity"):
        open_tab(page, "Similarity")
        button = page.locator("#similarity-button")
        button.wait_for(state="visible")
        assert button.inner_text().strip() == "Compute similarity"
        upload = page.locator("#similarity-files")
        upload.wait_for(state="visible")
        assert upload.locator("input[type=file]").count() == 1
