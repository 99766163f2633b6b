import numpy as np
import pytest

from clipdemo import GenerationRequest, ModelLoadError, Studio, resolve_settings
from tests.tiny_models import save_tiny_taesd

REQUEST = GenerationRequest("a dog wearing glasses", n=2, steps=1, width=64, height=64, seed=8)


def make(tiny_sd_dir, tiny_clip_dir, **kwargs):
    return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                   pick_model="none", moderation="off", **kwargs))


@pytest.fixture(scope="module")
def taesd_dir(tmp_path_factory):
    return save_tiny_taesd(tmp_path_factory.mktemp("taesd"))


def test_named_tiny_decoder_is_used(tiny_sd_dir, tiny_clip_dir, taesd_dir):
    full = make(tiny_sd_dir, tiny_clip_dir, decoder="full")
    tiny = make(tiny_sd_dir, tiny_clip_dir, decoder=str(taesd_dir))
    a, b = full.generate(REQUEST), tiny.generate(REQUEST)
    assert type(tiny.pipeline().vae).__name__ == "AutoencoderTiny"
    assert type(full.pipeline().vae).__name__ == "AutoencoderKL"
    assert tiny.decoder_name == "TAESD" and not b.notices
    assert a.images[0].image.tobytes() != b.images[0].image.tobytes()
    # The base pipeline is shared, not modified: the full-VAE studio still decodes with its VAE.
    assert full.pipeline().unet is tiny.pipeline().unet


def test_taesd_unavailable_offline_falls_back_with_notice(tiny_sd_dir, tiny_clip_dir):
    studio = make(tiny_sd_dir, tiny_clip_dir, decoder="taesd")
    result = studio.generate(REQUEST)
    assert type(studio.pipeline().vae).__name__ == "AutoencoderKL"
    assert any("TAESD" in n and "full VAE" in n for n in result.notices)
    assert len(result.images) == 2


def test_named_decoder_that_cannot_load_is_an_error(tiny_sd_dir, tiny_clip_dir, tmp_path):
    studio = make(tiny_sd_dir, tiny_clip_dir, decoder=str(tmp_path / "missing-taesd"))
    with pytest.raises(ModelLoadError, match="--decoder"):
        studio.generate(REQUEST)


def test_prompt_embeddings_are_cached_and_change_nothing(tiny_sd_dir, tiny_clip_dir):
    studio = make(tiny_sd_dir, tiny_clip_dir, decoder="full")
    first = studio.generate(REQUEST)
    pipe = studio.pipeline()
    calls = []
    hook = pipe.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        second = studio.generate(REQUEST)
        assert calls == []  # the text encoder did not run again
        studio.generate(GenerationRequest("another prompt", n=1, steps=1, width=64, height=64, seed=1))
        assert len(calls) == 1
    finally:
        hook.remove()
    assert [i.image.tobytes() for i in first.images] == [i.image.tobytes() for i in second.images]
    from clipdemo.generation import generate_candidates

    uncached = generate_candidates(pipe, REQUEST.validated())
    by_seed = {i.seed: np.asarray(i.image) for i in first.images}
    for c in uncached:
        assert (np.asarray(c.image) == by_seed[c.seed]).all()


