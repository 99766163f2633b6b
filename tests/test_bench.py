"""`python -m clipdemo bench`: prompts, settings, rows, statistics, resume, accelerate and the CLI."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipdemo.bench import ResultRow, append_row, read_rows, summarize, write_summary
from clipdemo.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


# -- rows ---------------------------------------------------------------------------------------------
def row(setting, prompt_id, seed, clip, category="", pick=None):
    scores = {"clip": clip} if pick is None else {"clip": clip, "pickscore": pick}
    return ResultRow(setting, prompt_id, f"prompt {prompt_id}", seed, scores, f"{setting}/{prompt_id}_{seed}.png",
                     category)


def test_rows_round_trip_and_a_half_written_last_line_is_ignored(tmp_path):
    path = tmp_path / "results.jsonl"
    rows = [row("a", "p1", 0, 30.5, "colours"), ResultRow("b", "中", "一个红色的圆", None, {"clip": 1.0}, "x.png",
                                                         source="list.txt")]
    for r in rows:
        append_row(path, r)
    assert read_rows(path) == rows
    with open(path, "ab") as f:
        f.write(b'{"setting": "a", "prompt_id": "p2", "se')  # killed mid-write
    assert read_rows(path) == rows
    append_row(path, rows[0])  # the next append starts on a fresh line
    assert read_rows(path) == rows + [rows[0]]
    assert ResultRow.from_json(json.loads(json.dumps(rows[1].as_json()))) == rows[1]


def test_a_damaged_line_in_the_middle_is_an_input_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"broken\n' + json.dumps(row("a", "p", 0, 1.0).as_json()) + "\n")
    with pytest.raises(InputError, match="line 1"):
        read_rows(path)


# -- statistics -----------------------------------------------------------------------------------------
# Two settings, 3 prompts x 2 seeds; a beats b on 4 pairs, ties on 1, loses on 1.
A = {("p1", 0): 30.0, ("p1", 1): 31.0, ("p2", 0): 25.0, ("p2", 1): 27.0, ("p3", 0): 20.0, ("p3", 1): 22.0}
B = {("p1", 0): 29.0, ("p1", 1): 31.0, ("p2", 0): 26.0, ("p2", 1): 24.0, ("p3", 0): 18.0, ("p3", 1): 21.5}
CATEGORY = {"p1": "colours", "p2": "colours", "p3": "counting"}


def made_up_rows():
    return ([row("a", p, s, v, CATEGORY[p]) for (p, s), v in A.items()]
            + [row("b", p, s, v, CATEGORY[p]) for (p, s), v in B.items()])


def test_win_rate_mean_diff_and_category_means_by_hand():
    summary = summarize(made_up_rows(), params={"a": {"steps": 4}, "b": {"steps": 1}})
    (pair,) = summary.pairwise
    assert (pair.a, pair.b, pair.metric, pair.n_pairs) == ("a", "b", "clip", 6)
    assert pair.win_rate_a == pytest.approx((4 + 0.5) / 6)  # wins 1,0(tie),-1,3,2,0.5
    assert pair.mean_diff == pytest.approx((1 + 0 - 1 + 3 + 2 + 0.5) / 6)
    assert summary.setting("a").mean["clip"] == pytest.approx(np.mean(list(A.values())))
    assert summary.setting("a").params == {"steps": 4} and summary.setting("b").n_images == 6
    assert summary.categories["b"]["colours"]["clip"] == pytest.approx((29 + 31 + 26 + 24) / 4)
    assert summary.categories["a"]["counting"]["clip"] == pytest.approx(21.0)
    assert (summary.prompts, summary.seeds, summary.scorers) == (3, 2, ["clip"])


def brute_force_p(per_prompt: list[float]) -> float:
    observed = abs(np.mean(per_prompt))
    flips = [abs(np.mean([s * d for s, d in zip(signs, per_prompt)]))
             for signs in itertools.product([1, -1], repeat=len(per_prompt))]
    return sum(f >= observed - 1e-12 for f in flips) / len(flips)


def test_exact_sign_flip_p_value_equals_brute_force():
    (pair,) = summarize(made_up_rows()).pairwise
    per_prompt = [(1 + 0) / 2, (-1 + 3) / 2, (2 + 0.5) / 2]
    assert pair.test == "exact sign-flip (2^3)"
    assert pair.p_value == pytest.approx(brute_force_p(per_prompt))  # 2 of 8 patterns: 0.25
    assert pair.p_value == pytest.approx(0.25)


def test_monte_carlo_p_value_for_many_prompts_is_close_to_exact_and_reproducible():
    rng = np.random.default_rng(3)
    diffs = rng.normal(0.3, 1.0, 20)
    rows = [row("a", f"p{i:02d}", 0, 50 + d) for i, d in enumerate(diffs)] + [row("b", f"p{i:02d}", 0, 50.0)
                                                                               for i in range(20)]
    first, again = summarize(rows).pairwise[0], summarize(rows[::-1], params={"a": {}, "b": {}}).pairwise[0]
    assert first.test.startswith("Monte Carlo") and first.p_value == again.p_value and first.ci95 == again.ci95
    # The exact answer by enumerating 2^20 patterns in numpy, independently of the module.
    signs = 1 - 2 * ((np.arange(2**20)[:, None] >> np.arange(20)) & 1)
    exact = np.mean(np.abs((signs * diffs).mean(axis=1)) >= abs(diffs.mean()) - 1e-12)
    assert abs(first.p_value - exact) < 0.01


def test_bootstrap_ci_contains_the_mean_and_is_reproducible():
    one, two = summarize(made_up_rows()), summarize(made_up_rows())
    for summary in (one,):
        for s in summary.settings:
            lo, hi = s.ci95["clip"]
            assert lo <= s.mean["clip"] <= hi and lo < hi
        lo, hi = summary.pairwise[0].ci95
        assert lo <= summary.pairwise[0].mean_diff <= hi
    assert one.as_json() == two.as_json()
    # Resampling prompts: the CI lies within the range of per-prompt means.
    per_prompt = [np.mean([v for (p, _), v in A.items() if p == q]) for q in ("p1", "p2", "p3")]
    assert min(per_prompt) <= one.setting("a").ci95["clip"][0] and one.setting("a").ci95["clip"][1] <= max(per_prompt)


def test_summary_files_and_a_tie_is_made_visible(tmp_path):
    rows = made_up_rows() + [row("c", p, s, v, CATEGORY[p]) for (p, s), v in A.items()]
    summary = summarize(rows, seeds=2)
    paths = write_summary(summary, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert set(data) == {"prompts", "seeds", "scorers", "settings", "pairwise", "categories"}
    assert set(data["settings"][0]) == {"name", "params", "n_images", "mean", "ci95"}
    assert set(data["pairwise"][0]) >= {"a", "b", "metric", "win_rate_a", "mean_diff", "ci95", "p_value", "test"}
    a_c = next(p for p in data["pairwise"] if (p["a"], p["b"]) == ("a", "c"))
    assert a_c["win_rate_a"] == 0.5 and a_c["mean_diff"] == 0.0
    report = paths["markdown"].read_text()
    assert "a and c tie on CLIP" in report and "| 1 |" in report
    for kind in ("scores", "categories"):
        assert paths[kind].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
