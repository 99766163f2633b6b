"""Faster fp32 and bf16 convolutions on the CPU, for the UNet and the decoders.

PyTorch sends every fp32 CPU convolution to oneDNN's direct kernels. For the 3×3 convolutions of Stable
Diffusion other algorithms are faster on the CPUs measured (benchmarks/README.md has the figures):

- Large maps (the UNet's 64×64 level, the decoders' upsampled maps): NNPACK's Winograd transform does
  fewer multiplications, 2-3× faster. It runs one image at a time: NNPACK's batched mode is slower.
- Middle maps with many channels (the UNet's 32×32 and 16×16 levels): our own Winograd transform,
  F(4×4, 3×3) on 32×32 maps and F(2×2, 3×3) on 16×16 ones, 2-2.5× faster than oneDNN. Unlike NNPACK it
  keeps each layer's transformed weights (once the layer has seen two images), which is what makes it
  pay on small maps. They cost memory: 4× (or 1.8×) the layer's weights, about 2.3 GB for the SD 2.1
  UNet, so they are only kept while the machine has room (WINOGRAD_MEMORY_RESERVE); otherwise, and for a
  layer's first single image, the layer uses the next route.
- Small maps with many channels (the UNet's 8×8 level at batch 1): oneDNN is bound by re-reading the
  weights there; one matrix multiply over the unfolded patches (im2col) runs near the matmul peak.

In bf16 (CPUs with native bf16) oneDNN's kernels run near the bf16 matmul peak on large maps, but on the
UNet's 8×8 level they re-read the weights as in fp32 (80-200 against 670 GFLOP/s measured on a Zen 5), so
only the im2col route is taken there; Winograd's transforms would lose too much of bf16's 8-bit mantissa.

Everything else keeps PyTorch's own choice. The results equal F.conv2d up to rounding (about 1e-5
relative in fp32; in bf16 both paths accumulate in fp32 and round the output), so a seed still gives the
same picture. Only fp32 and bf16 on the CPU without gradients are routed: other dtypes, devices and
training never reach these paths.
"""

from __future__ import annotations

from functools import lru_cache

import psutil
import torch
import torch.nn.functional as F
from torch import nn

# NNPACK pays when a map has at least this many pixels and enough channels to amortise its transforms,
# or on large maps (the decoders' last levels) from fewer channels. With 32 channels or fewer it is
# slower than oneDNN even on 512×512 maps (benchmarks/README.md).
NNPACK_MIN_PIXELS = 64 * 64
NNPACK_MIN_CHANNELS = 128
NNPACK_LARGE_MAP_PIXELS = 256 * 256
NNPACK_LARGE_MAP_MIN_CHANNELS = 48
# Our Winograd pays from 16×16 maps up, with SD's widths (320 channels and more); the larger tile from
# 32×32 up. Smaller layers (the demo models') keep oneDNN, which is as fast there.
WINOGRAD_MIN_PIXELS = 16 * 16
WINOGRAD_LARGE_TILE_PIXELS = 32 * 32
WINOGRAD_MIN_CHANNELS = 320
# Transformed weights are only kept while at least this much memory stays available beyond them.
WINOGRAD_MEMORY_RESERVE = 2 * 2**30
# A layer keeps its transformed weights once it has convolved this many images (counting the current
# batch); until then it takes the next route. Building them for the SD 2.1 UNet takes 2-5 s (2.3 GB of
# newly touched memory, nearly all of it page faults) and they save about 1 s per image, so a one-image,
# one-step generation (a CLI run with -n 1) would pay for them without gaining, and need 2.3 GB more. At
# batch 4 the first call gains about what the build costs, so it keeps them at once.
WINOGRAD_KEEP_FROM_IMAGES = 2
# im2col pays while the whole batch has at most this many output pixels (beyond, oneDNN is as fast) and
# the weights are large; for small layers oneDNN's direct kernels stay faster.
IM2COL_MAX_PIXELS = 512
IM2COL_MIN_CHANNELS = 512


def nnpack_ready() -> bool:
    """True when NNPACK is built in and initialised (its first call fails unless this ran)."""
    return torch.backends.nnpack.is_available()


