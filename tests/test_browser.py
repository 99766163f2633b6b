"""Real-browser tests: Debian's Chromium, driven by Playwright, against the app with the demo models.

Screenshots of each step go to test-artifacts/browser/ (git-ignored), and a result link with the ranking
before and after the restart to result-link.json there. Needs /usr/bin/chromium and the
trained demo models in assets/models; skipped otherwise. Never downloads a browser.
"""

import json
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from clipdemo.config import PRESETS
from tests.clip_reference import clip_score, reference_cosine
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


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(f"number input for {label}")
    if box.input_value() != str(value):
        box.fill(str(value))
        box.press("Enter")
    # the slider follows once the page holds the value; a click before that could send the old one
    playwright_api.expect(page.get_by_label(f"range slider for {label}")).to_have_value(str(value))


def gallery_sources(page) -> list[str]:
    return page.locator("#ranked-gallery .grid-wrap img").evaluate_all("imgs => imgs.map(i => i.src)")


def test_generate_ranks_candidates_best_first(page):
    with step(page, "1-generate"):
        page.get_by_label("Prompt", exact=True).fill("a red circle")
        set_number(page, "Candidates", 4)
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


def test_stop_cancels_the_run_keeps_nothing_and_the_page_works_again(page):
    with step(page, "1b-stop"):
        before = gallery_sources(page)
        assert len(before) == 4  # the previous step's run
        set_number(page, "Candidates", 8)  # the most candidates and steps: the run is still denoising when Stop lands
        set_number(page, "Steps", 100)
        stop = page.locator("#stop-button")
        page.locator("#generate-button").click()
        page.locator("#ranked-gallery [role=progressbar][aria-label=Denoising]").wait_for(state="visible",
                                                                                         timeout=LONG)
        stop.click()
        stop.wait_for(state="hidden", timeout=LONG)  # the run has ended, cancelled or not
        page.get_by_text("Stopped: the generation was cancelled, nothing was kept.").wait_for(state="visible",
                                                                                            timeout=10_000)
        assert gallery_sources(page) == before  # the cancelled run added nothing

        page.get_by_label("Prompt", exact=True).fill("a blue square")
        set_number(page, "Candidates", 1)
        set_number(page, "Steps", 10)
        page.locator("#generate-button").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('#ranked-gallery .grid-wrap .caption-label')].length === 1",
            timeout=LONG)
        stop.wait_for(state="hidden", timeout=MEDIUM)
        assert page.locator("#ranked-gallery .caption-label").first.inner_text().startswith("#1 · CLIP ")
        assert gallery_sources(page)[0] not in before  # the new run's image, not an old one


STOPPED_LEAF = "e => e.childElementCount === 0 && e.textContent.includes('Stopped: the generation was cancelled')"


def test_stop_while_queued_cancels_the_run_when_its_turn_comes(page, browser, server_url):
    """Generate runs one at a time: a Stop pressed while this page's run waits behind another user's cancels it."""
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.set_default_timeout(MEDIUM)
    try:
        with step(page, "1c-stop-queued"):
            other.goto(server_url, wait_until="domcontentloaded")
            other.locator("#generate-button").wait_for(state="visible", timeout=LONG)
            other.get_by_label("Prompt", exact=True).fill("a green star")
            set_number(other, "Candidates", 8)
            set_number(other, "Steps", 100)
            other.locator("#generate-button").click()
            other.locator("#ranked-gallery [role=progressbar][aria-label=Denoising]").wait_for(state="visible",
                                                                                              timeout=LONG)
            before = gallery_sources(page)
            # toasts of an earlier Stop may still be showing (or leave meanwhile): mark them, wait for a new one
            page.evaluate(f"() => [...document.querySelectorAll('*')].filter({STOPPED_LEAF})"
                          ".forEach(e => e.dataset.seen = '1')")
            page.locator("#generate-button").click()  # queued behind the other page's run
            page.locator("#stop-button").click()
            other.locator("#stop-button").click()
            page.locator("#stop-button").wait_for(state="hidden", timeout=LONG)  # this page's run has ended
            page.wait_for_function(f"() => [...document.querySelectorAll('*')].filter({STOPPED_LEAF})"
                                   ".some(e => !e.dataset.seen)", timeout=LONG)
            assert gallery_sources(page) == before  # the queued run was cancelled, not run
    except BaseException:
        other.screenshot(path=str(ARTIFACTS / "1c-other-page-failure.png"), full_page=True)
        raise
    finally:
        other.context.close()


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

    image, _ = world.render("green", "star", np.random.default_rng(0))
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
    # The label transformers' own CLIPModel puts first, with the tab's default template.
    from clipdemo.text import DEFAULT_TEMPLATE

    names = [world.class_name(c, s) for c, s in world.CLASSES]
    cosine, _ = reference_cosine(PRESETS["demo"].clip_model, [path], [DEFAULT_TEMPLATE.format(n) for n in names])
    assert shown[0] == names[int(cosine[0].argmax())]


