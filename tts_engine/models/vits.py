"""Inference-only VITS (the Piper flavour) in plain torch.

Written from the published architecture (Kim et al., 2021, "Conditional
Variational Autoencoder with Adversarial Learning for End-to-End
Text-to-Speech") and the layout of Piper's exported voices. Module and
parameter names follow Piper's so a voice's ``.onnx`` initializers load by
name (see ``weights.py``).

Two stages, each callable on its own so the serving layer can batch and stream:

- ``acoustic(ids, lengths, ...) -> (latent [B, C, frames], frame_lengths [B])``
- ``vocoder(latent, frame_lengths=None) -> waveform [B, frames * hop]``

Batching contract: every operation that mixes time steps sees zeros beyond an
item's length (masks before each convolution), so a padded batch returns,
per item, the same audio as running that item alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.1


@dataclass(frozen=True)
class VitsConfig:
    """Hyper-parameters; ``weights.py`` infers them from a voice's tensors."""

    n_vocab: int
    hidden: int = 192
    inter: int = 192
    filter: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel: int = 3
    window: int = 4
    dp_filter: int = 192
    dp_kernel: int = 3
    dp_flows: int = 4
    flow_count: int = 4
    flow_kernel: int = 5
    flow_layers: int = 4
    flow_dilation: int = 1
    up_initial: int = 256
    up_rates: tuple[int, ...] = (8, 8, 4)
    up_kernels: tuple[int, ...] = (16, 16, 8)
    resblock: str = "2"
    rb_kernels: tuple[int, ...] = (3, 5, 7)
    rb_dilations: tuple[tuple[int, ...], ...] = ((1, 2), (2, 6), (3, 12))
    n_speakers: int = 1
    gin: int = 0

    @property
    def hop(self) -> int:
        return math.prod(self.up_rates)


# --------------------------------------------------------------------------- helpers


def sequence_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """[B] lengths -> [B, T] float mask."""
    max_len = int(lengths.max()) if max_len is None else max_len
    steps = torch.arange(max_len, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).float()


def padding_same(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class OneDNNConv1d(nn.Conv1d):
    """nn.Conv1d run by oneDNN on CPU, with its weight packed once instead of on every call.

    What torch's conv1d costs here, per call, for the text encoder's and flow's wide convs:
    1. oneDNN reorders the weight (1.5-1.8 MB each) into its blocked layout: ~35 % of their
       oneDNN time for a short sentence. The packed copy comes from torch's prepacked-convolution
       ops (the ones ``torch.jit.freeze`` uses; checked at import) and is rebuilt whenever the
       weight or bias tensor changes (``load_state_dict``, ``.to()``), so it is never stale.
    2. For a batch of one with channels * length <= 20480 (short sentences) torch skips oneDNN
       for its generic im2col path, 1.2-4x slower here.
    Autograd, other devices and dtypes take the stock path.
    """

    _pack: object | None = None
    _pack_key: tuple | None = None

    def forward(self, x: Tensor) -> Tensor:
        if (x.device.type != "cpu" or x.dtype != torch.float32 or self.padding_mode != "zeros"
                or (torch.is_grad_enabled() and self.weight.requires_grad)):
            return super().forward(x)
        if _HAS_PREPACKED_CONV:
            y = torch.ops.mkldnn_prepacked.conv2d_run(x.unsqueeze(2).contiguous(), self._packed())
            return y.squeeze(2)
        if _HAS_MKLDNN_CONV:
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride,
                                            self.dilation, self.groups)
        return super().forward(x)

    def _packed(self) -> object:
        w, b = self.weight, self.bias
        tensors = (w,) if b is None else (w, b)
        if any(t.is_inference() for t in tensors):  # no version counter: cannot tell if it changed
            return self._pack_now()
        key = tuple((t.data_ptr(), t._version) for t in tensors)
        if self._pack_key != key:
            self._pack, self._pack_key = self._pack_now(), key
        return self._pack

    def _pack_now(self) -> object:
        b = self.bias
        return torch.ops.mkldnn_prepacked.conv2d_prepack(
            self.weight.detach().unsqueeze(2).contiguous(), None if b is None else b.detach(),
            [1, self.stride[0]], [0, self.padding[0]], [1, self.dilation[0]], self.groups,
            [1, self.in_channels, 1, 64], "none")  # 64: a size hint only; any length runs

    def __getstate__(self) -> dict:
        # The packed weight is a cache (and not picklable): copies and pickles rebuild it.
        state = dict(super().__getstate__())
        state.pop("_pack", None)
        state.pop("_pack_key", None)
        return state


