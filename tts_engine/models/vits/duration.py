"""The stochastic duration predictor: a normalizing flow over log-durations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import VitsConfig
from .layers import DepthwiseConv1d, LayerNorm, PointwiseConv1d, padding_same


class DilatedDepthSeparableConv(nn.Module):
    """DDSConv: depthwise dilated convs (dilation kernel**i) + 1x1 convs, GELU, residual."""

    def __init__(self, channels: int, kernel: int, n_layers: int) -> None:
        super().__init__()
        self.convs_sep = nn.ModuleList()
        self.convs_1x1 = nn.ModuleList()
        self.norms_1 = nn.ModuleList()
        self.norms_2 = nn.ModuleList()
        for i in range(n_layers):
            dilation = kernel**i
            self.convs_sep.append(
                DepthwiseConv1d(channels, channels, kernel, groups=channels, dilation=dilation,
                          padding=padding_same(kernel, dilation))
            )
            self.convs_1x1.append(PointwiseConv1d(channels, channels, 1))
            self.norms_1.append(LayerNorm(channels))
            self.norms_2.append(LayerNorm(channels))

    def forward(self, x: Tensor, mask: Tensor, g: Tensor | None = None) -> Tensor:
        if g is not None:
            x = x + g
        for sep, norm1, pointwise, norm2 in zip(self.convs_sep, self.norms_1, self.convs_1x1, self.norms_2):
            y = F.gelu(norm1(sep(x * mask)))
            y = F.gelu(norm2(pointwise(y)))
            x = x + y
        return x * mask


class Flip(nn.Module):
    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        return torch.flip(x, [1])


class ElementwiseAffine(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(channels, 1))
        self.logs = nn.Parameter(torch.zeros(channels, 1))

    def forward(self, x: Tensor, mask: Tensor, g: Tensor | None = None) -> Tensor:
        return (x - self.m) * torch.exp(-self.logs) * mask


def inverse_rational_quadratic_spline(
    y: Tensor,
    widths_raw: Tensor,
    heights_raw: Tensor,
    derivs_raw: Tensor,
    tail_bound: float = 5.0,
    min_bin: float = 1e-3,
    min_deriv: float = 1e-3,
) -> Tensor:
    """Inverse of a monotonic rational-quadratic spline on [-B, B], identity (linear tails) outside.

    Durand et al., "Neural Spline Flows" (2019). Computed for every element and
    selected with ``where`` so it stays shape-static (no boolean indexing).
    """
    n_bins = widths_raw.shape[-1]
    # Linear tails: the outermost knot derivatives are fixed so the spline meets the identity.
    edge = math.log(math.exp(1 - min_deriv) - 1)
    derivs_raw = F.pad(derivs_raw, (1, 1), value=edge)
    derivs = min_deriv + F.softplus(derivs_raw)

    def knots(raw: Tensor) -> tuple[Tensor, Tensor]:
        sizes = min_bin + (1 - min_bin * n_bins) * torch.softmax(raw, dim=-1)
        cum = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
        cum = 2 * tail_bound * cum - tail_bound
        # Pin the end knots exactly to the bounds (the cumulative sum drifts by rounding).
        lo, hi = torch.full_like(cum[..., :1], -tail_bound), torch.full_like(cum[..., :1], tail_bound)
        cum = torch.cat([lo, cum[..., 1:-1], hi], -1)
        return cum, cum[..., 1:] - cum[..., :-1]

    cum_w, widths = knots(widths_raw)
    cum_h, heights = knots(heights_raw)

    inside = (y >= -tail_bound) & (y <= tail_bound)
    yc = y.clamp(-tail_bound, tail_bound)
    locations = torch.cat([cum_h[..., :-1], cum_h[..., -1:] + 1e-6], -1)
    bin_idx = ((yc[..., None] >= locations).sum(-1, keepdim=True) - 1).clamp(0, n_bins - 1)

    def pick(t: Tensor) -> Tensor:
        return t.gather(-1, bin_idx)[..., 0]

    x_k, w_k, y_k, h_k = pick(cum_w), pick(widths), pick(cum_h), pick(heights)
    d_k, d_k1 = pick(derivs[..., :-1]), pick(derivs[..., 1:])
    s_k = h_k / w_k

    dy = yc - y_k
    a = dy * (d_k + d_k1 - 2 * s_k) + h_k * (s_k - d_k)
    b = h_k * d_k - dy * (d_k + d_k1 - 2 * s_k)
    c = -s_k * dy
    disc = b.pow(2) - 4 * a * c
    theta = (2 * c) / (-b - torch.sqrt(disc))
    return torch.where(inside, theta * w_k + x_k, y)


class ConvFlow(nn.Module):
    def __init__(self, channels: int, filter_channels: int, kernel: int, n_layers: int = 3,
                 n_bins: int = 10, tail_bound: float = 5.0) -> None:
        super().__init__()
        self.half = channels // 2
        self.filter_channels = filter_channels
        self.n_bins = n_bins
        self.tail_bound = tail_bound
        self.pre = PointwiseConv1d(self.half, filter_channels, 1)
        self.convs = DilatedDepthSeparableConv(filter_channels, kernel, n_layers)
        self.proj = PointwiseConv1d(filter_channels, self.half * (n_bins * 3 - 1), 1)

    def forward(self, x: Tensor, mask: Tensor, g: Tensor | None = None) -> Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], dim=1)
        h = self.proj(self.convs(self.pre(x0), mask, g=g)) * mask
        b, c, t = x0.shape
        h = h.reshape(b, c, -1, t).permute(0, 1, 3, 2)
        scale = math.sqrt(self.filter_channels)
        widths, heights = h[..., : self.n_bins] / scale, h[..., self.n_bins : 2 * self.n_bins] / scale
        x1 = inverse_rational_quadratic_spline(x1, widths, heights, h[..., 2 * self.n_bins :], self.tail_bound)
        return torch.cat([x0, x1], dim=1) * mask


class StochasticDurationPredictor(nn.Module):
    """Flow-based duration model, run only in reverse (noise -> log-durations)."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        c = cfg.dp_filter
        self.pre = PointwiseConv1d(cfg.hidden, c, 1)
        self.proj = PointwiseConv1d(c, c, 1)
        self.convs = DilatedDepthSeparableConv(c, cfg.dp_kernel, 3)
        if cfg.gin:
            self.cond = PointwiseConv1d(cfg.gin, c, 1)
        # Slot 1 exists in training but its inverse is dropped at inference (it only
        # transforms the discarded channel); an Identity keeps Piper's indices.
        flows: list[nn.Module] = [ElementwiseAffine(2)]
        for i in range(cfg.dp_flows):
            flows.append(nn.Identity() if i == 0 else ConvFlow(2, c, cfg.dp_kernel))
            flows.append(Flip())
        self.flows = nn.ModuleList(flows)

    def forward(self, x: Tensor, mask: Tensor, noise: Tensor, g: Tensor | None = None) -> Tensor:
        """``noise`` [B, 2, T] (already scaled) -> log-durations [B, 1, T]."""
        x = self.pre(x)
        if g is not None:
            x = x + self.cond(g)
        x = self.proj(self.convs(x, mask)) * mask
        z = noise
        for i in reversed(range(len(self.flows))):
            if i == 1:
                continue
            z = self.flows[i](z, mask, g=x)
        return z[:, :1]


# --------------------------------------------------------------------------- flow
