import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clipdemo.config import resolve_settings
from clipdemo.speedups.fastconv import FastCPUConv2d, conv_route, nnpack_ready, use_fast_cpu_convolutions

needs_nnpack = pytest.mark.skipif(not nnpack_ready(), reason="this torch build has no NNPACK")


def fast_copy(conv: nn.Conv2d) -> nn.Conv2d:
    fast = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, bias=conv.bias is not None,
                     dtype=conv.weight.dtype)
    fast.load_state_dict(conv.state_dict())
    assert use_fast_cpu_convolutions(fast) == 1
    return fast


@needs_nnpack
@pytest.mark.parametrize("batch, channels, height, width, bias, route", [
    (1, 128, 64, 64, True, "nnpack"),
    (3, 128, 64, 72, False, "nnpack"),  # several images, not square
    (1, 64, 256, 256, True, "nnpack"),  # a decoder's large map (TAESD)
    (1, 16, 256, 256, True, "default"),  # too few channels: NNPACK is slower even on a large map
    (1, 320, 32, 32, True, "winograd4"),
    (2, 320, 33, 35, False, "winograd4"),  # the last tiles overhang the map and are cropped
    (1, 512, 16, 16, True, "winograd2"),
    (3, 320, 17, 24, True, "winograd2"),
    (1, 512, 8, 8, True, "im2col"),
    (2, 512, 8, 12, False, "im2col"),
    (1, 256, 32, 32, True, "default"),  # narrower than SD's layers: oneDNN
    (4, 64, 32, 32, True, "default"),
    (1, 64, 8, 8, True, "default"),  # a small layer: oneDNN is faster there
])
def test_each_route_matches_the_reference_convolution(batch, channels, height, width, bias, route):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, 48, 3, padding=1, bias=bias)
    x = torch.randn(batch, channels, height, width)
    fast = fast_copy(conv)
    with torch.inference_mode():
        assert conv_route(x, channels) == route
        expected = F.conv2d(x, conv.weight, conv.bias, padding=1)
        first, second = fast(x), fast(x)  # Winograd layers keep their weights from their second image
    if route.startswith("winograd"):
        assert list(fast.__dict__["_winograd"]) == [int(route[-1])]
    for got in (first, second):
        assert got.shape == expected.shape
        assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_a_layer_keeps_winograd_weights_from_its_second_image(monkeypatch):
    import clipdemo.speedups.fastconv as fastconv

    real, built = fastconv.winograd_weight, []
    monkeypatch.setattr(fastconv, "winograd_weight", lambda weight, tile: built.append(tile) or real(weight, tile))
    torch.manual_seed(0)
    conv = fast_copy(nn.Conv2d(320, 16, 3, padding=1))
    x = torch.randn(1, 320, 32, 32)
    with torch.inference_mode():
        conv(x)
        assert built == [] and not conv.__dict__.get("_winograd")  # a one-image call builds nothing
        conv(x)
        conv(x)
    assert built == [4]  # built on the second image, reused on the third
    use_fast_cpu_convolutions(conv, enabled=False)
    use_fast_cpu_convolutions(conv)
    with torch.inference_mode():
        conv(x)
        assert built == [4]  # switched off and on: the count starts again
        conv(torch.cat([x, x]))  # a batch of two keeps them on its first call
    assert built == [4, 4]


def test_only_plain_same_size_3x3_convolutions_are_switched_and_back():
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1),              # switched
        nn.Conv2d(8, 8, 3, padding=1, stride=2),    # stride 2: kept
        nn.Conv2d(8, 8, 1),                         # 1x1: kept
        nn.Conv2d(8, 8, 3, padding=0),              # shrinks the map: kept
        nn.Conv2d(8, 8, 3, padding=1, groups=2),    # grouped: kept
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),  # kept
    )
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = 1 if nnpack_ready() else 0
    assert use_fast_cpu_convolutions(model) == expected
    assert [type(m) is FastCPUConv2d for m in model] == [bool(expected)] + [False] * 5
    assert use_fast_cpu_convolutions(model, enabled=False) == 1
    assert all(type(m) is nn.Conv2d for m in model)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@needs_nnpack
def test_training_and_other_dtypes_keep_pytorchs_own_path():
    conv = fast_copy(nn.Conv2d(128, 8, 3, padding=1))
    x = torch.randn(1, 128, 64, 64, requires_grad=True)
    assert conv_route(x, 128) == "default"  # gradients on: NNPACK's path is inference only
    conv(x).sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
    with torch.inference_mode():
        assert conv_route(torch.randn(1, 128, 64, 64, dtype=torch.bfloat16), 128) == "default"
        assert conv_route(torch.randn(1, 512, 8, 8, dtype=torch.float16), 512) == "default"
        assert conv_route(torch.randn(1, 128, 64, 64), 128) == "nnpack"