def _has_prepacked_conv() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn_prepacked, "conv2d_run")
    except (AttributeError, RuntimeError):
        return False


_HAS_MKLDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")
_HAS_PREPACKED_CONV = _has_prepacked_conv()


class PointwiseConv1d(nn.Conv1d):
    """A kernel-1 nn.Conv1d as one batched matrix product (bias + W @ x).

    From ~20k input elements up (longer sentences) torch hands these ~70 small products per
    sentence to oneDNN, which reorders the weight on every call; one sgemm measured 1.3-1.8x
    faster there, and the same below.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel_size[0] != 1 or self.stride[0] != 1 or self.padding[0] != 0 or self.groups != 1:
            return super().forward(x)
        w = self.weight.squeeze(-1).expand(x.shape[0], -1, -1)
        return torch.bmm(w, x) if self.bias is None else torch.baddbmm(self.bias[:, None], w, x)


class DepthwiseConv1d(nn.Conv1d):
    """A depthwise (groups == channels) nn.Conv1d as ``kernel`` shifted multiply-adds.

    oneDNN's depthwise kernel takes ~3 us on these [192 x tokens] inputs, but torch's convolution
    wrapper adds ~50 us per call; four elementwise ops cost ~15 us.
    """

    def forward(self, x: Tensor) -> Tensor:
        c = self.in_channels
        if self.groups != c or self.out_channels != c or self.stride[0] != 1 or self.padding_mode != "zeros":
            return super().forward(x)
        k, d, p = self.kernel_size[0], self.dilation[0], self.padding[0]
        length = x.shape[-1] + 2 * p - d * (k - 1)
        x = F.pad(x, (p, p))
        w = self.weight[:, 0, :, None]  # [C, k, 1]
        first = x[..., :length]
        y = first * w[:, 0] if self.bias is None else torch.addcmul(self.bias[:, None], first, w[:, 0])
        for j in range(1, k):
            y.addcmul_(x[..., j * d : j * d + length], w[:, j])
        return y


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] tensors (Piper names: gamma/beta)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


# --------------------------------------------------------------------------- text encoder


class RelativeMultiHeadAttention(nn.Module):
    """Self-attention with learned relative-position keys/values inside +-window."""

    def __init__(self, channels: int, n_heads: int, window: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window = window
        self.conv_q = PointwiseConv1d(channels, channels, 1)
        self.conv_k = PointwiseConv1d(channels, channels, 1)
        self.conv_v = PointwiseConv1d(channels, channels, 1)
        self.conv_o = PointwiseConv1d(channels, channels, 1)
        rel_shape = (1, 2 * window + 1, self.k_channels)
        self.emb_rel_k = nn.Parameter(torch.zeros(rel_shape))
        self.emb_rel_v = nn.Parameter(torch.zeros(rel_shape))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, c, t = x.shape
        q, k, v = (self._heads(conv(x)) for conv in (self.conv_q, self.conv_k, self.conv_v))
        q = q / math.sqrt(self.k_channels)
        scores = q @ k.transpose(-2, -1)
        rel_k = self._relative_embeddings(self.emb_rel_k, t)
        scores = scores + self._relative_to_absolute(q @ rel_k.unsqueeze(0).transpose(-2, -1))
        scores = scores.masked_fill(mask == 0, -1e4)
        attn = torch.softmax(scores, dim=-1)
        out = attn @ v
        rel_v = self._relative_embeddings(self.emb_rel_v, t)
        out = out + self._absolute_to_relative(attn) @ rel_v.unsqueeze(0)
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)

    def _heads(self, x: Tensor) -> Tensor:
        b, c, t = x.shape
        return x.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)

    def _relative_embeddings(self, emb: Tensor, length: int) -> Tensor:
        """The 2*length-1 relative offsets a sequence of this length uses (zero beyond the window)."""
        pad = max(length - (self.window + 1), 0)
        start = max((self.window + 1) - length, 0)
        if pad > 0:
            emb = F.pad(emb, (0, 0, pad, pad))
        return emb[:, start : start + 2 * length - 1]

    @staticmethod
    def _relative_to_absolute(x: Tensor) -> Tensor:
        """[b, h, l, 2l-1] relative logits -> [b, h, l, l] absolute, by the pad-and-reshape trick."""
        b, h, l, _ = x.shape
        x = F.pad(x, (0, 1)).view(b, h, l * 2 * l)
        x = F.pad(x, (0, l - 1)).view(b, h, l + 1, 2 * l - 1)
        return x[:, :, :l, l - 1 :]

    @staticmethod
    def _absolute_to_relative(x: Tensor) -> Tensor:
        """[b, h, l, l] absolute weights -> [b, h, l, 2l-1] relative."""
        b, h, l, _ = x.shape
        x = F.pad(x, (0, l - 1)).view(b, h, l * (2 * l - 1))
        x = F.pad(x, (l, 0)).view(b, h, l, 2 * l)
        return x[:, :, :, 1:]


class FeedForward(nn.Module):
    def __init__(self, channels: int, filter_channels: int, kernel: int) -> None:
        super().__init__()
        self.pad = ((kernel - 1) // 2, kernel // 2)
        self.conv_1 = OneDNNConv1d(channels, filter_channels, kernel)
        self.conv_2 = OneDNNConv1d(filter_channels, channels, kernel)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = torch.relu(self.conv_1(F.pad(x * mask, self.pad)))
        return self.conv_2(F.pad(x * mask, self.pad)) * mask


class Encoder(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.attn_layers = nn.ModuleList(
            RelativeMultiHeadAttention(h, cfg.n_heads, cfg.window) for _ in range(cfg.n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(LayerNorm(h) for _ in range(cfg.n_layers))
        self.ffn_layers = nn.ModuleList(FeedForward(h, cfg.filter, cfg.kernel) for _ in range(cfg.n_layers))
        self.norm_layers_2 = nn.ModuleList(LayerNorm(h) for _ in range(cfg.n_layers))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, norm1, ffn, norm2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2
        ):
            x = norm1(x + attn(x, attn_mask))
            x = norm2(x + ffn(x, mask))
        return x * mask


class TextEncoder(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.hidden = cfg.hidden
        self.inter = cfg.inter
        self.emb = nn.Embedding(cfg.n_vocab, cfg.hidden)
        self.encoder = Encoder(cfg)
        self.proj = PointwiseConv1d(cfg.hidden, cfg.inter * 2, 1)

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = (self.emb(ids) * math.sqrt(self.hidden)).transpose(1, 2)
        mask = sequence_mask(lengths, ids.shape[1]).unsqueeze(1).to(x.dtype)
        x = self.encoder(x * mask, mask)
        mean, log_std = torch.split(self.proj(x) * mask, self.inter, dim=1)
        return x, mean, log_std, mask


# --------------------------------------------------------------------------- duration predictor


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
        h = self.enc(self.pre(x0) * mask, mask, g=g)
        shift = self.post(h) * mask
        return torch.cat([x0, (x1 - shift) * mask], dim=1)


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


def _channels_last_4d(x: Tensor) -> Tensor:
    """[B, C, T] -> a [B, C, 1, T] channels-last view (copying only if x is not time-major)."""
    x = x.unsqueeze(2)
    return x if x.is_contiguous(memory_format=torch.channels_last) else x.contiguous(
        memory_format=torch.channels_last)


def _store_time_major(weight: nn.Parameter) -> nn.Parameter:
    """The same [out, in, k] parameter, stored so that ``weight.unsqueeze(2)`` is channels-last:
    torch then hands it to oneDNN without first copying it into that layout on every call
    (up to 1/3 of a convolution's time on a streaming chunk's few frames).
    ``load_state_dict`` and ``.to()`` keep this layout."""
    data = weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last).squeeze(2)
    return nn.Parameter(data, requires_grad=weight.requires_grad)


class ChannelsLastConv1d(nn.Conv1d):
    """nn.Conv1d computed channels-last on CPU (see above); other devices use the stock path."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight = _store_time_major(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or self.padding_mode != "zeros":
            return super().forward(x)
        y = F.conv2d(_channels_last_4d(x), self.weight.unsqueeze(2), self.bias, (1, self.stride[0]),
                     (0, self.padding[0]), (1, self.dilation[0]), self.groups)
        return y.squeeze(2)


