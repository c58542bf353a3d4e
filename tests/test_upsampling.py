"""The polyphase upsampling layer equals the transposed convolution it replaces."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tts_engine.models.upsampling import PolyphaseConvTranspose1d
from tts_engine.models.vits.layers import ChannelsLastConvTranspose1d


def _pair(cin: int, cout: int, kernel: int, stride: int, padding: int, bias: bool = True):
    torch.manual_seed(kernel * 100 + stride)
    ref = nn.ConvTranspose1d(cin, cout, kernel, stride, padding=padding, bias=bias)
    ours = PolyphaseConvTranspose1d(cin, cout, kernel, stride, padding=padding, bias=bias)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("stride", [2, 4, 6, 8, 10])
@pytest.mark.parametrize("time_major", [False, True])
def test_polyphase_equals_transposed_convolution(stride, time_major):
    ref, ours = _pair(24, 16, 2 * stride, stride, stride // 2)
    assert ours.is_polyphase()
    x = torch.randn(3, 24, 37)
    if time_major:  # the channels-last layout Piper's vocoder keeps its activations in
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    with torch.inference_mode():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape == (3, 16, 37 * stride)
    assert torch.allclose(got, want, atol=1e-5)


def test_polyphase_in_bfloat16_and_without_bias():
    ref, ours = _pair(32, 8, 16, 8, 4, bias=False)
    ref, ours = ref.to(torch.bfloat16), ours.to(torch.bfloat16)
    x = torch.randn(1, 32, 50, dtype=torch.bfloat16)
    with torch.inference_mode():
        want, got = ref(x).float(), ours(x).float()
    assert (got - want).abs().max() <= 0.02 * want.abs().max()


def test_phase_weights_follow_a_changed_weight():
    ref, ours = _pair(8, 4, 8, 4, 2)
    x = torch.randn(1, 8, 10)
    with torch.inference_mode():
        ours(x)
    with torch.no_grad():
        ref.weight.mul_(2.0)
        ours.weight.mul_(2.0)  # in place: the cached phase weights must not be reused
    with torch.inference_mode():
        assert torch.allclose(ours(x), ref(x), atol=1e-5)


@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (16, 8, 3), (9, 3, 3)])
def test_other_shapes_take_the_transposed_convolution(kernel, stride, padding):
    ref, ours = _pair(6, 5, kernel, stride, padding)
    assert not ours.is_polyphase()
    x = torch.randn(2, 6, 11)
    with torch.inference_mode():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_piper_upsampling_layer_is_polyphase_and_time_major():
    layer = ChannelsLastConvTranspose1d(16, 8, 16, 8, padding=4)
    ref = nn.ConvTranspose1d(16, 8, 16, 8, padding=4)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(1, 16, 21).transpose(1, 2).contiguous().transpose(1, 2)
    with torch.inference_mode():
        got = layer(x)
        assert torch.allclose(got, ref(x), atol=1e-5)
    assert got.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)  # no copy back to channels-first
