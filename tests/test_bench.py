"""`python -m clipdemo bench`: prompts, settings, rows, statistics, resume, accelerate and the CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from clipdemo.bench import ResultRow, append_row, read_rows, summarize, write_summary
from clipdemo.errors import InputError
from tests.processes import run_one_and_two


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


# Five prompts with 1, 4, 2, 1 and 3 seeds: the image-weighted mean differs from the prompt-weighted one, and
# per-prompt sums differ from per-prompt means, so a wrong weighting or statistic gives another answer.
UNEQUAL_A = {"q1": [10.0], "q2": [30.0, 31.0, 29.0, 30.0], "q3": [20.0, 22.0], "q4": [40.0], "q5": [25.0, 26.0, 24.0]}
UNEQUAL_DIFF = {"q1": [1.0], "q2": [-0.5, -0.3, -0.4, -0.2], "q3": [0.4, 0.6], "q4": [0.6], "q5": [0.3, 0.2, 0.4]}


def unequal_rows():
    rows = []
    for prompt, values in UNEQUAL_A.items():
        for seed, (value, diff) in enumerate(zip(values, UNEQUAL_DIFF[prompt])):
            rows += [row("a", prompt, seed, value), row("b", prompt, seed, value - diff)]
    return rows


def exact_bootstrap(groups: list[list[float]], weight: str = "image", q=(2.5, 97.5)) -> np.ndarray:
    """Every one of the P^P equally likely resamples of P prompts, enumerated: the exact percentile CI."""
    means = []
    for pick in itertools.product(range(len(groups)), repeat=len(groups)):
        chosen = [groups[i] for i in pick]
        if weight == "image":
            means.append(sum(map(sum, chosen)) / sum(map(len, chosen)))
        else:
            means.append(np.mean([np.mean(g) for g in chosen]))
    return np.percentile(means, q)


def exact_sign_flip(per_prompt: list[float]) -> float:
    observed = abs(np.mean(per_prompt))
    flips = [abs(np.mean(np.array(signs) * per_prompt)) for signs in itertools.product([1, -1], repeat=len(per_prompt))]
    return sum(f >= observed - 1e-12 for f in flips) / len(flips)


def test_bootstrap_ci_and_p_value_with_unequal_seeds_equal_their_exact_answers():
    """The 95% interval against all 3125 resamples of 5 prompts enumerated by hand, and the two-sided p-value
    against all 32 sign patterns of the per-prompt mean differences. The bands are narrower than the distance
    to a wrong percentile, a prompt-weighted mean, or a p-value of per-prompt sums (each checked below)."""
    summary = summarize(unequal_rows())
    groups = list(UNEQUAL_A.values())
    got = summary.setting("a").ci95["clip"]
    # 2000 Monte Carlo resamples put the 2.5% point between the exact 1.5% and 3.5% points (and so on above).
    low, high = exact_bootstrap(groups, q=(1.5, 3.5)), exact_bootstrap(groups, q=(96.5, 98.5))
    assert low[0] <= got[0] <= low[1] and high[0] <= got[1] <= high[1], (got, low, high)
    for wrong in (exact_bootstrap(groups, "prompt"), exact_bootstrap(groups, q=(5, 95)),
                  exact_bootstrap(groups, q=(0.5, 99.5))):  # each mistake lands outside the bands
        assert not (low[0] <= wrong[0] <= low[1] and high[0] <= wrong[1] <= high[1]), wrong
    assert summary.setting("a").mean["clip"] == pytest.approx(sum(map(sum, groups)) / sum(map(len, groups)))

    (pair,) = summary.pairwise
    diffs = list(UNEQUAL_DIFF.values())
    means, sums = [float(np.mean(d)) for d in diffs], [float(np.sum(d)) for d in diffs]
    assert pair.test == "exact sign-flip (2^5)"
    assert pair.p_value == pytest.approx(exact_sign_flip(means))
    assert exact_sign_flip(sums) != pytest.approx(exact_sign_flip(means))  # the wrong statistic is told apart
    low, high = exact_bootstrap(diffs, q=(1.5, 3.5)), exact_bootstrap(diffs, q=(96.5, 98.5))
    assert low[0] <= pair.ci95[0] <= low[1] and high[0] <= pair.ci95[1] <= high[1], (pair.ci95, low, high)
    assert pair.mean_diff == pytest.approx(np.mean([x for d in diffs for x in d]))


def test_the_summary_is_reproducible_bit_for_bit():
    assert summarize(unequal_rows()).as_json() == summarize(unequal_rows()).as_json()


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


# -- prompts and settings -------------------------------------------------------------------------------
from clipdemo.bench import BUNDLED_SETS, load_prompts, parse_setting  # noqa: E402
from clipdemo.bench.settings import parse_settings  # noqa: E402


def test_prompts_from_text_csv_jsonl_lists_and_bundled_sets(tmp_path):
    (tmp_path / "p.txt").write_text("a red circle\n\n一个蓝色的正方形\n", encoding="utf-8")
    txt = load_prompts(tmp_path / "p.txt")
    assert [(p.id, p.prompt, p.source) for p in txt] == [("1", "a red circle", "p.txt"), ("3", "一个蓝色的正方形", "p.txt")]
    (tmp_path / "p.csv").write_text("id,prompt,category\nx,a cat,objects\n,a dog,\n", encoding="utf-8")
    assert [(p.id, p.prompt, p.category) for p in load_prompts(str(tmp_path / "p.csv"))] == [
        ("x", "a cat", "objects"), ("2", "a dog", "")]
    (tmp_path / "p.jsonl").write_text('{"prompt": "a cat", "category": "c"}\n\n{"id": "k", "prompt": "a dog"}\n')
    assert [(p.id, p.category) for p in load_prompts(tmp_path / "p.jsonl")] == [("1", "c"), ("k", "")]
    assert [p.id for p in load_prompts(["a cat", "a dog"])] == ["1", "2"]
    bilingual = load_prompts("bilingual")
    assert len(bilingual) >= 100 and {p.language for p in bilingual} == {"en", "zh"}
    assert {p.category for p in bilingual} == {"objects", "colours", "counting", "composition", "style"}
    assert sum(p.language == "en" for p in bilingual) == sum(p.language == "zh" for p in bilingual) >= 50
    shapes = load_prompts("shapes")
    assert set(BUNDLED_SETS) == {"bilingual", "shapes"} and len(shapes) >= 20 and shapes[0].source == "shapes"


@pytest.mark.parametrize("name, content, message", [
    ("none.txt", None, "no such file and not a bundled set"),
    ("empty.txt", "\n\n", "there are no prompts"),
    ("bad.csv", "text\nhello\n", "needs a 'prompt' column"),
    ("bad.jsonl", '{"prompt": "a"}\nnot json\n', "line 2: not JSON"),
    ("twice.jsonl", '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "prompt id 'a' is used twice"),
    ("blank.csv", "prompt\n\" \"\n", "prompt '1': The prompt is empty"),
])
def test_bad_prompt_files_name_the_problem(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_prompts(tmp_path / name)


def test_settings_strings_parse_with_types_and_commas_in_the_negative():
    s = parse_setting("fast-1: steps=4, guidance=1.5, scheduler=euler, negative=blurry, ugly, width=64")
    assert s.name == "fast-1" and s.params == {"steps": 4, "guidance": 1.5, "scheduler": "euler",
                                               "negative": "blurry, ugly", "width": 64}
    assert parse_setting("base:").params == {} and parse_setting(" b : model=x ").params == {"model": "x"}


@pytest.mark.parametrize("texts, message", [
    (["a steps=4"], "write it as 'NAME: key=value"),
    (["../x: steps=4"], "write it as 'NAME: key=value"),
    (["a: seed=4"], "unknown key 'seed'. Known keys: model, steps"),
    (["a: steps=four"], "steps must be a whole number"),
    (["a: guidance=lots"], "guidance must be a number"),
    (["a: scheduler=magic"], "unknown scheduler 'magic'"),
    (["a: steps=1, steps=2"], "'steps' is given twice"),
    (["a: steps=1", "a: steps=2"], "Setting name 'a' is used twice"),
    ([], "at least one setting"),
])
def test_bad_settings_strings_name_the_problem(texts, message):
    with pytest.raises(InputError, match=message):
        parse_settings(texts)


# -- runs on the tiny models ---------------------------------------------------------------------------
SETTINGS = ["one: steps=1, width=64, height=64", "two: steps=2, guidance=2, width=64, height=64"]


@pytest.fixture(scope="module")
def bench_studio(tiny_sd_dir, tiny_clip_dir):
    from clipdemo import Studio, resolve_settings

    return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                   decoder="full", moderation="off", pick_model="none"))


@pytest.fixture(scope="module")
def first_run(bench_studio, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    (out.parent / "prompts.csv").write_text("id,prompt,category\np1,a red circle,colours\np2,a blue square,shapes\n")
    run = bench_studio.bench(str(out.parent / "prompts.csv"), SETTINGS, seeds=2, out=out, seed_base=5)
    return out, run


def test_a_run_writes_one_row_and_png_per_setting_prompt_and_seed(first_run, bench_studio, tiny_clip_dir):
    from clipdemo.provenance import read_metadata
    from tests.clip_reference import clip_score, reference_cosine

    out, run = first_run
    rows = read_rows(out / "results.jsonl")
    assert rows == run.rows and len(rows) == 8
    assert [r.key for r in rows] == [(s, p, k) for s in ("one", "two") for p in ("p1", "p2") for k in (5, 6)]
    assert {r.category for r in rows} == {"colours", "shapes"} and rows[0].source == "prompts.csv"
    for r in rows:
        meta = read_metadata(out / r.file)
        assert (meta["seed"], meta["bench_setting"], meta["prompt"]) == (r.seed, r.setting, r.prompt)
        assert set(r.scores) == {"clip"}
        cosine, _ = reference_cosine(tiny_clip_dir, [out / r.file], [r.prompt])
        assert r.scores["clip"] == pytest.approx(float(clip_score(cosine)[0, 0]), abs=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == run.summary.as_json() and (summary["prompts"], summary["seeds"]) == (2, 2)
    assert [s["params"]["steps"] for s in summary["settings"]] == [1, 2]
    assert summary["settings"][0]["n_images"] == 4 and summary["pairwise"][0]["n_pairs"] == 4
    assert {p.name for p in out.iterdir()} >= {"results.jsonl", "summary.json", "report.md", "scores.png",
                                               "categories.png", "bench.json"}


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_rerun_writes_nothing_new_and_a_cut_run_resumes(first_run, bench_studio):
    out, run = first_run
    prompts = str(out.parent / "prompts.csv")
    before, made = snapshot(out), []
    again = bench_studio.bench(prompts, SETTINGS, seeds=2, out=out, seed_base=5, progress=lambda *a: made.append(a))
    assert snapshot(out) == before and again.rows == run.rows and made == []
    # Killed mid-line on the last row, its PNG gone: only that image is made again.
    data = (out / "results.jsonl").read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    (out / "results.jsonl").write_bytes(data[: last + 25])
    (out / run.rows[-1].file).unlink()
    resumed = bench_studio.bench(prompts, SETTINGS, seeds=2, out=out, seed_base=5, progress=lambda *a: made.append(a))
    assert made == [(1, 1)] and (out / run.rows[-1].file).exists()
    assert [r.key for r in resumed.rows] == [r.key for r in run.rows]
    assert resumed.rows[-1].scores["clip"] == pytest.approx(run.rows[-1].scores["clip"], abs=1e-4)
    assert (out / "results.jsonl").read_bytes().count(b"\n") == 8


def test_a_setting_name_with_other_params_is_refused(first_run, bench_studio):
    out, _ = first_run
    with pytest.raises(InputError, match="already holds setting 'one' with other parameters"):
        bench_studio.bench(str(out.parent / "prompts.csv"), ["one: steps=3, width=64, height=64"], seeds=1, out=out)
    with pytest.raises(InputError, match="not one of this server's models"):
        bench_studio.bench(["a cat"], ["x: model=elsewhere/sd"], seeds=1, out=out)


# -- the command line and accelerate -----------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--setting", "a: steps=x"], "steps must be a whole number"),
    (["--setting", "a: steps=1", "--seeds", "0"], "Seeds must be a whole number"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, tiny_sd_dir, tiny_clip_dir, capsys, args, message):
    from clipdemo.cli.main import main

    (tmp_path / "p.txt").write_text("a cat\n")
    code = main(["bench", str(tmp_path / "p.txt"), *args, "--out", str(tmp_path / "o"), "--sd-model",
                 str(tiny_sd_dir), "--clip-model", str(tiny_clip_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and err.startswith("clipdemo bench: error:")


def test_cli_bad_prompts_file_exits_2_with_one_line(tmp_path, capsys):
    from clipdemo.cli.main import main

    (tmp_path / "p.jsonl").write_text("{nope\n")
    assert main(["bench", str(tmp_path / "p.jsonl"), "--setting", "a: steps=1", "--out", str(tmp_path / "o"),
                 "--preset", "demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "p.jsonl, line 1: not JSON" in err


def test_accelerate_two_processes_equal_one(tiny_sd_dir, tiny_clip_dir, tmp_path):
    (tmp_path / "p.txt").write_text("a red circle\na blue square\na green star\n")
    common = ["-m", "clipdemo", "bench", str(tmp_path / "p.txt"), "--seeds", "2", "--setting", SETTINGS[0],
              "--setting", SETTINGS[1], "--sd-model", str(tiny_sd_dir), "--clip-model", str(tiny_clip_dir),
              "--dtype", "fp32", "--decoder", "full", "--moderation", "off", "--pick-model", "none"]
    run_one_and_two(common, tmp_path)
    one, two = read_rows(tmp_path / "one" / "results.jsonl"), read_rows(tmp_path / "two" / "results.jsonl")
    assert len(one) == 12 and [r.key for r in one] == [r.key for r in two]
    for a, b in zip(one, two):
        assert (a.file, a.prompt, set(a.scores)) == (b.file, b.prompt, set(b.scores))
        assert a.scores["clip"] == pytest.approx(b.scores["clip"], abs=1e-4)
    assert not list((tmp_path / "two").glob("results.rank*.jsonl"))
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s1.keys() == s2.keys() and s1["prompts"] == s2["prompts"] == 3
    assert json.dumps(s1, sort_keys=True) == json.dumps(s2, sort_keys=True) or approx_equal(s1, s2)


def approx_equal(x, y) -> bool:
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(approx_equal(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return len(x) == len(y) and all(approx_equal(a, b) for a, b in zip(x, y))
    if isinstance(x, float):
        return abs(x - y) <= 1e-4 * max(1.0, abs(x))
    return x == y


def test_notices_that_differ_only_in_their_numbers_are_told_once_with_a_count(bench_studio, tmp_path):
    """A long prompt's "N tokens long" notice per image would bury the run's output; it is told once."""
    long = ["a " + "very " * (90 + k) + "red circle" for k in range(3)]
    run = bench_studio.bench(long, ["a: steps=1, width=64, height=64"], seeds=1, out=tmp_path / "long")
    told = [n for n in run.notices if "tokens long" in n]
    assert len(told) == 1 and told[0].endswith("(and 2 more like it)"), run.notices
