"""Faster fp32 convolutions on the CPU, for the UNet and the decoders.

PyTorch sends every fp32 CPU convolution to oneDNN's direct kernels. For the 3×3 convolutions of Stable
Diffusion two other algorithms are faster on the CPUs measured (benchmarks/README.md has the figures):

- Large feature maps (the UNet's 64×64 level, the decoders' upsampled maps): NNPACK's Winograd
  transform does fewer multiplications, 2-3× faster. It runs one image at a time, because NNPACK's
  batched mode is slower than oneDNN.
- Small maps with many channels (the UNet's 16×16 and 8×8 levels, 1280 channels, at batch 1): oneDNN
  is bound by re-reading the weights there; one matrix multiply over the unfolded patches (im2col) runs
  near the machine's matmul peak.

Everything else keeps PyTorch's own choice. The results equal F.conv2d up to fp32 rounding (about 1e-5
relative), so a seed still gives the same picture. Only fp32 on the CPU is routed: other dtypes and devices
never reach these paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Winograd pays when a map has at least this many pixels and enough channels to amortise its transforms,
# or when it is large whatever its channels (the decoders' last levels).
WINOGRAD_MIN_PIXELS = 64 * 64
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_ANY_CHANNELS_PIXELS = 256 * 256
# im2col pays while the whole batch has at most this many output pixels (beyond, oneDNN is as fast) and
# the weights are large; for small layers (the demo models') oneDNN's direct kernels stay faster.
IM2COL_MAX_PIXELS = 512
IM2COL_MIN_CHANNELS = 512


def nnpack_ready() -> bool:
    """True when NNPACK is built in and initialised (its first call fails unless this ran)."""
    return torch.backends.nnpack.is_available()


def conv_route(x: torch.Tensor, in_channels: int) -> str:
    """Which algorithm a 3×3 stride-1 convolution of `x` uses: "winograd", "im2col" or "default"."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4 or torch.is_grad_enabled():
        return "default"
    pixels = x.shape[-2] * x.shape[-1]
    if pixels >= WINOGRAD_ANY_CHANNELS_PIXELS or (pixels >= WINOGRAD_MIN_PIXELS and in_channels >= WINOGRAD_MIN_CHANNELS):
        return "winograd"
    if pixels * x.shape[0] <= IM2COL_MAX_PIXELS and in_channels >= IM2COL_MIN_CHANNELS:
        return "im2col"
    return "default"


class FastCPUConv2d(nn.Conv2d):
    """An nn.Conv2d (3×3, stride 1, zero padding) that picks the fastest fp32 CPU algorithm per call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = conv_route(x, self.in_channels)
        if route == "winograd":
            weight, padding = self.weight.contiguous(), list(self.padding)
            images = [torch._nnpack_spatial_convolution(one, weight, self.bias, padding, [1, 1])
                      for one in x.contiguous().split(1)]
            return images[0] if len(images) == 1 else torch.cat(images)
        if route == "im2col":
            batch, _, height, width = x.shape
            patches = F.unfold(x, kernel_size=3, padding=self.padding)  # (batch, in_channels * 9, pixels)
            out = torch.matmul(self.weight.reshape(self.out_channels, -1), patches)
            if self.bias is not None:
                out = out + self.bias[:, None]
            return out.reshape(batch, self.out_channels, height, width)
        return super().forward(x)


def can_route(conv: nn.Module) -> bool:
    """Plain 3×3 stride-1 convolutions with one pixel of zero padding (same size out): what both fast paths handle."""
    return (
        type(conv) in (nn.Conv2d, FastCPUConv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and conv.padding == (1, 1)  # also rules out padding="same"/"valid" strings
    )


def use_fast_cpu_convolutions(model: nn.Module, enabled: bool = True) -> int:
    """Switch the model's eligible convolutions to FastCPUConv2d (or back); returns how many.

    The weights stay where they are: only the class of each module changes, so the state dict, the
    device and the dtype are untouched. Without NNPACK nothing is switched.
    """
    if enabled and not nnpack_ready():
        return 0
    switched = 0
    for module in model.modules():
        if can_route(module):
            module.__class__ = FastCPUConv2d if enabled else nn.Conv2d
            switched += 1
    return switched
