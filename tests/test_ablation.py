"""Label ablations (--drop, --merge, --sample, --ablate) and attribute probes (--probe) of `clipdemo eval`.

Every ablation is checked against a plain `eval` of the folder edited on disk the same way (a class
folder removed, A's images moved into B's folder, N images kept), and the probe tables against probe
top-1s recomputed here with transformers' CLIPModel (tests/clip_reference.py) and counted by hand.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clipdemo.evaluation import ablation_series, drop_logits, merge_logits
from clipdemo.cli import main
from clipdemo.config import DEMO_MODELS_DIR
from clipdemo.evaluation import ClassEdits, apply_edits, drop_class, load_image_set, merge_class, sample_class
from clipdemo.errors import InputError
from clipdemo.evaluation import EvalResult
from demo_world.world import render
from tests.clip_reference import reference_cosine, softmax_probs
from tests.tiny_models import save_tiny_clip

DEMO_CLIP = DEMO_MODELS_DIR / "demo-clip"
TEMPLATE = "a picture of a {}"  # given explicitly, so the reference below needs nothing from clipdemo.text


def shapes_folder(root: Path, classes: dict[str, int], seed: int = 0) -> Path:
    """One folder per 'colour_shape' class holding that many rendered shapes."""
    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        colour, shape = name.split("_")
        (root / name).mkdir(parents=True)
        for i in range(count):
            render(colour, shape, rng)[0].save(root / name / f"{i}.png")
    return root


FOUR = {"red_circle": 4, "blue_circle": 5, "red_square": 3, "green_triangle": 4}
# More than 5 classes, so top-5 is not trivially 1; the tiny random CLIP misses top-5 for some of them and
# the demo CLIP misses top-1 after some merges, so both figures move across the series.
SEVEN = {"red_circle": 3, "orange_circle": 4, "yellow_star": 2, "red_star": 3, "purple_cross": 3, "blue_cross": 4,
         "green_square": 2}


@pytest.fixture(scope="module")
def four(tmp_path_factory) -> Path:
    return shapes_folder(tmp_path_factory.mktemp("four") / "shapes", FOUR)


@pytest.fixture(scope="module")
def seven(tmp_path_factory) -> Path:
    return shapes_folder(tmp_path_factory.mktemp("seven") / "shapes", SEVEN)


def edited_copy(root: Path, dest: Path, drop=(), merge=(), keep=None) -> Path:
    """The folder edited by hand: drop removes a class folder, merge (A, B) moves A's files into B's folder,
    keep {class: [file names]} deletes that class's other files."""
    shutil.copytree(root, dest)
    for name in drop:
        shutil.rmtree(dest / name)
    for source, into in merge:
        for path in (dest / source).iterdir():
            path.rename(dest / into / f"{source}-{path.name}")  # renamed: both folders hold 0.png
        (dest / source).rmdir()
    for name, files in (keep or {}).items():
        for path in (dest / name).iterdir():
            if path.name not in files:
                path.unlink()
    return dest


def run_eval(capsys, path: Path, model: Path, *flags: str) -> dict:
    code = main(["eval", str(path), "--json", "--out", str(path.parent / f"{path.name}-report"), "--workers", "0",
                 "--templates", TEMPLATE, "--clip-model", str(model), "--dtype", "fp32", *flags])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def same_metrics(entry: dict, plain: dict) -> None:
    assert (entry["n_images"], entry["n_classes"]) == (plain["n_images"], plain["n_classes"])
    assert entry["top1"] == pytest.approx(plain["top1"], abs=1e-12)
    assert entry["top5"] == pytest.approx(plain["top5"], abs=1e-12)


# -- the logits slices, on a matrix small enough to write out -----------------------------------------------

def test_drop_and_merge_slices_of_a_written_out_matrix():
    logits = np.array([[9, 1, 2], [1, 9, 2], [1, 2, 9], [5, 1, 6]], dtype=float)
    targets = np.array([0, 1, 2, 0])
    dropped, dropped_targets = drop_logits(logits, targets, 1)  # no class 1: its column and row 1 go
    assert dropped.tolist() == [[9, 2], [1, 9], [5, 6]] and dropped_targets.tolist() == [0, 1, 0]
    merged, merged_targets = merge_logits(logits, targets, 0, 2)  # class 0's images count as class 2
    assert merged.tolist() == [[1, 2], [9, 2], [2, 9], [1, 6]] and merged_targets.tolist() == [1, 0, 1, 1]
    merged, merged_targets = merge_logits(logits, targets, 2, 0)
    assert merged.tolist() == [[9, 1], [1, 9], [1, 2], [5, 1]] and merged_targets.tolist() == [0, 1, 0, 0]


