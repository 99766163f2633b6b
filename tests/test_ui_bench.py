"""The Benchmark tab through gradio_client on a real server: its tables against scores computed here from the
run's own PNGs with transformers' CLIPModel, and statistics worked out by hand."""

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PROMPTS = "a red circle\na blue square"
SETTINGS = "one: steps=1\ntwo: steps=2"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bench_client(tiny_sd_dir, tiny_clip_dir):
    """The tiny-model app with 64×64 one-step defaults, so a page run takes seconds."""
    from dataclasses import replace

    from gradio_client import Client

    from clipdemo import Studio, resolve_settings
    from clipdemo.config import GenerationDefaults
    from clipdemo.ui import build_app
    from tests.servers import launch_local

    settings = resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32")
    demo = build_app(Studio(replace(settings, defaults=GenerationDefaults(width=64, height=64, steps=1))))
    demo.queue(max_size=16)
    try:
        yield Client(launch_local(demo), verbose=False)
    finally:
        demo.close()


def unzip(archive: str, where: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(where)
    return where


def test_tables_equal_an_independent_scoring_of_the_runs_images(bench_client, tmp_path, tiny_sd_dir, tiny_clip_dir):
    """Only the prompts given: the default settings a (the server's steps) and b (one more) and two seeds. Each
    PNG in the run's zip is scored here; means, the bootstrap CI (with 2 prompts of 2 seeds each, its 2.5% and
    97.5% points are the lowest and highest per-prompt means), win rate, mean difference and the exact
    sign-flip p-value over the 4 sign patterns follow by hand."""
    import itertools

    from clipdemo.ui.formatting import shown
    from tests.clip_reference import clip_score, reference_cosine

    summary, board, pairs, scores, categories, archive = bench_client.predict(PROMPTS, api_name="/bench")
    run = unzip(archive, tmp_path / "run")
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8 and all((run / r["file"]).is_file() for r in rows)  # 2 prompts × 2 seeds × 2 settings
    mine = {}
    for r in rows:  # the rows say which file is which; the scores come from the pixels
        cosine, _ = reference_cosine(tiny_clip_dir, [run / r["file"]], [r["prompt"]])
        mine[(r["setting"], r["prompt"], r["seed"])] = float(clip_score(cosine)[0, 0])
    assert {(s, p) for s, p, _ in mine} == {(s, p) for s in "ab" for p in PROMPTS.splitlines()}

    def per_prompt(setting):
        return [np.mean([v for (s, p, _), v in mine.items() if (s, p) == (setting, q)]) for q in PROMPTS.splitlines()]

    assert board["headers"][:5] == ["rank", "setting", "params", "images", "CLIP mean"]
    assert [r[0] for r in board["data"]] == [1, 2]
    for rank, name, params, images, mean, lo, hi in board["data"]:
        assert images == 4 and params == (f"model={shown(str(tiny_sd_dir))}, steps={1 if name == 'a' else 2}, "
                                          "guidance=0.0, scheduler=default, negative=, width=64, height=64")
        assert mean == pytest.approx(np.mean([v for (s, *_), v in mine.items() if s == name]), abs=2e-3)
        assert [lo, hi] == pytest.approx([min(per_prompt(name)), max(per_prompt(name))], abs=2e-3)
    means = [r[4] for r in board["data"]]
    assert means == sorted(means, reverse=True)
    diffs = {k[1:]: mine[("a", *k[1:])] - mine[("b", *k[1:])] for k in mine if k[0] == "a"}
    prompt_diffs = [np.mean([d for (p, _), d in diffs.items() if p == q]) for q in PROMPTS.splitlines()]
    flips = [abs(np.mean(np.array(signs) * prompt_diffs)) for signs in itertools.product([1, -1], repeat=2)]
    p_value = sum(f >= abs(np.mean(prompt_diffs)) - 1e-9 for f in flips) / 4
    win_rate = (sum(d > 0 for d in diffs.values()) + 0.5 * sum(d == 0 for d in diffs.values())) / 4
    ((a, b, metric, n, win, mean_diff, lo, hi, p, test),) = pairs["data"]
    assert (a, b, metric, n, test) == ("a", "b", "CLIP", 4, "exact sign-flip (2^2)")
    assert win == pytest.approx(win_rate) and p == pytest.approx(p_value)
    assert mean_diff == pytest.approx(np.mean(list(diffs.values())), abs=2e-3)
    assert [lo, hi] == pytest.approx([min(prompt_diffs), max(prompt_diffs)], abs=2e-3)
    assert f"**{board['data'][0][1]}" in summary and "2 prompts × 2 seeds × 2 settings" in summary
    assert ("**a and b tie on CLIP**" in summary) == (lo <= 0 <= hi)
    for shown_file, written in ((scores, "scores.png"), (categories, "categories.png")):
        assert Image.open(shown_file).size == Image.open(run / written).size
    for text_file in ("summary.json", "bench.json", "report.md", "results.jsonl"):  # no server path leaves the server
        assert str(tiny_sd_dir) not in (run / text_file).read_text(encoding="utf-8"), text_file


def test_every_input_by_position(bench_client, tmp_path):
    summary, board, pairs, *_, archive = bench_client.predict("a green star", "x: steps=1, guidance=0.5", "(typed)", 1,
                                                              "auto", api_name="/bench")
    assert [r[:4] for r in board["data"]] == [[1, "x", board["data"][0][2], 1]] and pairs["data"] == []
    assert "guidance=0.5" in board["data"][0][2] and "**x leads** on CLIP" in summary
    rows = (unzip(archive, tmp_path / "run") / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r)["seed"] for r in rows] == [0]


def test_a_run_over_the_page_limits_points_to_the_cli(bench_client):
    from gradio_client.exceptions import AppError

    many = "\n".join(f"a circle number {i}" for i in range(21))
    cli = (r"21 prompts × 1 seeds × 2 settings.*python -m clipdemo bench prompts\.txt --setting 'one: steps=1' "
           r"--setting 'two: steps=2' --seeds 1.*accelerate launch")
    with pytest.raises(AppError, match=cli):
        bench_client.predict(many, SETTINGS, "(typed)", 1, api_name="/bench")
    with pytest.raises(AppError, match=r"100 prompts × 1 seeds × 2 settings.*python -m clipdemo bench bilingual"):
        bench_client.predict("", SETTINGS, "bilingual", 1, api_name="/bench")  # a bundled set beyond the limit


def test_bad_settings_get_the_cores_message(bench_client, tiny_sd_dir):
    from gradio_client.exceptions import AppError

    from clipdemo.ui.formatting import shown

    with pytest.raises(AppError, match="Setting 'a steps=1': write it as 'NAME: key=value, ...'"):
        bench_client.predict(PROMPTS, "a steps=1", api_name="/bench")
    with pytest.raises(AppError, match="Type one prompt per line, or choose a bundled prompt set"):
        bench_client.predict(" ", SETTINGS, api_name="/bench")
    with pytest.raises(AppError, match="Type at least one setting"):
        bench_client.predict(PROMPTS, "  \n", api_name="/bench")
    with pytest.raises(AppError, match="Setting 'a': unknown key 'stpes'"):
        bench_client.predict(PROMPTS, "a: stpes=1", api_name="/bench")
    listed = re.escape(shown(str(tiny_sd_dir)))
    with pytest.raises(AppError, match=rf"model '/etc' is not one of this server's models: {listed}\.$"):
        bench_client.predict(PROMPTS, "a: model=/etc", api_name="/bench")  # no server path in the message