def test_similarity_tab_matches_an_independent_clip(page, tmp_path):
    from demo_world import world

    shapes = [("red", "circle"), ("blue", "square")]
    paths = []
    for i, (colour, shape) in enumerate(shapes):
        image, _ = world.render(colour, shape, np.random.default_rng(i))
        paths.append(tmp_path / f"{colour}-{shape}.png")
        image.save(paths[-1])
    texts = [f"a {colour} {shape}" for colour, shape in shapes]

    with step(page, "5-similarity"):
        open_tab(page, "Similarity")
        page.locator("#similarity-files input[type=file]").set_input_files([str(p) for p in paths])
        for path in paths:
            page.locator(f"#similarity-files td.filename[aria-label='{path.name}']").wait_for(state="visible",
                                                                                             timeout=LONG)
        page.get_by_label("Texts (one per line)").fill("\n".join(texts))
        page.locator("#similarity-button").click()
        page.wait_for_function(
            "() => (document.querySelector('#similarity-table [data-testid=\"cell-3-3\"]')?.innerText || '').trim()",
            timeout=LONG)
        table = page.locator("#similarity-table")
        rows = [[table.locator(f"[data-testid='cell-{i}-{j}']").inner_text().strip() for j in range(4)]
                for i in range(4)]
    assert [row[:2] for row in rows] == [[p.name, t] for p in paths for t in texts], rows
    shown = np.array([float(row[2]) for row in rows]).reshape(2, 2)
    expected, _ = reference_cosine(PRESETS["demo"].clip_model, paths, texts)
    assert shown.argmax(axis=1).tolist() == [0, 1], rows  # each shape is closest to its own caption
    # The demo preset scores in bfloat16 on the CPU, the reference in float32: close, not equal.
    np.testing.assert_allclose(shown, expected, atol=0.02)
    np.testing.assert_allclose([float(row[3]) for row in rows], clip_score(expected).ravel(), atol=2)


def test_search_tab_finds_uploaded_and_generated_images_and_describes(page, tmp_path):
    import zipfile

    from demo_world import world

    rng = np.random.default_rng(11)
    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for colour, shape in world.CLASSES:
            image, _ = world.render(colour, shape, rng)
            image.save(tmp_path / f"{colour}_{shape}.png")
            zf.write(tmp_path / f"{colour}_{shape}.png", f"all/{colour}_{shape}.png")
    first_cell = "document.querySelector('#search-table [data-testid=\"cell-0-1\"]')?.innerText || ''"

    with step(page, "6-search"):
        open_tab(page, "Search")
        page.locator("#search-zip input[type=file]").set_input_files(str(archive))
        page.locator("#search-zip td.filename[aria-label='shapes.zip']").wait_for(state="visible", timeout=LONG)
        page.locator("#search-text textarea").fill("a red circle")
        page.locator("#search-button").click()
        page.wait_for_function(f"() => ({first_cell}).includes('red_circle')", timeout=LONG)
        assert page.locator("#search-gallery .grid-wrap img").count() == 12
        assert "of 30 images" in page.locator("#search-summary").inner_text()

    with step(page, "7-search-generated"):
        # The Compare step generated 2 x 4 images of "a blue square" on this page (and Generate 4 more,
        # unless the History step cleared them).
        page.get_by_label("generated on this page").check()
        page.locator("#search-text textarea").fill("a blue square")
        page.locator("#search-button").click()
        page.wait_for_function(
            "() => /of (8|12) images/.test(document.querySelector('#search-summary')?.innerText || '')",
            timeout=LONG)
        searched = int(re.search(r"of (\d+) images", page.locator("#search-summary").inner_text()).group(1))
        assert page.locator("#search-gallery .grid-wrap img").count() == min(searched, 12)

    with step(page, "8-describe"):
        page.locator("#describe-image input[type=file]").set_input_files(str(tmp_path / "yellow_triangle.png"))
        page.locator("#describe-button").click()
        page.wait_for_function(
            "() => (document.querySelector('#describe-prompt textarea')?.value || '').includes('yellow triangle')",
            timeout=LONG)
        prompt = page.locator("#describe-prompt textarea").input_value()
        page.locator("#describe-send").click()
        generate_prompt = page.locator("#generate-prompt textarea")
        generate_prompt.wait_for(state="visible", timeout=MEDIUM)  # the Generate tab is shown again
        assert generate_prompt.input_value() == prompt


