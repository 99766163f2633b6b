"""The page's strings and table rows, from result objects built by hand; expected values are written out."""

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdemo.bench import PairStats, SettingStats, Summary
from clipdemo.compare import Comparison, Setting
from clipdemo.evaluation import EvalResult
from clipdemo.generation import GenerationRequest
from clipdemo.moderation import Verdict
from clipdemo.generation.ranking import RankedImage, RankResult
from clipdemo.similarity import SimilarityResult
from clipdemo.studio import ZeroShotResult
from clipdemo.ui import formatting as fmt
from clipdemo.zeroshot import Classification, Prediction

ROOT = Path(__file__).resolve().parent.parent
PIXEL = Image.new("RGB", (8, 8))


def ranked(rank, seed, scores, moderation=None):
    return RankedImage(rank=rank, seed=seed, image=PIXEL, scores=scores, moderation=moderation)


def run(images, **kwargs):
    return RankResult(GenerationRequest("a red circle", "", len(images), 1, 0.0, 64, 64, 5),
                      "/srv/models/tiny-sd", "openai/clip-vit-base-patch32", images, **kwargs)


def gradio_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == "gradio"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "gradio":
            names.append(node.module)
    return names


def test_formatting_and_the_core_never_import_gradio():
    core = [p for p in (ROOT / "clipdemo").rglob("*.py") if "ui" not in p.relative_to(ROOT / "clipdemo").parts[:1]]
    assert core and all(not gradio_imports(p) for p in core), [p for p in core if gradio_imports(p)]
    assert not gradio_imports(ROOT / "clipdemo" / "ui" / "formatting.py")
    assert gradio_imports(ROOT / "clipdemo" / "ui" / "app.py")  # the check can see an import


def test_ranking_table_has_a_pickscore_column_only_when_scored_by_it():
    flagged = {"flagged": True, "checker": "c", "threshold": 0.5, "top_concept": "x", "top_score": 0.9}
    both = run([ranked(1, 6, {"clip": 31.41592, "pickscore": 21.23456}, flagged), ranked(2, 5, {"clip": 20.0})])
    assert fmt.ranking_table(both) == {
        "headers": ["rank", "seed", "CLIP score", "PickScore", "moderation"],
        "data": [[1, 6, 31.416, 21.235, "flagged, blurred"], [2, 5, 20.0, None, "unchecked"]],
    }
    ok = dict(flagged, flagged=False)
    clip_only = run([ranked(1, 5, {"clip": 12.3456}, ok)])
    assert fmt.ranking_table(clip_only) == {"headers": ["rank", "seed", "CLIP score", "moderation"],
                                            "data": [[1, 5, 12.346, "ok"]]}


def test_run_description_names_models_seeds_translation_weights_and_notices():
    plain = run([ranked(1, 5, {"clip": 1.0}), ranked(2, 6, {"clip": 0.5})])
    assert fmt.describe_run(plain) == ("Ranked by clip with **openai/clip-vit-base-patch32**; generated with "
                                       "**tiny-sd**. Seeds 5–6.")
    full = run([ranked(1, 5, {"clip": 1.0})], rank_by="pickscore", translated_prompt="a dog",
               models={"sd_model": {"model": "tiny-sd", "weights": "safetensors"}}, notices=["cut", "slow"])
    assert fmt.describe_run(full) == (
        "Ranked by pickscore with **openai/clip-vit-base-patch32**; generated with **tiny-sd**. Seeds 5–5."
        "\n\nTranslated for the pipeline: *a dog* (ranked against the prompt as typed)."
        "\n\nWeights: sd model tiny-sd (safetensors)"
        "\n\n- ⚠️ cut\n- ⚠️ slow")


def test_header_details_and_scorer_info():
    notices = ["Offline: the demo models draw animals and coloured shapes only. The default models cannot be reached."]
    text = fmt.header("stabilityai/sd-turbo", "/srv/models/demo-clip", "cpu", "torch.bfloat16", notices)
    assert text == ("# clipdemo\n**stabilityai/sd-turbo** draws · **demo-clip** ranks · cpu, bfloat16"
                    "\n\n⚠️ Offline: the demo models draw animals and coloured shapes only.")
    assert fmt.details("clip", {"translator": "off", "PickScore": "on request"}, notices) == (
        "Ranking: CLIPScore, sorted by clip; models load on first use.\n\n- **translator**: off\n"
        "- **PickScore**: on request\n\n> ⚠️ " + notices[0])
    assert fmt.scorer_info("OFA-Sys/chinese-clip-vit-base-patch16", "/srv/m/demo-clip") == (
        "auto: text with Chinese characters is scored by OFA-Sys/chinese-clip-vit-base-patch16, "
        "other text by demo-clip")


