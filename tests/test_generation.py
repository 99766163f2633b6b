import numpy as np
import pytest

from clipdemo.errors import InputError
from clipdemo.generation import GenerationRequest, check_output, generate_candidates

SMALL = dict(steps=2, width=64, height=64)


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_n_candidates_with_consecutive_seeds_and_same_seed_same_pixels(studio):
    pipe = studio.pipeline()
    request = GenerationRequest("a dog wearing glasses", n=3, seed=41, **SMALL).validated()
    first = generate_candidates(pipe, request)
    again = generate_candidates(pipe, request)
    assert [c.seed for c in first] == [41, 42, 43]
    assert len({c.image.tobytes() for c in first}) == 3  # different seeds, different images
    for a, b in zip(first, again):
        assert a.image.tobytes() == b.image.tobytes()


def test_the_8bit_pixels_are_diffusers_own_rounding_and_the_scored_tensor_holds_them(studio):
    """The candidate's PNG pixels are what diffusers' numpy output rounds to (its numpy_to_pil rule), and
    the tensor scored on the device holds exactly those pixels."""
    import torch

    pipe = studio.pipeline()
    request = GenerationRequest("a red circle", n=2, seed=8, **SMALL).validated()
    ours = generate_candidates(pipe, request)
    plain = pipe("a red circle", num_images_per_prompt=2, num_inference_steps=2, guidance_scale=request.guidance,
                 width=64, height=64, output_type="np",
                 generator=[torch.Generator().manual_seed(s) for s in (8, 9)]).images
    for candidate, image in zip(ours, plain):
        assert np.array_equal(np.asarray(candidate.image), (image * 255).round().astype(np.uint8))
        assert np.array_equal(candidate.pixels.permute(1, 2, 0).numpy(), np.asarray(candidate.image))


def test_one_candidate_can_be_regenerated_alone(studio):
    pipe = studio.pipeline()
    batch = generate_candidates(pipe, GenerationRequest("a cat", n=3, seed=100, **SMALL).validated())
    alone = generate_candidates(pipe, GenerationRequest("a cat", n=1, seed=102, **SMALL).validated())
    # Batched and single UNet calls may differ in float rounding only.
    assert np.abs(pixels(batch[2].image) - pixels(alone[0].image)).max() <= 2


def test_progress_reports_every_step(studio):
    seen = []
    generate_candidates(studio.pipeline(), GenerationRequest("x", n=1, seed=1, **SMALL).validated(),
                        progress=lambda step, total: seen.append((step, total)))
    assert seen == [(1, 2), (2, 2)]


def test_blank_seed_is_random_and_shown():
    a = GenerationRequest("x").validated()
    b = GenerationRequest("x").validated()
    assert a.seed is not None and b.seed is not None and a.seed != b.seed


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(prompt="   "), "prompt is empty"),
        (dict(n=0), "between 1 and 8"),
        (dict(n=9), "between 1 and 8"),
        (dict(steps=0), "Steps"),
        (dict(guidance=-1), "Guidance"),
        (dict(width=100), "multiple of 8"),
        (dict(height=32), "between 64"),
        (dict(seed=-5), "Seed"),
        (dict(n=2.5), "whole number"),
    ],
)
def test_bad_requests_get_specific_messages(change, message):
    fields = dict(prompt="a cat", n=2, steps=1, width=64, height=64, seed=1) | change
    with pytest.raises(InputError, match=message):
        GenerationRequest(**fields).validated()


def test_nan_and_black_outputs_are_named():
    assert "NaN" in check_output(np.full((8, 8, 3), np.nan))
    assert "black" in check_output(np.zeros((8, 8, 3)))
    assert check_output(np.random.default_rng(0).random((8, 8, 3))) is None


def test_compile_is_on_by_default_on_a_gpu_only_and_the_warm_up_runs_once_at_the_defaults(monkeypatch):
    import torch

    from clipdemo import Studio, resolve_settings
    from clipdemo.models.pipeline import assemble
    from clipdemo.models.pipeline import compile_enabled
    from clipdemo.generation.warmup import WarmUp, warm_up

    auto = resolve_settings(preset="demo")
    assert auto.compile == "auto"
    assert compile_enabled(auto, torch.device("cuda")) and not compile_enabled(auto, torch.device("cpu"))
    assert compile_enabled(resolve_settings(preset="demo", compile="on"), torch.device("cpu"))
    assert not compile_enabled(resolve_settings(preset="demo", compile="off"), torch.device("cuda"))

    studio = Studio(resolve_settings(preset="demo", moderation="off", channels_last=True), allow_fallback=False)
    assert studio.start_warm_up() is None and studio.warm_up.state == "idle"  # CPU, auto: nothing to compile
    pipe = studio.pipeline()
    assert pipe.unet.conv_in.weight.is_contiguous()  # channels-last is for CUDA; the CPU path is unchanged
    compiled = assemble(pipe, None, resolve_settings(preset="demo", compile="on", compile_mode="max-autotune"),
                        torch.device("cpu"), torch.float32)
    assert isinstance(compiled.unet, torch._dynamo.eval_frame.OptimizedModule)  # lazy: compiles on first call

    asked = []  # the warm-up is one ordinary generate at the page's defaults
    real = studio.models.pipeline
    monkeypatch.setattr(studio.models, "pipeline", lambda model_id: asked.append(model_id) or real(model_id))
    status = WarmUp()
    warm_up(studio.models, status)
    assert status.state == "done" and "Warmed up" in status.line and len(asked) == 1