def test_a_phone_sees_the_prompt_and_generate_on_its_first_screen(browser, server_url):
    """390×844 (a phone held upright): the title, one line of models, the offline line, the prompt and the
    Generate button fit the first screen; the helpers' states wait in the collapsed Details panel."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(server_url, wait_until="domcontentloaded")
        button = page.locator("#generate-button")
        button.wait_for(state="visible", timeout=LONG)
        page.wait_for_timeout(500)  # the layout settles after the first render
        page.screenshot(path=str(ARTIFACTS / "phone-first-screen.png"))
        prompt = page.locator("#generate-prompt textarea").bounding_box()
        go = button.bounding_box()
        assert prompt["y"] >= 0 and go["y"] + go["height"] <= 844, (prompt, go)
        header = page.locator("#model-banner").inner_text()
        assert "draws" in header and "ranks" in header and len(header.splitlines()) <= 6, header
        assert not page.locator("#details-text").is_visible()  # collapsed until asked for
        page.get_by_text("Details", exact=True).click()
        page.locator("#details-text").wait_for(state="visible")
        assert "moderation" in page.locator("#details-text").inner_text()
    finally:
        context.close()


def demo_server(port: int | None = None):
    """A fresh studio and server for the demo preset, with the server's own queue."""
    from clipdemo import Studio, resolve_settings
    from clipdemo.ui import app

    studio = Studio(resolve_settings(preset="demo"))
    demo = app.queue(app.build_app(studio), studio)
    return demo, launch_local(demo, port=port)


def ranking_rows(page, n: int, table: str = "ranking-table") -> list[str]:
    """A table's first three columns once its n rows are in (the ranking: rank, seed, CLIP score)."""
    page.wait_for_function(f"() => document.querySelectorAll('#{table} [data-testid=cell-{n - 1}-0]')"
                           ".length === 1", timeout=LONG)
    return [" ".join(page.locator(f"#{table} [data-testid=cell-{row}-{col}]").inner_text().strip()
                     for col in range(3)) for row in range(n)]


def test_a_result_link_brings_the_same_ranking_back_after_a_restart(browser):
    from tests.servers import free_port

    port = free_port()
    demo, url = demo_server(port)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(MEDIUM)
    try:
        with step(page, "link-1-generate"):
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#generate-prompt textarea").fill("一只戴眼镜的狗")
            set_number(page, "Candidates", 3)
            set_number(page, "Steps", 10)  # the link carries it, like every other setting
            page.get_by_label("Seed (blank = random)").fill("11")
            page.locator("#generate-button").click()
            first = ranking_rows(page, 3)
            page.wait_for_function("() => document.querySelector('#result-link textarea').value.includes('run=1')",
                                   timeout=MEDIUM)
            link = page.locator("#result-link textarea").input_value()
        assert link.startswith(url.rstrip("/") + "/?") and "prompt=一只戴眼镜的狗" in link, link
        assert "seed=11" in link and "n=3" in link and "steps=10" in link and "preset=demo" in link, link
        with step(page, "link-1b-compare"):
            open_tab(page, "Compare")
            page.locator("#compare-prompt textarea").fill("a red circle")
            set_number(page, "Seeds", 2)
            page.locator("#compare-button").click()
            compared = ranking_rows(page, 2, "compare-table")  # seed, A, B
            page.wait_for_function("() => document.querySelector('#compare-link textarea').value.includes('run=1')",
                                   timeout=MEDIUM)
            compare_link = page.locator("#compare-link textarea").input_value()
        assert "tab=compare" in compare_link and "n=2" in compare_link and "a_model=demo-sd" in compare_link
    finally:
        context.close()
        demo.close()

    demo, url = demo_server(port)  # restarted: a new studio, models loaded again, the same address
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(MEDIUM)
    try:
        with step(page, "link-2-opened-after-restart"):
            page.goto(link, wait_until="domcontentloaded")
            again = ranking_rows(page, 3)  # it ran by itself
            assert page.locator("#generate-prompt textarea").input_value() == "一只戴眼镜的狗"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "result-link.json").write_text(json.dumps({"link": link, "before restart": first,
                                                                "after restart": again}, ensure_ascii=False, indent=2))
        assert again == first  # same seeds, same order, same scores
        assert not page.locator("#link-notice").is_visible()  # nothing was left out

        with step(page, "link-2b-compare-opened"):
            page.goto(compare_link, wait_until="domcontentloaded")
            assert ranking_rows(page, 2, "compare-table") == compared  # the Compare tab, run by itself
            assert page.locator("#compare-prompt textarea").input_value() == "a red circle"

        with step(page, "link-3-bad-parameters"):
            page.goto(url + "?prompt=a%20red%20circle&n=2&steps=500&width=100&colour=red&run=0",
                      wait_until="domcontentloaded")
            notice = page.locator("#link-notice")
            notice.wait_for(state="visible", timeout=MEDIUM)
            text = notice.inner_text()
            assert "steps=500" in text and "width=100" in text and "colour" in text, text
            assert "n=2" not in text and len(text.splitlines()) == 1, text
            assert page.locator("#generate-prompt textarea").input_value() == "a red circle"
            assert page.get_by_label("number input for Candidates").input_value() == "2"
            page.wait_for_timeout(1500)
            assert page.locator("#ranking-table [data-testid=cell-0-0]").count() == 0  # run=0: nothing ran
    finally:
        context.close()
        demo.close()