def test_classify_rows_captions_scores_and_info():
    result = ZeroShotResult("/srv/models/demo-clip", [
        Classification("a.png", [Prediction("cat", 0.754321), Prediction("dog", 0.245679)]),
        Classification("b.png", [Prediction("狗", 0.6), Prediction("cat", 0.4)]),
    ], notices=["labels cut"], template="a photo of a {}.")
    assert fmt.classify_rows(result) == [["a.png", "cat", 0.7543], ["a.png", "dog", 0.2457],
                                         ["b.png", "狗", 0.6], ["b.png", "cat", 0.4]]
    assert fmt.classify_captions(result) == ["a.png: cat (75%)", "b.png: 狗 (60%)"]
    assert fmt.label_scores(result.images[0]) == {"cat": 0.754321, "dog": 0.245679}
    assert fmt.label_scores(result.images[1]) == {"狗": 0.6, "cat": 0.4}
    assert fmt.classify_info(result) == "Scored by **demo-clip** with template `a photo of a {}.`\n\n⚠️ labels cut"


def test_similarity_rows_title_and_info():
    result = SimilarityResult(["a.png", "b.png"], ["a dog", "a cat"], np.array([[0.31234, -0.1], [0.25, 0.0]]),
                              scorer="openai/clip-vit-base-patch32")
    assert fmt.similarity_rows(result) == [["a.png", "a dog", 0.3123, 31.23], ["a.png", "a cat", -0.1, 0.0],
                                           ["b.png", "a dog", 0.25, 25.0], ["b.png", "a cat", 0.0, 0.0]]
    assert fmt.similarity_title(result) == "cosine similarity · scored by openai/clip-vit-base-patch32"
    assert fmt.similarity_info(result) == "Scored by **openai/clip-vit-base-patch32**"
    result.notices = ["one"]
    assert fmt.similarity_info(result) == "Scored by **openai/clip-vit-base-patch32**\n\n⚠️ one"


def test_moderation_summary_rows_and_captions():
    names = ["a.png", "b.png"]
    verdicts = [Verdict(True, {"nudity": 0.91234, "violence": 0.1}, 0.5, "c"),
                Verdict(False, {"nudity": 0.2, "violence": 0.3}, 0.5, "c")]
    assert fmt.moderation_summary(names, verdicts, "/srv/models/safety") == (
        "Checker: **safety** · threshold 0.5\n- a.png: ⚠️ **flagged** (nudity, 0.912)\n"
        "- b.png: ok (highest: violence, 0.300)")
    assert fmt.moderation_rows(names, verdicts) == [
        ["a.png", "nudity", 0.9123, True], ["a.png", "violence", 0.1, False],
        ["b.png", "nudity", 0.2, False], ["b.png", "violence", 0.3, False]]
    assert fmt.moderation_captions(names, verdicts) == ["a.png: flagged", "b.png: ok"]


def test_eval_summary_rows_and_mistakes():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    result = EvalResult("/srv/models/demo-clip", "single", 1, ["cat", "dog", "bird"], ["猫", "dog", "bird"], logits,
                        np.array([0, 1, 1, 1]), skipped=["broken.png"], source_indices=[0, 1, 3, 4])
    assert fmt.eval_summary(result) == (
        "**top-1 50.0%** · top-5 100.0% · 4 images (1 unreadable, skipped), 3 classes · "
        "logits `torch.Size([4, 3])` · templates single (1) · CLIP demo-clip")
    assert fmt.eval_rows(result) == [["猫", 1.0], ["dog", 0.3333], ["bird", None]]
    assert fmt.eval_mistakes(result) == [(2, "dog → 猫"), (3, "dog → 猫")]
    assert fmt.eval_mistakes(result, limit=1) == [(2, "dog → 猫")]
    result.skipped = []
    assert "4 images, 3 classes" in fmt.eval_summary(result)


@pytest.mark.parametrize("b_scores, verdict, ties", [((25.0, 20.0), "**A wins.**", 1),
                                                     ((35.0, 21.0), "**B wins.**", 0),
                                                     ((30.0, 20.0), "**A draw.**", 2)])
