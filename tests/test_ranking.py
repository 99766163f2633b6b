import json

import numpy as np
import torch
from PIL import Image

from clipdemo.generation import Candidate, GenerationRequest
from clipdemo.generation.ranking import RankResult, rank_candidates


def independent_clip_scores(model_dir, images, text):
    """CLIPScore straight from transformers' CLIPModel forward pass, not through clipdemo."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        out = model(**processor(text=[text], images=images, return_tensors="pt", padding=True))
    cosine = (out.image_embeds @ out.text_embeds.T)[:, 0]
    return (100 * cosine.clamp(min=0)).tolist()


def test_ranking_is_sorted_and_scores_match_independent_computation(studio, tiny_clip_dir):
    result = studio.generate(GenerationRequest("a dog wearing glasses", n=4, seed=3, steps=1, width=64, height=64))
    scores = [item.clip_score for item in result.images]
    assert scores == sorted(scores, reverse=True)
    assert [item.rank for item in result.images] == [1, 2, 3, 4]
    assert sorted(item.seed for item in result.images) == [3, 4, 5, 6]
    expected = independent_clip_scores(tiny_clip_dir, [item.image for item in result.images], "a dog wearing glasses")
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_candidates_that_all_score_zero_are_still_ordered_by_cosine(studio):
    """CLIPScore clamps negative cosines to 0; the order must still follow the raw cosine."""
    scorer = studio.scorer()
    rng = np.random.default_rng(5)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(8)]
    for prompt in ["a cat", "a red circle", "a dog wearing glasses", "night", "a blue star", "一只猫", "tree"]:
        cosine = scorer.cosine(images, [prompt])[:, 0]
        negative = [i for i in range(len(images)) if cosine[i] < 0]
        # the input order must disagree with the cosine order among the negatives, or the test proves nothing
        if len(negative) >= 2 and sorted(negative, key=lambda i: -cosine[i]) != negative:
            break
    else:
        raise AssertionError("no prompt gave two out-of-order negative cosines with the tiny CLIP")
    ranked = rank_candidates([Candidate(i, images[i]) for i in negative], prompt, [("clip", scorer)])
    assert [r.scores["clip"] for r in ranked] == [0.0] * len(negative)
    assert [r.seed for r in ranked] == sorted(negative, key=lambda i: -float(cosine[i]))


def test_broken_images_go_last_without_a_score(studio):
    rng = np.random.default_rng(0)
    good = [Candidate(i, Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))) for i in range(2)]
    bad = Candidate(9, Image.new("RGB", (64, 64)), problem="the model produced an all-black image")
    ranked = rank_candidates([bad, *good], "a cat", [("clip", studio.scorer())])
    assert [r.seed for r in ranked][-1] == 9 and ranked[-1].scores == {} and "not ranked" in ranked[-1].caption()


def test_written_scores_reproduce_from_the_saved_files(studio, tmp_path):
    result = studio.generate(GenerationRequest("a red circle", n=2, seed=11, steps=1, width=64, height=64),
                             out_dir=tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    for entry in data["images"]:
        saved = Image.open(tmp_path / entry["file"]).convert("RGB")
        # Scored one at a time here, in a batch there: equal up to float rounding.
        assert abs(studio.scorer().clip_scores([saved], "a red circle")[0] - entry["clip_score"]) < 1e-4
    assert not list(tmp_path.glob(".*partial"))
    assert isinstance(result, RankResult)