class ChannelsLastConvTranspose1d(nn.ConvTranspose1d):
    """nn.ConvTranspose1d (no output_padding) computed channels-last on CPU (see above)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight = _store_time_major(self.weight)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if x.device.type != "cpu" or output_size is not None:
            return super().forward(x, output_size)
        y = F.conv_transpose2d(_channels_last_4d(x), self.weight.unsqueeze(2), self.bias, (1, self.stride[0]),
                               (0, self.padding[0]), (0, self.output_padding[0]), self.groups,
                               (1, self.dilation[0]))
        return y.squeeze(2)


class ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            ChannelsLastConv1d(channels, channels, kernel, dilation=d, padding=padding_same(kernel, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            ChannelsLastConv1d(channels, channels, kernel, padding=padding_same(kernel)) for _ in dilations
        )

    def forward(self, x: Tensor, mask: Tensor | None, x_act: Tensor | None = None) -> Tensor:
        """``x_act``: leaky_relu(x) * mask when the caller already has it (shared by sibling blocks)."""
        for k, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            y = c1(x_act if k == 0 and x_act is not None else _leaky_masked(x, mask))
            x = c2(_leaky_masked(y, mask)).add_(x)  # x + c2(...), without a new buffer
        return x


class ResBlock2(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            ChannelsLastConv1d(channels, channels, kernel, dilation=d, padding=padding_same(kernel, d))
            for d in dilations
        )

    def forward(self, x: Tensor, mask: Tensor | None, x_act: Tensor | None = None) -> Tensor:
        """``x_act``: leaky_relu(x) * mask when the caller already has it (shared by sibling blocks)."""
        for k, conv in enumerate(self.convs):
            y = conv(x_act if k == 0 and x_act is not None else _leaky_masked(x, mask))
            x = y.add_(x)  # x + conv(...), without a new buffer
        return x


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask


def _leaky_masked(x: Tensor, mask: Tensor | None, slope: float = LRELU_SLOPE) -> Tensor:
    """leaky_relu(x) * mask as one new tensor (for an x that is still needed)."""
    y = F.leaky_relu(x, slope)
    return y if mask is None else y.mul_(mask)


def _leaky_masked_(x: Tensor, mask: Tensor | None, slope: float = LRELU_SLOPE) -> Tensor:
    """leaky_relu(x) * mask, overwriting x (for an x used only through this)."""
    x = F.leaky_relu(x, slope, inplace=True)
    return x if mask is None else x.mul_(mask)


class Generator(nn.Module):
    """HiFi-GAN generator: latent frames -> waveform, upsampling by prod(up_rates)."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.rates = cfg.up_rates
        self.n_kernels = len(cfg.rb_kernels)
        self.conv_pre = ChannelsLastConv1d(cfg.inter, cfg.up_initial, 7, padding=3)
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = cfg.up_initial
        for rate, kernel in zip(cfg.up_rates, cfg.up_kernels):
            self.ups.append(
                ChannelsLastConvTranspose1d(ch, ch // 2, kernel, rate, padding=(kernel - rate) // 2))
            ch //= 2
            for k, d in zip(cfg.rb_kernels, cfg.rb_dilations):
                self.resblocks.append(block(ch, k, d))
        self.conv_post = ChannelsLastConv1d(ch, 1, 7, padding=3, bias=False)
        if cfg.gin:
            self.cond = nn.Conv1d(cfg.gin, cfg.up_initial, 1)

    def forward(self, z: Tensor, frame_mask: Tensor | None = None, g: Tensor | None = None) -> Tensor:
        """z [B, C, T] -> [B, T * hop]. ``frame_mask`` [B, 1, T] zeroes every conv input past each item's end."""
        x = self.conv_pre(_masked(z, frame_mask))
        if g is not None:
            x = x + self.cond(g)
        mask = frame_mask
        for i, (up, rate) in enumerate(zip(self.ups, self.rates)):
            # x is a fresh tensor used only through this activation: done in place.
            x = up(_leaky_masked_(x, mask))
            if mask is not None:
                mask = mask.repeat_interleave(rate, dim=-1)
            blocks = self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]
            # Every block starts with leaky_relu(x) * mask: computed once for all of them.
            x_act = _leaky_masked(x, mask)
            # Mean of the blocks' outputs, accumulated in place into the first one (a fresh tensor).
            acc = blocks[0](x, mask, x_act)
            for block in blocks[1:]:
                acc.add_(block(x, mask, x_act))
            x = acc.div_(self.n_kernels)
        x = self.conv_post(_leaky_masked_(x, mask, 0.01))  # Piper uses the default slope here
        return torch.tanh(x).squeeze(1)


# --------------------------------------------------------------------------- the model


@dataclass
class NoiseSpec:
    """Per-item randomness, so an item's audio does not depend on what it is batched with."""

    noise_scale: float = 0.667
    noise_w: float = 0.8
    length_scale: float = 1.0
    seed: int | None = None
    generator: torch.Generator | None = field(default=None, repr=False)

    def rng(self, device: torch.device) -> torch.Generator:
        if self.generator is None:
            self.generator = torch.Generator(device="cpu")
            if self.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(self.seed)
        return self.generator


class Vits(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_p = TextEncoder(cfg)
        self.dp = StochasticDurationPredictor(cfg)
        self.flow = ResidualCouplingBlock(cfg)
        self.dec = Generator(cfg)
        if cfg.n_speakers > 1:
            self.emb_g = nn.Embedding(cfg.n_speakers, cfg.gin)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def speaker_conditioning(self, speaker_ids: Tensor | None, batch: int) -> Tensor | None:
        """[B, gin, 1] speaker embedding for multi-speaker voices; None for single-speaker ones."""
        if self.cfg.n_speakers <= 1:
            return None
        if speaker_ids is None:
            speaker_ids = torch.zeros(batch, dtype=torch.long, device=self.emb_g.weight.device)
        return self.emb_g(speaker_ids).unsqueeze(-1)

    def acoustic(
        self,
        ids: Tensor,
        lengths: Tensor,
        noise: Sequence[NoiseSpec] | NoiseSpec | None = None,
        speaker_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Phoneme ids [B, T] -> (latent z [B, inter, frames], frame_lengths [B])."""
        z, frame_lengths, _ = self.acoustic_timed(ids, lengths, noise, speaker_ids)
        return z, frame_lengths

    @torch.inference_mode()
    def acoustic_timed(
        self,
        ids: Tensor,
        lengths: Tensor,
        noise: Sequence[NoiseSpec] | NoiseSpec | None = None,
        speaker_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``acoustic`` plus the durations it aligned with: frames per input id [B, T] (0 beyond
        each length); word timestamps are these times ``hop`` samples."""
        b, t = ids.shape
        specs = _per_item(noise, b)
        device = ids.device
        x, mean, log_std, x_mask = self.enc_p(ids, lengths)
        g = self.speaker_conditioning(speaker_ids, b)
        dtype = x.dtype

        dp_noise = _stack_noise([(2, int(n)) for n in lengths], specs, device, dtype, t, "noise_w")
        log_w = self.dp(x, x_mask, dp_noise, g=g)
        length_scale = torch.tensor([s.length_scale for s in specs], device=device, dtype=dtype)
        durations = torch.ceil(torch.exp(log_w) * x_mask * length_scale[:, None, None]).squeeze(1)
        frame_lengths = durations.sum(-1).clamp_min(1).long()
        frames = int(frame_lengths.max())

        # Length regulation: frame f of item b takes token idx = #tokens whose cumulative end <= f.
        ends = torch.cumsum(durations, dim=-1)
        steps = torch.arange(frames, device=device, dtype=dtype)
        token = (steps[None, :, None] >= ends[:, None, :]).sum(-1).clamp_max(t - 1)
        frame_mask = sequence_mask(frame_lengths, frames).unsqueeze(1).to(dtype)
        gather = token.unsqueeze(1).expand(-1, mean.shape[1], -1)
        mean_f = mean.gather(2, gather) * frame_mask
        log_std_f = log_std.gather(2, gather) * frame_mask

        eps = _stack_noise([(mean.shape[1], int(n)) for n in frame_lengths], specs, device, dtype, frames, "noise_scale")
        z_p = mean_f + eps * torch.exp(log_std_f)
        z = self.flow(z_p, frame_mask, g=g) * frame_mask
        return z, frame_lengths, durations.long()

    @torch.inference_mode()
    def vocoder(
        self, z: Tensor, frame_lengths: Tensor | None = None, speaker_ids: Tensor | None = None
    ) -> Tensor:
        """Latent [B, inter, frames] -> audio [B, frames * hop]; pass frame_lengths for padded batches."""
        mask = None
        if frame_lengths is not None and z.shape[0] > 1:
            mask = sequence_mask(frame_lengths, z.shape[-1]).unsqueeze(1).to(z.dtype)
        g = self.speaker_conditioning(speaker_ids, z.shape[0])
        dec_dtype = self.dec.conv_pre.weight.dtype
        audio = self.dec(z.to(dec_dtype), mask, g=None if g is None else g.to(dec_dtype))
        return audio.float()

    def vocoder_stream(
        self,
        z: Tensor,
        first_chunk: int = 20,
        chunk: int = 80,
        context: int = 16,
        speaker_ids: Tensor | None = None,
    ) -> Iterator[Tensor]:
        """Decode one item's latent [1, C, T] in chunks; each chunk is decoded with ``context``
        frames of overlap on both sides (>= the vocoder's receptive field) and trimmed, so the
        joined audio equals a one-shot decode. Yields [samples] tensors."""
        total = z.shape[-1]
        start = 0
        size = first_chunk
        while start < total:
            end = min(start + size, total)
            lo, hi = max(0, start - context), min(total, end + context)
            audio = self.vocoder(z[:, :, lo:hi], speaker_ids=speaker_ids)[0]
            yield audio[(start - lo) * self.hop : (end - lo) * self.hop]
            start, size = end, chunk


def _per_item(noise: Sequence[NoiseSpec] | NoiseSpec | None, batch: int) -> list[NoiseSpec]:
    if noise is None:
        return [NoiseSpec() for _ in range(batch)]
    if isinstance(noise, NoiseSpec):
        return [noise] * batch if batch == 1 else [NoiseSpec(noise.noise_scale, noise.noise_w,
                                                           noise.length_scale, noise.seed) for _ in range(batch)]
    if len(noise) != batch:
        raise ValueError(f"got {len(noise)} noise specs for a batch of {batch}")
    return list(noise)


def _stack_noise(
    shapes: list[tuple[int, int]], specs: list[NoiseSpec], device: torch.device, dtype: torch.dtype,
    width: int, scale_attr: str,
) -> Tensor:
    """Gaussian noise drawn per item at its own length (then zero-padded to ``width``)."""
    out = torch.zeros(len(specs), shapes[0][0], width, device=device, dtype=dtype)
    for i, ((channels, length), spec) in enumerate(zip(shapes, specs)):
        scale = getattr(spec, scale_attr)
        if scale == 0:
            continue
        draw = torch.randn(channels, length, generator=spec.rng(device))
        out[i, :, :length] = (draw * scale).to(device=device, dtype=dtype)
    return out