@needs_nnpack
@pytest.mark.parametrize("batch, channels, height, width, bias, route", [
    (1, 512, 8, 8, True, "im2col"),  # the UNet's 8×8 level: oneDNN's bf16 kernels re-read the weights
    (2, 640, 16, 16, False, "im2col"),
    (4, 512, 8, 8, True, "im2col"),
    (4, 512, 16, 16, True, "default"),  # enough pixels for oneDNN
    (1, 512, 32, 32, True, "default"),
    (1, 320, 64, 64, True, "default"),  # no Winograd or NNPACK in bf16
])
def test_bf16_routes_match_the_reference_convolution(batch, channels, height, width, bias, route):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, 48, 3, padding=1, bias=bias).to(torch.bfloat16)
    x = torch.randn(batch, channels, height, width, dtype=torch.bfloat16)
    fast = fast_copy(conv)
    with torch.inference_mode():
        assert conv_route(x, channels) == route
        expected = F.conv2d(x.float(), conv.weight.float(), None if conv.bias is None else conv.bias.float(), padding=1)
        got = fast(x)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    # bf16 products accumulate in fp32 on both paths; only the output is rounded.
    assert ((got.float() - expected).norm() / expected.norm()) < 0.01


def test_fast_conv_is_on_by_default_and_can_be_turned_off():
    assert resolve_settings(env={}).fast_conv is True
    assert resolve_settings(env={"CLIPDEMO_FAST_CONV": "0"}).fast_conv is False
    assert resolve_settings(env={"CLIPDEMO_FAST_CONV": "off"}).fast_conv is False
    assert resolve_settings(fast_conv=False, env={"CLIPDEMO_FAST_CONV": "1"}).fast_conv is False
    assert resolve_settings(fast_conv=True, env={"CLIPDEMO_FAST_CONV": "0"}).fast_conv is True


def test_cli_flag_turns_fast_conv_off():
    from clipdemo.cli.main import build_parser, settings_from

    assert settings_from(build_parser().parse_args(["generate", "a cat"])).fast_conv is True
    assert settings_from(build_parser().parse_args(["generate", "a cat", "--no-fast-conv"])).fast_conv is False


def test_winograd_weights_follow_edited_and_replaced_weights():
    torch.manual_seed(0)
    conv = fast_copy(nn.Conv2d(320, 16, 3, padding=1))
    x = torch.randn(1, 320, 16, 16)

    def check():
        with torch.inference_mode():
            assert conv_route(x, 320) == "winograd2"
            expected = F.conv2d(x, conv.weight, conv.bias, padding=1)
            assert (conv(x) - expected).abs().max() <= 1e-4 * expected.abs().max()
        assert 2 in conv.__dict__["_winograd"]

    with torch.inference_mode():
        conv(x)  # the first image keeps nothing
    check()
    with torch.no_grad():
        conv.weight.mul_(-2)  # in place, as load_state_dict does
    check()
    conv.weight = nn.Parameter(torch.randn_like(conv.weight))  # a new tensor
    check()
    assert use_fast_cpu_convolutions(conv, enabled=False) == 1
    assert "_winograd" not in conv.__dict__  # switching back frees the kept weights


def test_winograd_falls_back_when_memory_is_short(monkeypatch):
    import clipdemo.speedups.fastconv as fastconv

    torch.manual_seed(0)
    conv = fast_copy(nn.Conv2d(512, 16, 3, padding=1))
    x = torch.randn(1, 512, 16, 16)
    monkeypatch.setattr(fastconv, "WINOGRAD_MEMORY_RESERVE", 1 << 60)  # more than any machine has
    with torch.inference_mode():
        conv(x)
        got = conv(x)  # the call that would keep the weights
        assert conv_route(x, 512, winograd=False) == "im2col"
    assert not conv.__dict__.get("_winograd")
    expected = F.conv2d(x, conv.weight, conv.bias, padding=1)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_transform_is_exact_on_integer_inputs(tile):
    # Small integers: the transforms' sums are exact in fp32 up to the fractions in the weight transform,
    # so this checks the matrices themselves, not just closeness on random data.
    from clipdemo.speedups.fastconv import winograd_conv3x3, winograd_weight

    torch.manual_seed(0)
    x = torch.randint(-3, 4, (1, 3, 8, 8)).float()
    weight = torch.randint(-3, 4, (2, 3, 3, 3)).float()
    got = winograd_conv3x3(x, winograd_weight(weight, tile), None, tile)
    assert torch.allclose(got, F.conv2d(x, weight, padding=1), atol=1e-4)
