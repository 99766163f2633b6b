import numpy as np
import pytest
from PIL import Image

from clipdemo.errors import InputError
from clipdemo.zeroshot import classify, label_embeddings


def sample_images():
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)) for _ in range(3)]


def test_probabilities_sum_to_one_and_match_transformers_pipeline(studio, tiny_clip_dir):
    from transformers import pipeline

    labels = ["cat", "dog", "a red circle", "一只狗"]
    template = "a photo of a {}."
    images = sample_images()
    ours = classify(studio.scorer(), images, labels, template)
    reference = pipeline("zero-shot-image-classification", model=str(tiny_clip_dir), device="cpu")
    for result, image in zip(ours, images):
        assert sum(p.prob for p in result.predictions) == pytest.approx(1.0, abs=1e-5)
        probs = [p.prob for p in result.predictions]
        assert probs == sorted(probs, reverse=True)
        expected = {r["label"]: r["score"] for r in reference(image, candidate_labels=labels, hypothesis_template=template)}
        for p in result.predictions:
            assert p.prob == pytest.approx(expected[p.label], abs=1e-4)


def test_top_k_keeps_the_k_most_probable_labels_in_order(studio, tiny_clip_dir):
    """The labels transformers' own CLIPModel ranks first, with their full-softmax probabilities."""
    from tests.clip_reference import reference_cosine, softmax_probs

    labels = ["cat", "dog", "bird", "a red circle", "fish"]
    images = sample_images()
    results = classify(studio.scorer(), images, labels, "a photo of a {}.", top_k=2)
    cosine, scale = reference_cosine(tiny_clip_dir, images, [f"a photo of a {x}." for x in labels])
    for result, row in zip(results, softmax_probs(cosine, scale)):
        best = np.argsort(-row)[:2]
        assert [p.label for p in result.predictions] == [labels[i] for i in best]
        assert [p.prob for p in result.predictions] == pytest.approx(row[best].tolist(), abs=1e-4)


def test_text_embeddings_are_cached(studio):
    scorer = studio.scorer()
    first = label_embeddings(scorer, ["cat", "dog"], ["a photo of a {}."])
    calls = []
    original = scorer._encode_texts
    scorer._encode_texts = lambda texts: calls.append(texts) or original(texts)
    try:
        second = label_embeddings(scorer, ["cat", "dog"], ["a photo of a {}."])
    finally:
        del scorer._encode_texts
    assert calls == [] and (first == second).all()


def test_template_ensemble_is_renormalised_mean(studio):
    scorer = studio.scorer()
    templates = ["a photo of a {}.", "a drawing of a {}."]
    combined = label_embeddings(scorer, ["cat"], templates)[0]
    each = scorer.embed_texts([t.format("cat") for t in templates])
    mean = each.mean(0)
    assert np.allclose(combined.numpy(), (mean / mean.norm()).numpy(), atol=1e-6)
    assert abs(float(combined.norm()) - 1) < 1e-5


@pytest.mark.parametrize(
    "labels, template, message",
    [
        ("cat", "a photo of a {}.", "at least 2"),
        ("", "a photo of a {}.", "at least 2"),
        ("cat, dog, Cat", "a photo of a {}.", "more than once"),
        ("cat, !!!", "a photo of a {}.", "no letters"),
        (",".join(f"l{i}" for i in range(1001)), "a photo of a {}.", "Too many"),
        ("cat, dog", "a photo", "exactly once"),
    ],
)
def test_bad_labels_and_templates(studio, labels, template, message):
    with pytest.raises(InputError, match=message):
        classify(studio.scorer(), sample_images()[:1], labels, template)
