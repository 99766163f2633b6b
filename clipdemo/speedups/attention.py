"""Faster bf16 attention on the CPU, for the UNet's self-attention.

PyTorch's CPU flash-attention kernel computes in fp32 whatever the input dtype, so in bf16 it runs no
faster than in fp32 (about 170 GFLOP/s on the 2-core Zen 5 measured, against a bf16 matmul peak of
750-930). Attention was 40% of an SD 2.1 UNet step there. Done as plain matrix multiplies over blocks of
query rows (scores, softmax, scores × values), the bf16 GEMMs run near their peak and each block's scores
(4 MB) stay in cache: 2.5x faster at the 64×64 level, the whole step 0.74x (benchmarks/README.md). diffusers'
classic processor does the same multiplies but holds every head's scores at once (168 MB a layer at
batch 1), which is only as fast where the allocator reuses such blocks.

The price is the same as diffusers' classic attention in half precision: the scores are rounded to bf16
before the softmax (about 1% relative error in the attention output against fp32, 0.2% for the fused
kernel), small beside the bf16 rounding of every other layer. Only bf16 on the CPU without gradients is
routed; everything else (other dtypes and devices, masks, training) keeps diffusers' own processor.
"""

from __future__ import annotations

import torch
from torch import nn

# Score elements per block: 512 query rows × 4096 keys is 4 MB in bf16, which stays in this CPU's cache.
BLOCK_SCORES = 512 * 4096


def attention_route(query: torch.Tensor, attention_mask: torch.Tensor | None) -> str:
    """"blocked" for the case this module speeds up, "default" for diffusers' own processor."""
    if (query.device.type != "cpu" or query.dtype != torch.bfloat16 or attention_mask is not None
            or torch.is_grad_enabled()):
        return "default"
    return "blocked"


def blocked_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(query · keyᵀ · scale) · value for (batch, heads, tokens, head_dim) tensors, in blocks.

    Heads are taken several at a time while their scores fit in BLOCK_SCORES, otherwise one at a time
    in blocks of query rows, so the scores never grow past one block.
    """
    batch, heads, tokens, head_dim = query.shape
    keys = key.shape[2]
    q = (query * scale).reshape(batch * heads, tokens, head_dim)
    k_t = key.reshape(batch * heads, keys, head_dim).transpose(1, 2)
    v = value.reshape(batch * heads, keys, value.shape[-1])
    out = torch.empty(batch * heads, tokens, v.shape[-1], dtype=query.dtype)
    heads_per_block = max(1, BLOCK_SCORES // (tokens * keys))
    rows = tokens if heads_per_block > 1 else max(1, min(tokens, BLOCK_SCORES // keys))
    for h in range(0, batch * heads, heads_per_block):
        group = slice(h, h + heads_per_block)
        for r in range(0, tokens, rows):
            scores = torch.bmm(q[group, r:r + rows], k_t[group])
            torch.bmm(torch.softmax(scores, dim=-1), v[group], out=out[group, r:r + rows])
    return out.view(batch, heads, tokens, -1)


class CPUBlockedAttnProcessor:
    """A diffusers attention processor: blocked bf16 attention on the CPU, diffusers' own otherwise.

    It wraps only diffusers' plain processors (see use_fast_cpu_attention) and handles the plain layout
    of the SD UNets' attention (token sequences in, no spatial or group norm); any other call goes to the
    processor it replaced.
    """

    def __init__(self, fallback):
        self.fallback = fallback

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs):
        plain = (hidden_states.ndim == 3 and attn.spatial_norm is None and attn.group_norm is None
                 and attn.norm_q is None and attn.norm_k is None and not args and not kwargs)
        if not plain or attention_route(hidden_states, attention_mask) != "blocked":
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        batch = hidden_states.shape[0]

        def split_heads(x: torch.Tensor) -> torch.Tensor:  # (batch, tokens, heads·dim) -> (batch, heads, tokens, dim)
            return x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        query, key, value = (split_heads(x) for x in (attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)))
        # The scale diffusers' SDPA processor uses (it ignores attn.scale), so a seed gives the same picture.
        out = blocked_attention(query, key, value, query.shape[-1] ** -0.5)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[3])
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def use_fast_cpu_attention(model: nn.Module, enabled: bool = True) -> int:
    """Wrap (or unwrap) the processor of every attention layer of a diffusers model; returns how many.

    Only diffusers' plain processors are wrapped: others (IP-Adapter, added key/value projections, LoRA
    variants) compute something else and keep running as they are.
    """
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    switched = 0
    for module in model.modules():
        processor = getattr(module, "processor", None)
        if processor is None or not hasattr(module, "set_processor"):
            continue
        if enabled and type(processor) in (AttnProcessor, AttnProcessor2_0):
            module.set_processor(CPUBlockedAttnProcessor(processor))
            switched += 1
        elif not enabled and isinstance(processor, CPUBlockedAttnProcessor):
            module.set_processor(processor.fallback)
            switched += 1
    return switched
