"""The residual coupling flow between the prior and the vocoder's latent (WaveNet-style layers)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import VitsConfig
from .duration import Flip
from .layers import OneDNNConv1d, PointwiseConv1d, padding_same


class WaveNet(nn.Module):
    """Non-causal WaveNet stack (gated tanh/sigmoid, residual + skip) used by the coupling layers."""

    def __init__(self, hidden: int, kernel: int, dilation_rate: int, n_layers: int, gin: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                OneDNNConv1d(hidden, 2 * hidden, kernel, dilation=dilation,
                             padding=padding_same(kernel, dilation))
            )
            out = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(PointwiseConv1d(hidden, out, 1))
        if gin:
            self.cond_layer = PointwiseConv1d(gin, 2 * hidden * n_layers, 1)

    def forward(self, x: Tensor, mask: Tensor, g: Tensor | None = None) -> Tensor:
        h = self.hidden
        cond = self.cond_layer(g) if g is not None else None
        out = torch.zeros_like(x)
        last = len(self.in_layers) - 1
        for i, (conv_in, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = conv_in(x)
            if cond is not None:
                a = a + cond[:, i * 2 * h : (i + 1) * 2 * h]
            acts = res_skip(_gated_tanh(a, h))
            if i < last:
                x = (x + acts[:, :h]) * mask
                out = out + acts[:, h:]
            else:
                out = out + acts
        return out * mask


def _gated_tanh(a: Tensor, h: int) -> Tensor:
    """tanh(a[:, :h]) * sigmoid(a[:, h:]), with tanh(x) = 2 * sigmoid(2x) - 1: torch's CPU tanh
    is 4-6x slower than its sigmoid, which made tanh the flow's costliest elementwise op."""
    t = torch.sigmoid(a[:, :h] * 2).mul_(2).sub_(1)
    return t.mul_(torch.sigmoid(a[:, h:]))


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half is shifted by a function of the first."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.half = cfg.inter // 2
        self.pre = PointwiseConv1d(self.half, cfg.hidden, 1)
        self.enc = WaveNet(cfg.hidden, cfg.flow_kernel, cfg.flow_dilation, cfg.flow_layers, cfg.gin)
        self.post = PointwiseConv1d(cfg.hidden, self.half, 1)

    def forward(self, x: Tensor, mask: Tensor, g: Tensor | None = None) -> Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], dim=1)
        shift = self._shift(x0, mask, g)
        return torch.cat([x0, (x1 - shift) * mask], dim=1)

    def _shift(self, x0: Tensor, mask: Tensor, g: Tensor | None) -> Tensor:
        """The WaveNet's predicted shift, in the WaveNet's dtype and returned in x0's: a bfloat16
        WaveNet (``PiperFamily``) computes the shift while the flow's signal stays float32."""
        signal_dtype, dtype = x0.dtype, self.pre.weight.dtype
        if dtype != signal_dtype:
            x0, mask, g = x0.to(dtype), mask.to(dtype), None if g is None else g.to(dtype)
        h = self.enc(self.pre(x0) * mask, mask, g=g)
        return (self.post(h) * mask).to(signal_dtype)


class ResidualCouplingBlock(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(cfg.flow_count):
            layers += [ResidualCouplingLayer(cfg), Flip()]
        self.flows = nn.ModuleList(layers)

    def forward(self, x: Tensor, mask: Tensor, g: Tensor | None = None) -> Tensor:
        for flow in reversed(self.flows):
            x = flow(x, mask, g=g)
        return x


# --------------------------------------------------------------------------- vocoder
#
# The vocoder is most of the CPU time (~19 GFLOP for 5 s of audio, in convolutions with
# 32-256 channels over up to 10^5 time steps). On CPU, oneDNN runs such convolutions up to
# 2-4x faster on time-major ("channels-last": [B, T, C] in memory) data than on torch's
# default [B, C, T] layout (the whole vocoder: ~1.5x), so its convolutions run as 2-D ones over a
# [B, C, 1, T] channels-last view. Tensors stay logically [B, C, T] (time-major strides),
# elementwise ops keep that layout, and each convolution's output feeds the next without a
# copy. Same parameters (names and shapes) as nn.Conv1d / nn.ConvTranspose1d, so weights
# load unchanged; only their memory layout differs.