def test_compare_summary_rows_and_titles(b_scores, verdict, ties):
    a = run([ranked(1, 5, {"clip": 30.0, "pickscore": 3.0}), ranked(2, 6, {"clip": 20.0, "pickscore": 2.0})])
    b = run([ranked(2, 5, {"clip": b_scores[0], "pickscore": 1.0}),
             ranked(1, 6, {"clip": b_scores[1], "pickscore": 1.0})])
    result = Comparison(a, b, "clip", [5, 6])
    mean_b, max_b, spread_b = sum(b_scores) / 2, max(b_scores), abs(b_scores[0] - b_scores[1]) / 2
    wins_a, wins_b = {"**A wins.**": (1, 0), "**B wins.**": (0, 2), "**A draw.**": (0, 0)}[verdict]
    assert fmt.compare_summary(result) == (
        "| CLIPScore | A | B |\n|---|---|---|\n"
        f"| mean | 25.000 | {mean_b:.3f} |\n| max | 30.000 | {max_b:.3f} |\n"
        f"| spread (std) | 5.000 | {spread_b:.3f} |\n| seeds won | {wins_a} | {wins_b} |\n\n"
        f"Same seeds 5–6; ties: {ties}. {verdict}")
    assert fmt.compare_rows(result) == [[5, 30.0, b_scores[0]], [6, 20.0, b_scores[1]]]
    by_pick = fmt.compare_summary(Comparison(a, b, "pickscore", [5, 6]))
    assert by_pick.startswith("| PickScore | A | B |\n") and by_pick.endswith("ties: 0. **A wins.**")
    assert fmt.setting_title("B", "tiny-sd", Setting("m", 4, 7.5, "euler")) == "B: tiny-sd, 4 steps, g 7.5, euler"


NAN = "the model produced NaN values (try fp32 with --dtype fp32)"


def test_compare_summary_leaves_out_broken_images_and_says_so():
    a = run([ranked(1, 5, {"clip": 30.0}), ranked(2, 6, {"clip": 20.0}), ranked(3, 7, {"clip": 10.0})])
    b = run([ranked(1, 5, {"clip": 25.0}), ranked(2, 6, {"clip": 22.0}),
             RankedImage(rank=3, seed=7, image=PIXEL, scores={}, problem=NAN)])
    result = Comparison(a, b, "clip", [5, 6, 7])
    assert fmt.compare_summary(result) == (
        "| CLIPScore | A | B |\n|---|---|---|\n"
        "| mean | 20.000 | 23.500 |\n| max | 30.000 | 25.000 |\n"
        "| spread (std) | 8.165 | 1.500 |\n| seeds won | 1 | 1 |\n| not scored | 0 | 1 |\n\n"
        f"Same seeds 5–7; ties: 0; not compared: seed 7 (B: {NAN}). **A draw.**")
    assert fmt.compare_rows(result) == [[5, 30.0, 25.0], [6, 20.0, 22.0], [7, 10.0, None]]


def test_compare_summary_of_a_side_without_scores():
    a = run([ranked(1, 5, {"clip": 30.0})])
    b = run([RankedImage(rank=1, seed=5, image=PIXEL, scores={}, problem=NAN)])
    assert fmt.compare_summary(Comparison(a, b, "clip", [5])) == (
        "| CLIPScore | A | B |\n|---|---|---|\n"
        "| mean | 30.000 | — |\n| max | 30.000 | — |\n"
        "| spread (std) | 0.000 | — |\n| seeds won | 0 | 0 |\n| not scored | 0 | 1 |\n\n"
        f"Same seeds 5–5; ties: 0; not compared: seed 5 (B: {NAN}). "
        f"**No image of B could be scored ({NAN}), so there is no comparison.**")
    # Each side broken on another seed: scores on both sides, but no seed to compare.
    a = run([ranked(1, 5, {"clip": 30.0}), RankedImage(rank=2, seed=6, image=PIXEL, scores={}, problem=NAN)])
    b = run([RankedImage(rank=2, seed=5, image=PIXEL, scores={}, problem=NAN), ranked(1, 6, {"clip": 20.0})])
    summary = fmt.compare_summary(Comparison(a, b, "clip", [5, 6]))
    assert summary.endswith(f"not compared: seed 5 (B: {NAN}), seed 6 (A: {NAN}). "
                            "**No seed was scored on both sides, so there is no comparison.**")