def test_series_names_order_and_figures_from_a_written_out_matrix():
    logits = np.array([[9, 1, 2], [1, 9, 2], [1, 2, 9], [5, 1, 6]], dtype=float)
    result = EvalResult("m", "single", 1, ["cat", "dog", "owl"], ["cat", "dog", "owl"], logits, np.array([0, 1, 2, 0]))
    series = ablation_series(result).as_json()
    assert [e["name"] for e in series] == ["full", "drop cat", "drop dog", "drop owl", "merge cat=dog",
                                          "merge cat=owl", "merge dog=cat", "merge dog=owl", "merge owl=cat",
                                          "merge owl=dog"]
    by_name = {e["name"]: e for e in series}
    assert by_name["full"] == {"name": "full", "n_images": 4, "n_classes": 3, "top1": 0.75, "top5": 1.0}
    assert by_name["drop cat"] == {"name": "drop cat", "n_images": 2, "n_classes": 2, "top1": 1.0, "top5": 1.0}
    # the cat scored owl is right once cat merges into owl; the owl, with its column gone, is scored dog
    assert (by_name["merge cat=owl"]["top1"], by_name["merge owl=cat"]["top1"]) == (1.0, 0.75)
    two = EvalResult("m", "single", 1, ["cat", "dog"], ["cat", "dog"], logits[:, :2], np.array([0, 1, 1, 0]))
    assert [e["name"] for e in ablation_series(two).as_json()] == ["full"]


# -- --ablate against plain evals of edited folders ---------------------------------------------------------

@pytest.mark.parametrize("model", ["tiny", "demo"])
def test_each_ablation_equals_a_plain_eval_of_the_edited_folder(seven, tiny_clip_dir, tmp_path, capsys, model):
    model_dir = tiny_clip_dir if model == "tiny" else DEMO_CLIP
    data = run_eval(capsys, seven, model_dir, "--ablate")
    series = {e["name"]: e for e in data["ablations"]}
    assert len(series) == 1 + 7 + 7 * 6 and list(series)[0] == "full"
    same_metrics(series["full"], data)
    with open(seven.parent / "shapes-report" / "eval.json", encoding="utf-8") as f:
        assert json.load(f)["ablations"] == data["ablations"]
    report = (seven.parent / "shapes-report" / "report.md").read_text(encoding="utf-8")
    assert "## Ablations" in report and "| merge red_circle=blue_cross | 21 | 6 |" in report
    assert len({(e["top1"], e["top5"]) for e in data["ablations"]}) > 3  # the figures do move
    # classes sorted: blue_cross first, yellow_star last; merges both ways, so a slip in the index shift shows
    cases = {"drop blue_cross": dict(drop=["blue_cross"]), "drop yellow_star": dict(drop=["yellow_star"]),
             "merge blue_cross=green_square": dict(merge=[("blue_cross", "green_square")]),
             "merge yellow_star=blue_cross": dict(merge=[("yellow_star", "blue_cross")]),
             "merge purple_cross=orange_circle": dict(merge=[("purple_cross", "orange_circle")]),
             "merge green_square=red_star": dict(merge=[("green_square", "red_star")])}
    for i, (name, edit) in enumerate(cases.items()):
        plain = run_eval(capsys, edited_copy(seven, tmp_path / f"edit{i}", **edit), model_dir)
        same_metrics(series[name], plain)


def test_ablate_runs_on_the_set_the_flags_left(four, tiny_clip_dir, tmp_path, capsys):
    data = run_eval(capsys, four, tiny_clip_dir, "--drop", "green triangle", "--merge", "red_square=red_circle",
                    "--ablate")
    assert [e["name"] for e in data["ablations"]] == ["full"]  # 2 classes left: nothing to drop or merge
    edited = edited_copy(four, tmp_path / "edited", drop=["green_triangle"], merge=[("red_square", "red_circle")])
    same_metrics(data["ablations"][0], run_eval(capsys, edited, tiny_clip_dir))