def conv_route(x: torch.Tensor, in_channels: int, winograd: bool = True) -> str:
    """Which algorithm a 3×3 same-size convolution of `x` uses.

    One of "nnpack", "winograd4" (F(4×4, 3×3)), "winograd2" (F(2×2, 3×3)), "im2col" or "default".
    `winograd=False` gives the route for a layer whose transformed weights could not be kept.
    """
    if x.device.type != "cpu" or x.dim() != 4 or torch.is_grad_enabled():
        return "default"
    pixels = x.shape[-2] * x.shape[-1]
    small_and_wide = pixels * x.shape[0] <= IM2COL_MAX_PIXELS and in_channels >= IM2COL_MIN_CHANNELS
    if x.dtype == torch.bfloat16:  # oneDNN's bf16 kernels win on large maps; only small wide ones are routed
        return "im2col" if small_and_wide else "default"
    if x.dtype != torch.float32:
        return "default"
    if (pixels >= NNPACK_MIN_PIXELS and in_channels >= NNPACK_MIN_CHANNELS) or (
            pixels >= NNPACK_LARGE_MAP_PIXELS and in_channels >= NNPACK_LARGE_MAP_MIN_CHANNELS):
        return "nnpack"
    if winograd and pixels >= WINOGRAD_MIN_PIXELS and in_channels >= WINOGRAD_MIN_CHANNELS:
        return "winograd4" if pixels >= WINOGRAD_LARGE_TILE_PIXELS else "winograd2"
    if small_and_wide:
        return "im2col"
    return "default"