def test_fast_cpu_convolutions_give_the_same_images(tiny_sd_dir, tiny_clip_dir, monkeypatch):
    from clipdemo.speedups import fastconv
    from clipdemo.speedups.fastconv import FastCPUConv2d, nnpack_ready

    if not nnpack_ready():
        assert not [m for m in make(tiny_sd_dir, tiny_clip_dir, decoder="full").pipeline().unet.modules()
                    if type(m) is FastCPUConv2d]
        pytest.skip("without NNPACK no layer is switched")
    # The tiny models' layers are below every route's size, so lower the sizes: each route then runs in a real
    # generation (tests/test_fastconv.py checks each route's numbers on SD's own sizes).
    for name, value in {"NNPACK_MIN_PIXELS": 64 * 64, "NNPACK_MIN_CHANNELS": 32, "WINOGRAD_MIN_CHANNELS": 32,
                        "IM2COL_MIN_CHANNELS": 4, "IM2COL_MAX_PIXELS": 32 * 32 * 4}.items():
        monkeypatch.setattr(fastconv, name, value)
    routes = []
    real_route = fastconv.conv_route
    monkeypatch.setattr(fastconv, "conv_route", lambda *args, **kw: routes.append(real_route(*args, **kw)) or routes[-1])

    fast = make(tiny_sd_dir, tiny_clip_dir, decoder="full")
    fast_images = fast.generate(REQUEST).images
    assert [m for m in fast.pipeline().unet.modules() if type(m) is FastCPUConv2d]
    assert {"nnpack", "winograd4", "winograd2", "im2col"} <= set(routes), set(routes)
    # The loaded UNet is shared through the model cache: the second studio switches it back to oneDNN.
    plain = make(tiny_sd_dir, tiny_clip_dir, decoder="full", fast_conv=False)
    routes.clear()
    plain_images = plain.generate(REQUEST).images
    assert not any(type(m) is FastCPUConv2d for m in plain.pipeline().unet.modules()) and routes == []
    for a, b in zip(fast_images, plain_images, strict=True):
        assert a.seed == b.seed
        difference = np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int))
        assert difference.max() <= 1  # fp32 rounding may move a pixel by one level, no more


def test_a_tiny_decoder_keeps_the_pipelines_dtype(tiny_sd_dir, tiny_clip_dir, taesd_dir):
    import torch

    # diffusers' from_pipe casts every component to fp32 unless told otherwise, in place, so the shared
    # UNet of a bf16 studio used to run in fp32 as soon as TAESD decoded.
    studio = Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="bf16",
                                     decoder=str(taesd_dir), pick_model="none", moderation="off"))
    result = studio.generate(REQUEST)
    pipe = studio.pipeline()
    assert type(pipe.vae).__name__ == "AutoencoderTiny"
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.bfloat16}
    assert len(result.images) == 2 and all(c.problem is None for c in result.images)
    # Another sampler (the Compare tab) shares the components, TAESD included, and leaves them in bf16 too.
    other = studio.with_scheduler(pipe, "ddim")
    assert type(other.scheduler).__name__ != type(pipe.scheduler).__name__
    assert other.vae is pipe.vae and other.unet is pipe.unet
    assert {other.unet.dtype, pipe.unet.dtype, pipe.vae.dtype} == {torch.bfloat16}


def test_the_registry_hands_out_each_model_once(tiny_sd_dir, tiny_clip_dir, taesd_dir):
    # With a tiny decoder the assembled pipeline is a new object, so a second assembly would show.
    studio = make(tiny_sd_dir, tiny_clip_dir, decoder=str(taesd_dir))
    assert studio.models.loaded_scorer(str(tiny_clip_dir)) is None  # looking never loads
    assert studio.scorer() is studio.models.scorer() is studio.models.loaded_scorer(str(tiny_clip_dir))
    pipe = studio.pipeline()
    assert studio.pipeline() is pipe
    # Another sampler is a view of the same UNet: it waits on the same lock.
    assert studio.models.pipe_lock(studio.with_scheduler(pipe, "ddim")) is studio.models.pipe_lock(pipe)


def test_the_prompt_cache_keeps_the_most_recent_prompts(tiny_sd_dir, tiny_clip_dir):
    from clipdemo.models.prompts import PromptCache

    studio = make(tiny_sd_dir, tiny_clip_dir, decoder="full")
    pipe, cache = studio.pipeline(), PromptCache(size=2)
    first = cache.embeddings(pipe, REQUEST.validated())
    assert cache.embeddings(pipe, REQUEST.validated()) is first
    for prompt in ("a red circle", "a blue square"):
        cache.embeddings(pipe, GenerationRequest(prompt, n=1, steps=1, width=64, height=64, seed=1).validated())
    assert cache.embeddings(pipe, REQUEST.validated()) is not first  # the oldest went out