def test_readable_table_on_stdout(four, tiny_clip_dir, capsys):
    code = main(["eval", str(four), "--out", str(four.parent / "text-report"), "--workers", "0", "--ablate",
                 "--probe", "red, blue", "--clip-model", str(tiny_clip_dir), "--dtype", "fp32"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads((four.parent / "text-report" / "eval.json").read_text(encoding="utf-8"))
    lines = out.splitlines()
    assert lines[lines.index("ablations:") + 1].split() == ["ablation", "images", "classes", "top-1", "top-5"]
    full = data["ablations"][0]
    assert lines[lines.index("ablations:") + 2].split() == ["full", str(full["n_images"]), str(full["n_classes"]),
                                                            f"{full['top1']:.1%}", f"{full['top5']:.1%}"]
    row = next(line for line in lines if line.startswith("red square "))
    probe = next(c for c in data["probes"]["classes"] if c["class"] == "red_square")
    assert row.split()[2] == "3" and f"{probe['top_share']['red']:.0%} ({probe['mean_prob']['red']:.2f})" in row


# -- --drop / --merge / --sample against edited folders -----------------------------------------------------

@pytest.mark.parametrize("flags, edit", [
    (["--drop", "red_circle"], dict(drop=["red_circle"])),
    (["--drop", "red star"], dict(drop=["red_star"])),  # by label
    (["--merge", "blue_cross=orange_circle"], dict(merge=[("blue_cross", "orange_circle")])),
    (["--merge", "purple cross=yellow_star", "--drop", "blue_cross", "--merge", "red_star=green_square"],
     dict(drop=["blue_cross"], merge=[("purple_cross", "yellow_star"), ("red_star", "green_square")])),
])
def test_drop_and_merge_equal_the_edited_folder(seven, tmp_path, capsys, flags, edit):
    flagged = run_eval(capsys, seven, DEMO_CLIP, *flags)  # the demo CLIP: per-class figures that differ
    plain = run_eval(capsys, edited_copy(seven, tmp_path / "edited", **edit), DEMO_CLIP)
    same_metrics(flagged, plain)
    assert flagged["per_class"] == plain["per_class"] and flagged["most_confused"] == plain["most_confused"]


def test_sample_equals_the_edited_folder(four, tiny_clip_dir, tmp_path, capsys):
    chosen = sample_class(load_image_set(four), "blue_circle", 2).names
    kept = [n.split("/")[1] for n in chosen if n.startswith("blue_circle/")]
    assert len(kept) == 2 and len(chosen) == sum(FOUR.values()) - 3
    flagged = run_eval(capsys, four, tiny_clip_dir, "--sample", "blue circle=2", "--sample", "red_square=10")
    plain = run_eval(capsys, edited_copy(four, tmp_path / "edited", keep={"blue_circle": kept}), tiny_clip_dir)
    same_metrics(flagged, plain)
    assert flagged["per_class"] == plain["per_class"] and flagged["n_images"] == 13


def test_sampling_is_deterministic_and_touches_one_class(four):
    full = load_image_set(four)
    first = sample_class(full, "blue_circle", 3)
    assert first.names == sample_class(load_image_set(four), "blue_circle", 3).names  # same seed, same images
    assert [n for n in first.names if not n.startswith("blue_circle/")] == \
           [n for n in full.names if not n.startswith("blue_circle/")]
    picked = [n for n in first.names if n.startswith("blue_circle/")]
    assert len(picked) == 3 and set(picked) < {n for n in full.names if n.startswith("blue_circle/")}
    others = [sample_class(full, "blue_circle", 3, seed=s).names for s in range(1, 6)]
    assert any(names != first.names for names in others)  # the seed decides
    # the choice does not depend on the other edits
    after = apply_edits(full, ClassEdits(drop=("red_circle",), sample=(("blue_circle", 3),)))
    assert [n for n in after.names if n.startswith("blue_circle/")] == picked
    assert len(sample_class(full, "red_square", 99)) == len(full)  # at most N: a small class keeps every image


def test_merge_relabels_the_images_it_moves(four):
    full = load_image_set(four)  # classes sorted: blue_circle, green_triangle, red_circle, red_square
    merged = merge_class(full, "red_circle", "blue_circle")
    assert merged.class_names == ["blue_circle", "green_triangle", "red_square"] and len(merged) == len(full)
    assert [merged.class_names[t] for t, n in zip(merged.targets, merged.names) if n.startswith("red_circle/")] \
        == ["blue_circle"] * 4
    assert [merged.class_names[t] for t, n in zip(merged.targets, merged.names) if n.startswith("red_square/")] \
        == ["red_square"] * 3
    dropped = drop_class(full, "green triangle")
    assert dropped.labels == ["blue circle", "red circle", "red square"] and len(dropped) == len(full) - 4
    assert [dropped.class_names[t] for t in dropped.targets] == [n.split("/")[0] for n in dropped.names]


# -- bad input: one line, exit code 2 -----------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--drop", "zebra"], "--drop zebra: Unknown class 'zebra'. Known: blue_circle, green_triangle, red_circle, "
                          "red_square"),
    (["--merge", "red_circle=zebra"], "--merge red_circle=zebra: Unknown class 'zebra'. Known: blue_circle, "
                                      "green_triangle, red_circle, red_square"),
    (["--sample", "zebra=2"], "--sample zebra=2: Unknown class 'zebra'. Known: blue_circle, green_triangle, "
                              "red_circle, red_square"),
    (["--merge", "red_circle=red_circle"], "--merge red_circle=red_circle: both name the same class; merge a "
                                           "class into a different one."),
    (["--merge", "red circle=red_circle"], "--merge red circle=red_circle: both name the same class; merge a "
                                           "class into a different one."),
    (["--merge", "red_circle"], "--merge must read A=B (got 'red_circle')."),
    (["--merge", "=red_circle"], "--merge must read A=B (got '=red_circle')."),
    (["--merge", "a=b=c"], "--merge must read A=B (got 'a=b=c')."),
    (["--sample", "red_circle=0"], "--sample red_circle=0: N must be at least 1 (got 0)."),
    (["--sample", "red_circle=-3"], "--sample red_circle=-3: N must be at least 1 (got -3)."),
    (["--sample", "red_circle=two"], "--sample red_circle=two: N must be a whole number (got 'two')."),
    (["--sample", "red_circle"], "--sample must read CLASS=N (got 'red_circle')."),
    (["--drop", "red_circle", "--drop", "red_square", "--drop", "blue_circle"],
     "--drop blue_circle leaves 1 class; at least 2 are needed."),
    (["--drop", "red_circle", "--drop", "red_square", "--merge", "blue_circle=green_triangle"],
     "--merge blue_circle=green_triangle leaves 1 class; at least 2 are needed."),
    (["--drop", "red_circle", "--drop", "red circle"],
     "--drop red circle: class 'red circle' was already dropped or merged by an earlier flag."),
    (["--merge", "red_circle=red_square", "--sample", "red_circle=1"],
     "--sample red_circle=1: class 'red_circle' was already dropped or merged by an earlier flag."),
    (["--probe", "red"], "Give at least 2 labels separated by commas or new lines (got 1)."),
])
def test_bad_edits_are_one_line_errors(four, tiny_clip_dir, tmp_path, capsys, flags, message):
    code = main(["eval", str(four), "--out", str(tmp_path / "report"), "--workers", "0",
                 "--clip-model", str(tiny_clip_dir), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == f"clipdemo eval: error: {message}"
    assert "Traceback" not in err and not (tmp_path / "report").exists()


def test_bad_edits_raise_input_error_in_the_core(four):
    with pytest.raises(InputError, match="Unknown class 'zebra'"):
        drop_class(load_image_set(four), "zebra")
    with pytest.raises(InputError, match="N must be at least 1"):
        sample_class(load_image_set(four), "red_circle", 0)
    with pytest.raises(InputError, match="must read A=B"):
        ClassEdits.parse(merge=["red_circle-blue_circle"])


# -- probes ------------------------------------------------------------------------------------------------

def reference_probe_table(model_dir: Path, image_set, probes: list[str], template: str = TEMPLATE) -> dict:
    """{class name: (top share per probe, mean probability per probe)} from transformers' CLIPModel."""
    cosine, scale = reference_cosine(model_dir, image_set.sources, [template.format(p) for p in probes])
    probs, top = softmax_probs(cosine, scale), cosine.argmax(axis=1)
    table = {}
    for c, name in enumerate(image_set.class_names):
        rows = [i for i, t in enumerate(image_set.targets) if t == c]
        shares = [sum(top[i] == j for i in rows) / len(rows) for j in range(len(probes))]
        table[name] = (shares, [float(np.mean([probs[i, j] for i in rows])) for j in range(len(probes))])
    return table


def check_probes(probes: dict, expected: dict, labels: list[str]) -> None:
    assert probes["labels"] == labels
    assert [row["class"] for row in probes["classes"]] == list(expected)
    for row in probes["classes"]:
        shares, means = expected[row["class"]]
        assert [row["top_share"][label] for label in labels] == pytest.approx(shares, abs=1e-12)
        assert [row["mean_prob"][label] for label in labels] == pytest.approx(means, abs=1e-4)
        assert row["n_images"] == FOUR[row["class"]]


def test_probe_distribution_matches_a_reference_count(four, tiny_clip_dir, capsys):
    labels = ["red thing", "blue thing", "green thing"]
    data = run_eval(capsys, four, tiny_clip_dir, "--probe", "red thing, blue thing\ngreen thing")
    check_probes(data["probes"], reference_probe_table(tiny_clip_dir, load_image_set(four), labels), labels)
    assert data["probes"]["scorer"] == str(tiny_clip_dir)
    report = (four.parent / "shapes-report" / "report.md").read_text(encoding="utf-8")
    assert "## Probes" in report and "| class | images | red thing | blue thing | green thing |" in report
    plain = run_eval(capsys, four, tiny_clip_dir)
    assert {k: v for k, v in data.items() if k != "probes"} == plain  # probes leave the class results alone


def test_chinese_probes_take_the_chinese_scorer_in_their_own_pass(four, tiny_clip_dir, tmp_path, capsys):
    zh_model = save_tiny_clip(tmp_path / "zh-clip", seed=1)  # a second model stands in for Chinese-CLIP
    labels = ["红色", "蓝色"]
    data = run_eval(capsys, four, tiny_clip_dir, "--zh-clip-model", str(zh_model), "--probe", "红色，蓝色")
    assert data["clip_model"] == str(tiny_clip_dir) and data["probes"]["scorer"] == str(zh_model)
    check_probes(data["probes"], reference_probe_table(zh_model, load_image_set(four), labels), labels)
    plain = run_eval(capsys, four, tiny_clip_dir, "--zh-clip-model", str(zh_model))
    assert {k: v for k, v in data.items() if k != "probes"} == plain


def test_probes_reuse_the_class_pass_image_embeddings(studio, four):
    clip, _ = studio.scorer_for(["red circle"])
    calls = []
    original = clip.model.get_image_features

    def counted(*args, **kwargs):
        calls.append(len(kwargs["pixel_values"]))
        return original(*args, **kwargs)

    clip.model.get_image_features = counted
    try:
        result = studio.evaluate(load_image_set(four), TEMPLATE, batch_size=8, probe="red, blue")
    finally:
        del clip.model.get_image_features  # back to the class's method
    assert sum(calls) == sum(FOUR.values()) and result.probe_logits.shape == (16, 2)


def test_demo_model_probe_explains_a_shared_colour(tmp_path, capsys):
    """With the trained demo CLIP, classes that share a colour share their top colour probe."""
    classes = {"red_circle": 6, "red_square": 6, "blue_circle": 6, "blue_square": 6}
    root = shapes_folder(tmp_path / "colours", classes, seed=3)
    labels = ["red", "blue"]
    data = run_eval(capsys, root, DEMO_CLIP, "--probe", "red, blue", "--ablate")
    top = {row["class"]: row["top_label"] for row in data["probes"]["classes"]}
    assert top == {"blue_circle": "blue", "blue_square": "blue", "red_circle": "red", "red_square": "red"}
    expected = reference_probe_table(DEMO_CLIP, load_image_set(root), labels)
    for row in data["probes"]["classes"]:
        assert [row["top_share"][label] for label in labels] == pytest.approx(expected[row["class"]][0], abs=1e-12)
        assert [row["mean_prob"][label] for label in labels] == pytest.approx(expected[row["class"]][1], abs=1e-3)
    series = {e["name"]: e for e in data["ablations"]}
    edited = edited_copy(root, tmp_path / "merged", merge=[("red_square", "red_circle")])
    same_metrics(series["merge red_square=red_circle"], run_eval(capsys, edited, DEMO_CLIP))