EXACT = "exact sign-flip (2^2)"


def bench_summary(clip_ci_diff, pairs=4):
    a = SettingStats("a", {"model": "/srv/models/tiny-sd", "steps": 1}, 4, {"clip": 30.12345, "pickscore": 20.5},
                     {"clip": [29.0, 31.25], "pickscore": [20.0, 21.0]})
    b = SettingStats("b", {"model": "/srv/models/tiny-sd", "steps": 2}, 4, {"clip": 31.0, "pickscore": 20.25},
                     {"clip": [30.5, 31.5], "pickscore": [19.875, 20.625]})
    pairwise = [PairStats("a", "b", "clip", pairs, 0.25, -0.87655, clip_ci_diff, 0.25, EXACT),
                PairStats("a", "b", "pickscore", pairs, 0.5, 0.25, [-0.5, 1.0], 1.0, EXACT)]
    return Summary(2, 2, ["clip", "pickscore"], [a, b], pairwise, {})


def test_bench_leaderboard_and_pairwise_rows():
    summary = bench_summary([-1.5, -0.25])
    assert fmt.bench_leaderboard(summary) == {
        "headers": ["rank", "setting", "params", "images", "CLIP mean", "CLIP CI low", "CLIP CI high",
                    "Pick mean", "Pick CI low", "Pick CI high"],
        "data": [[1, "b", "model=tiny-sd, steps=2", 4, 31.0, 30.5, 31.5, 20.25, 19.875, 20.625],  # best first
                 [2, "a", "model=tiny-sd, steps=1", 4, 30.123, 29.0, 31.25, 20.5, 20.0, 21.0]]}
    assert fmt.bench_pairwise(summary) == {
        "headers": ["a", "b", "score", "pairs", "win rate a", "mean a − b", "CI low", "CI high", "p", "test"],
        "data": [["a", "b", "CLIP", 4, 0.25, -0.877, -1.5, -0.25, 0.25, EXACT],
                 ["a", "b", "Pick", 4, 0.5, 0.25, -0.5, 1.0, 1.0, EXACT]]}
    unscored = Summary(1, 1, ["clip"], [SettingStats("c", {}, 1, {}, {})],
                       [PairStats("c", "d", "clip", 0, None, None, None, None, "none: no pairs")], {})
    assert fmt.bench_leaderboard(unscored)["data"] == [[1, "c", "—", 1, None, None, None]]
    assert fmt.bench_pairwise(unscored)["data"] == [["c", "d", "CLIP", 0, None, None, None, None, None,
                                                     "none: no pairs"]]


def test_bench_summary_names_the_leader_and_each_tie():
    head = "2 prompts × 2 seeds × 2 settings; CIs: 95% bootstrap over prompts.\n\n"
    pick_tie = "- **a and b tie on Pick**: the 95% CI of their difference [-0.50, 1.00] contains 0."
    assert fmt.bench_summary(bench_summary([-1.5, -0.25])) == (
        head + "**b leads** on CLIP: mean 31.00 [30.50, 31.50].\n\n"
        "- **b** beats a on CLIP: mean a − b -0.88 [-1.50, -0.25], p = 0.2500 (exact sign-flip (2^2)).\n" + pick_tie)
    assert fmt.bench_summary(bench_summary([-1.5, 0.0])) == (
        head + "**b** has the highest CLIP (mean 31.00 [30.50, 31.50]), but ties with a within the 95% CI: "
        "no setting is shown to lead.\n\n"
        "- **a and b tie on CLIP**: the 95% CI of their difference [-1.50, 0.00] contains 0.\n" + pick_tie)
    no_pairs = bench_summary(None, pairs=0)
    no_pairs.pairwise = [PairStats("a", "b", "clip", 0, None, None, None, None, "none: no pairs")]
    assert fmt.bench_summary(no_pairs).endswith("[30.50, 31.50].\n\n- a and b share no scored image on CLIP: "
                                                "not compared.")
    assert fmt.bench_summary(Summary(1, 1, [], [SettingStats("a", {}, 1, {}, {})], [], {})) == (
        "1 prompts × 1 seeds × 1 settings; CIs: 95% bootstrap over prompts.\n\n"
        "**No image was scored, so there is no leaderboard.**")