@lru_cache(maxsize=None)
def winograd_matrices(tile: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The input, weight and output transforms of F(tile×tile, 3×3), each as one Kronecker matrix.

    Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015), with interpolation points
    0, ±1, ±2 for tile 4 and 0, ±1 for tile 2. As Kronecker products, each 2-D transform of a whole
    layer is a single matrix multiply: (window², window²) for inputs, (window², 9) for weights and
    (tile², window²) for outputs, where window = tile + 2.
    """
    if tile == 4:
        input_t = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        weight_t = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                    [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        output_t = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    elif tile == 2:
        input_t = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        weight_t = [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]
        output_t = [[1, 1, 1, 0], [0, 1, -1, -1]]
    else:
        raise ValueError(f"no Winograd transform for tile {tile}; use 2 or 4")
    kron = [torch.tensor(m, dtype=torch.float64) for m in (input_t, weight_t, output_t)]
    return tuple(torch.kron(m, m).float() for m in kron)


def winograd_weight(weight: torch.Tensor, tile: int) -> torch.Tensor:
    """A 3×3 weight (out, in, 3, 3) in the Winograd domain: (window², out, in)."""
    _, weight_t, _ = winograd_matrices(tile)
    out_channels, in_channels = weight.shape[:2]
    return (weight_t @ weight.reshape(out_channels * in_channels, 9).T).view(-1, out_channels, in_channels)


def winograd_conv3x3(x: torch.Tensor, transformed_weight: torch.Tensor, bias: torch.Tensor | None,
                     tile: int) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=1) computed by Winograd F(tile×tile, 3×3).

    Each output tile needs a (tile+2)² window of the input. Windows go to the Winograd domain with one
    matrix multiply, meet the weights in window² batched multiplies (the bulk of the work, 2.25× fewer
    (tile 2) or 4× fewer (tile 4) multiplications than a direct convolution), and come back with one more.
    """
    input_t, _, output_t = winograd_matrices(tile)
    window = tile + 2
    batch, channels, height, width = x.shape
    out_channels = transformed_weight.shape[1]
    tiles_h, tiles_w = -(-height // tile), -(-width // tile)
    padded = F.pad(x, (1, tile * tiles_w + 1 - width, 1, tile * tiles_h + 1 - height))
    windows = padded.unfold(2, window, tile).unfold(3, window, tile)  # (batch, channels, th, tw, window, window)
    windows = windows.permute(4, 5, 1, 0, 2, 3).reshape(window * window, -1)  # one column per (channel, tile)
    products = torch.bmm(transformed_weight, (input_t @ windows).view(window * window, channels, -1))
    tiles = (output_t @ products.view(window * window, -1)).view(tile, tile, out_channels, batch, tiles_h, tiles_w)
    # Back to (batch, out_channels, rows, columns), adding the bias in the same pass.
    out = torch.empty(batch, out_channels, tiles_h, tile, tiles_w, tile)
    tiles = tiles.permute(3, 2, 4, 0, 5, 1)
    if bias is None:
        out.copy_(tiles)
    else:
        torch.add(tiles, bias.view(1, -1, 1, 1, 1, 1), out=out)
    out = out.view(batch, out_channels, tile * tiles_h, tile * tiles_w)
    return out if (tile * tiles_h, tile * tiles_w) == (height, width) else out[:, :, :height, :width].contiguous()


def memory_allows(nbytes: int) -> bool:
    """True when keeping `nbytes` more still leaves WINOGRAD_MEMORY_RESERVE of memory available."""
    return psutil.virtual_memory().available - nbytes >= WINOGRAD_MEMORY_RESERVE


class FastCPUConv2d(nn.Conv2d):
    """An nn.Conv2d (3×3, stride 1, zero padding) that picks the fastest fp32 CPU algorithm per call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = conv_route(x, self.in_channels)
        if route in ("winograd4", "winograd2"):
            tile = 4 if route == "winograd4" else 2
            seen = self.__dict__["_winograd_images"] = self.__dict__.get("_winograd_images", 0) + x.shape[0]
            transformed = self.transformed_weight(tile) if seen >= WINOGRAD_KEEP_FROM_IMAGES else None
            if transformed is not None:
                return winograd_conv3x3(x, transformed, self.bias, tile)
            route = conv_route(x, self.in_channels, winograd=False)
        if route == "nnpack":
            weight, padding = self.weight.contiguous(), list(self.padding)
            images = [torch._nnpack_spatial_convolution(one, weight, self.bias, padding, [1, 1])
                      for one in x.contiguous().split(1)]
            return images[0] if len(images) == 1 else torch.cat(images)
        if route == "im2col":
            batch, _, height, width = x.shape
            patches = F.unfold(x, kernel_size=3, padding=self.padding)  # (batch, in_channels * 9, pixels)
            # One matrix multiply for the whole batch: its images side by side as columns.
            columns = patches.transpose(0, 1).reshape(patches.shape[1], -1) if batch > 1 else patches[0]
            weight = self.weight.reshape(self.out_channels, -1)
            if self.bias is None:
                out = torch.mm(weight, columns)
            else:
                out = torch.addmm(self.bias[:, None], weight, columns)
            out = out.view(self.out_channels, batch, height * width).transpose(0, 1)
            return out.reshape(batch, self.out_channels, height, width)
        return super().forward(x)

    def transformed_weight(self, tile: int) -> torch.Tensor | None:
        """This layer's weight in the Winograd domain, computed once and kept; None when memory is short.

        Recomputed when the weight changes (another tensor, new data, or an in-place edit, which bumps
        the version counter), so loading other weights never leaves stale ones in use. Weights made
        under torch.inference_mode have no version counter; only their replacement is noticed.
        """
        kept = self.__dict__.setdefault("_winograd", {})  # tile -> (weight, data_ptr, version, transformed)
        weight = self.weight
        version = None if weight.is_inference() else weight._version
        if tile in kept:
            old, data_ptr, old_version, transformed = kept[tile]
            if old is weight and data_ptr == weight.data_ptr() and old_version == version:
                return transformed
            del kept[tile]
        if not memory_allows((tile + 2) ** 2 * weight.numel() * weight.element_size()):
            return None
        transformed = winograd_weight(weight.detach(), tile)
        kept[tile] = (weight, weight.data_ptr(), version, transformed)
        return transformed


def can_route(conv: nn.Module) -> bool:
    """Plain 3×3 stride-1 convolutions with one pixel of zero padding (same size out): what the fast paths handle."""
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
    device and the dtype are untouched. Switching back frees the kept Winograd weights. Without NNPACK
    nothing is switched.
    """
    if enabled and not nnpack_ready():
        return 0
    switched = 0
    for module in model.modules():
        if can_route(module):
            module.__class__ = FastCPUConv2d if enabled else nn.Conv2d
            if not enabled:
                module.__dict__.pop("_winograd", None)
                module.__dict__.pop("_winograd_images", None)
            switched += 1
    return switched
