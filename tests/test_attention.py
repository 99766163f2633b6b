import numpy as np
import pytest
import torch
import torch.nn.functional as F

import clipdemo.speedups.attention as attention
from clipdemo import GenerationRequest, Studio, resolve_settings
from clipdemo.speedups.attention import CPUBlockedAttnProcessor, attention_route, blocked_attention, use_fast_cpu_attention


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.mark.parametrize("batch, heads, tokens, keys, block", [
    (1, 2, 64, 64, 64 * 64),   # one block holds one head's scores
    (2, 3, 64, 64, 16 * 64),   # blocks of 16 query rows
    (1, 2, 50, 64, 7 * 64),    # the last block of rows is short
    (2, 4, 40, 7, 1 << 20),    # cross-attention: few keys, several heads per block
])
def test_blocked_attention_equals_scaled_dot_product_attention(monkeypatch, batch, heads, tokens, keys, block):
    monkeypatch.setattr(attention, "BLOCK_SCORES", block)
    torch.manual_seed(0)
    q = torch.randn(batch, heads, tokens, 16) * 2  # peaky scores, as in a trained model
    k, v = torch.randn(batch, heads, keys, 16), torch.randn(batch, heads, keys, 16)
    expected = F.scaled_dot_product_attention(q, k, v)
    got = blocked_attention(q, k, v, scale=16 ** -0.5)
    assert got.shape == expected.shape
    assert relative_error(got, expected) < 1e-5


def test_blocked_bf16_attention_stays_close_to_fp32():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 256, 64) * s for s in (3, 1, 1))
    expected = F.scaled_dot_product_attention(q, k, v)
    got = blocked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), scale=64 ** -0.5)
    assert got.dtype == torch.bfloat16
    assert relative_error(got, expected) < 0.03  # bf16 scores; the fused kernel's own bf16 error is ~0.002


def test_only_bf16_cpu_inference_without_a_mask_is_routed():
    x = torch.randn(1, 4, 8, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert attention_route(x, None) == "blocked"
        assert attention_route(x, torch.zeros(1, 4, 4)) == "default"
        assert attention_route(x.float(), None) == "default"
        assert attention_route(x.half(), None) == "default"
    assert attention_route(x.requires_grad_(), None) == "default"  # training keeps diffusers' path


def tiny_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, cross_attention_dim=32, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    ).eval()


def test_the_unets_attention_is_wrapped_and_gives_the_same_output(monkeypatch):
    unet = tiny_unet()
    x, t, states = torch.randn(2, 4, 16, 16), torch.tensor([500]), torch.randn(2, 7, 32)
    calls = []
    monkeypatch.setattr(attention, "blocked_attention", lambda *a, **k: calls.append(1) or blocked_attention(*a, **k))
    with torch.inference_mode():
        reference = unet(x, t, encoder_hidden_states=states).sample
        layers = len(unet.attn_processors)
        assert use_fast_cpu_attention(unet) == layers
        assert all(isinstance(p, CPUBlockedAttnProcessor) for p in unet.attn_processors.values())
        assert use_fast_cpu_attention(unet) == 0  # wrapping twice does nothing
        # fp32 is not routed: the wrapped model calls diffusers' own processor, bit for bit.
        assert torch.equal(unet(x, t, encoder_hidden_states=states).sample, reference) and calls == []
        unet.to(torch.bfloat16)
        routed = unet(x.bfloat16(), t, encoder_hidden_states=states.bfloat16()).sample
        assert len(calls) == layers  # every attention layer took the blocked path
        assert use_fast_cpu_attention(unet, enabled=False) == layers
        fused = unet(x.bfloat16(), t, encoder_hidden_states=states.bfloat16()).sample
    assert len(calls) == layers
    assert not any(isinstance(p, CPUBlockedAttnProcessor) for p in unet.attn_processors.values())
    assert relative_error(fused, reference) < 0.05
    assert relative_error(routed, reference) < 0.05


def test_only_diffusers_plain_processors_are_wrapped():
    from diffusers.models.attention_processor import AttnAddedKVProcessor, AttnProcessor

    unet = tiny_unet()
    names = list(unet.attn_processors)
    processors = {name: AttnAddedKVProcessor() if i == 0 else AttnProcessor() for i, name in enumerate(names)}
    unet.set_attn_processor(processors)
    assert use_fast_cpu_attention(unet) == len(names) - 1
    assert isinstance(unet.attn_processors[names[0]], AttnAddedKVProcessor)


def test_fast_attention_is_on_by_default_and_can_be_turned_off():
    from clipdemo.cli.main import build_parser, settings_from

    assert resolve_settings(env={}).fast_attention is True
    assert resolve_settings(env={"CLIPDEMO_FAST_ATTENTION": "0"}).fast_attention is False
    assert resolve_settings(fast_attention=True, env={"CLIPDEMO_FAST_ATTENTION": "off"}).fast_attention is True
    assert settings_from(build_parser().parse_args(["generate", "a cat"])).fast_attention is True
    assert settings_from(build_parser().parse_args(["generate", "a cat", "--no-fast-attention"])).fast_attention is False


def test_studio_routes_bf16_attention_and_its_images_match(tiny_sd_dir, tiny_clip_dir):
    def studio(**kwargs):
        return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="bf16",
                                       pick_model="none", moderation="off", decoder="full", **kwargs))

    request = GenerationRequest("a red circle", n=2, steps=2, width=64, height=64, seed=3)
    fast = studio()
    fast_images = fast.generate(request).images
    assert any(isinstance(p, CPUBlockedAttnProcessor) for p in fast.pipeline().unet.attn_processors.values())
    # The loaded UNet is shared through the model cache: the second studio switches it back.
    plain = studio(fast_attention=False)
    plain_images = plain.generate(request).images
    assert not any(isinstance(p, CPUBlockedAttnProcessor) for p in plain.pipeline().unet.attn_processors.values())
    for a, b in zip(fast_images, plain_images):
        assert a.seed == b.seed
        difference = np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int))
        assert difference.mean() < 2  # bf16 rounding moves a few levels, not the picture
