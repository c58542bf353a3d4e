"""Building blocks shared by Kokoro's prosody predictor and decoder (StyleTTS 2 / iSTFTNet).

Batching contract: a tensor is ``[B, C, T]`` with an optional ``mask`` ``[B, 1, T]`` (1 = valid
frame). ``mask=None`` means every frame is valid (a batch of one). Every time-mixing operation
(convolutions, instance-norm statistics, LSTMs) sees only an item's valid frames, or zeros beyond
them exactly where a single run sees its zero padding, so each item of a padded batch comes out
as it would alone.

Instance-norm statistics can also be recorded and replayed (:class:`NormStats`): Kokoro's AdaIN
layers normalize over the *whole utterance*, so a chunked (streaming) decode must reuse the
one-shot statistics to reproduce the one-shot output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-5


def sequence_mask(lengths: Tensor, max_len: int) -> Tensor:
    """[B] lengths -> [B, 1, max_len] float mask."""
    steps = torch.arange(max_len, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(1).float()


def masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask.to(x.dtype)


@dataclass
class NormStats:
    """Per-AdaIN (mean, std) over an utterance: recorded by one pass, replayed by another."""

    values: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    record: bool = True

    def get(self, key: str) -> tuple[Tensor, Tensor] | None:
        return None if self.record else self.values[key]

    def put(self, key: str, mean: Tensor, std: Tensor) -> None:
        if self.record:
            self.values[key] = (mean, std)

    def replay(self) -> NormStats:
        return NormStats(self.values, record=False)


def instance_stats(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean, mean, sqrt(var + eps)) per channel over time, on valid frames only.

    The centered tensor is zero beyond each item's length when masked. Half-precision inputs
    get float32 statistics (squares of activations overflow fp16).
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        d, mean, std = instance_stats(x.float(), mask)
        return d.to(x.dtype), mean.to(x.dtype), std.to(x.dtype)
    if mask is None:
        mean = x.mean(-1, keepdim=True)
        d = x - mean
        var = torch.linalg.vector_norm(d, dim=-1, keepdim=True).square() / x.shape[-1]
    else:
        m = mask.to(x.dtype)
        n = m.sum(-1, keepdim=True)
        mean = (x * m).sum(-1, keepdim=True) / n
        d = (x - mean) * m
        var = torch.linalg.vector_norm(d, dim=-1, keepdim=True).square() / n
    return d, mean, torch.sqrt(var + EPS)


class AdaIN1d(nn.Module):
    """Instance norm over time, then a style-dependent affine: (1 + gamma(s)) * x_hat + beta(s).

    (The export's InstanceNorm1d had affine=True with identity weights; they were folded away.)
    """

    stat_key: str = ""

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.fc = nn.Linear(style_dim, channels * 2)

    def affine(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """(1 + gamma, beta), each [B, C, 1]."""
        h = self.fc(s).unsqueeze(-1)
        gamma, beta = h[:, : self.channels], h[:, self.channels:]
        return gamma + 1.0, beta

    def centered(self, x: Tensor, s: Tensor, mask: Tensor | None, stats: NormStats | None
                 ) -> tuple[Tensor, Tensor, Tensor]:
        """(x - mean, (1 + gamma) / std, beta): the output is ``d * a + beta``."""
        known = stats.get(self.stat_key) if stats is not None else None
        if known is None:
            d, mean, std = instance_stats(x, mask)
            if stats is not None:
                stats.put(self.stat_key, mean, std)
        else:
            mean, std = known
            d = x - mean
        scale, beta = self.affine(s)
        return d, scale / std, beta

    def forward(self, x: Tensor, s: Tensor, mask: Tensor | None = None, stats: NormStats | None = None) -> Tensor:
        d, a, beta = self.centered(x, s, mask, stats)
        return torch.addcmul(beta, d, a)

    def snake(self, x: Tensor, s: Tensor, alpha: Tensor, inv_alpha: Tensor, mask: Tensor | None = None,
              stats: NormStats | None = None) -> Tensor:
        """Snake(self(x)) in few passes over x: h = d a + beta, then h + sin(alpha h)^2 / alpha
        (1 / alpha as constant-folded by the export)."""
        d, a, beta = self.centered(x, s, mask, stats)
        h = torch.addcmul(beta, d, a)
        t = torch.addcmul(beta * alpha, d, a * alpha)
        if torch.is_grad_enabled():  # style fitting differentiates through this: no in-place ops
            return h + torch.sin(t).square() * inv_alpha
        t.sin_()
        t.mul_(t)
        return h.addcmul_(t, inv_alpha)


class AdaLayerNorm(nn.Module):
    """LayerNorm over channels (no affine), then (1 + gamma(s)) * x_hat + beta(s); x is [B, T, C]."""

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.fc = nn.Linear(style_dim, channels * 2)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        h = self.fc(s).unsqueeze(1)
        gamma, beta = h[..., : self.channels], h[..., self.channels:]
        return (gamma + 1.0) * F.layer_norm(x, (self.channels,), eps=EPS) + beta


@contextmanager
def one_intra_op_thread(x: Tensor) -> Iterator[None]:
    """Run small CPU ops on the calling thread only (no-op on other devices or with 1 thread).

    With two intra-op threads torch hands even tiny ops (tanh, copies, small GEMMs) to its thread
    pool; on a loaded 2-core VM every hand-off can wait out a descheduled worker, which made an
    LSTM over 93 steps take 0.2-2 s instead of 15 ms. ``torch.set_num_threads`` changes OpenMP's
    setting for the calling thread; restored on exit.
    """
    before = torch.get_num_threads()
    if x.device.type != "cpu" or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class BiLSTM(nn.LSTM):
    """Bidirectional, batch-first, one-layer LSTM run on each item's valid steps only.

    Parameters are nn.LSTM's (so state dicts load as usual); the forward pass is our own: one
    GEMM for both directions' input projections, then one step per time index for both
    directions at once, on one intra-op thread. torch's CPU LSTM goes through oneDNN, which
    builds a new primitive for every new sequence length (0.3-1.5 s each on our 2-core VM, i.e.
    on nearly every request).
    Beyond an item's length the backward direction starts from zeros at the item's last valid
    step (as with packed sequences); outputs there are zero.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, num_layers=1, batch_first=True, bidirectional=True)

    def _fused(self) -> tuple[Tensor, Tensor, Tensor]:
        """Input weights [8H, I] and biases [8H] of both directions, recurrent weights [2, H, 4H],
        with torch's gate order (i, f, g, o) changed to (i, f, o, g): one sigmoid covers 3H."""
        h = self.hidden_size

        def gates(t: Tensor) -> Tensor:
            i, f, g, o = t.split(h, dim=0)
            return torch.cat([i, f, o, g], dim=0)

        w_ih = torch.cat([gates(self.weight_ih_l0), gates(self.weight_ih_l0_reverse)])
        bias = torch.cat([gates(self.bias_ih_l0 + self.bias_hh_l0), gates(self.bias_ih_l0_reverse + self.bias_hh_l0_reverse)])
        w_hh = torch.stack([gates(self.weight_hh_l0).t(), gates(self.weight_hh_l0_reverse).t()])
        return w_ih, bias, w_hh

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """x [B, T, C_in] -> [B, T, 2H], zeros beyond each item's length."""
        b, t, _ = x.shape
        h_size = self.hidden_size
        w_ih, bias, w_hh = self._fused()
        proj = torch.nn.functional.linear(x, w_ih, bias)  # [B, T, 8H]
        valid = None
        if lengths is not None:
            valid = (torch.arange(t, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)  # [B, T]
        h = x.new_zeros(2, b, h_size)
        c = x.new_zeros(2, b, h_size)
        out = x.new_empty(b, t, 2 * h_size)
        with one_intra_op_thread(x):
            self._recur(proj, w_hh, h, c, out, valid)
        if valid is not None:
            out = out * valid[..., None]
        return out

    def _recur(self, proj: Tensor, w_hh: Tensor, h: Tensor, c: Tensor, out: Tensor, valid: Tensor | None) -> None:
        _b, t, _ = proj.shape
        h_size = self.hidden_size
        for step in range(t):
            back = t - 1 - step
            g = torch.baddbmm(torch.stack([proj[:, step, : 4 * h_size], proj[:, back, 4 * h_size:]]), h, w_hh)
            sig = torch.sigmoid(g[..., : 3 * h_size])
            i, f, o = sig[..., :h_size], sig[..., h_size: 2 * h_size], sig[..., 2 * h_size:]
            c = torch.addcmul(f * c, i, torch.tanh(g[..., 3 * h_size:]))
            h = o * torch.tanh(c)
            if valid is not None:  # the backward pass starts at each item's own end
                keep = valid[:, back, None]
                c[1] *= keep
                h[1] *= keep
            out[:, step, :h_size] = h[0]
            out[:, back, h_size:] = h[1]


class AdainResBlk1d(nn.Module):
    """StyleTTS 2's residual block: AdaIN -> LeakyReLU(0.2) -> [2x upsample] -> conv, twice.

    With ``upsample`` the residual path doubles the frame rate with a depthwise transposed conv
    (``pool``) and the shortcut with nearest-neighbour repetition; the sum is scaled by 1/sqrt(2).
    """

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1 = AdaIN1d(style_dim, dim_in)
        self.norm2 = AdaIN1d(style_dim, dim_out)
        self.conv1 = nn.Conv1d(dim_in, dim_out, 3, padding=1)
        self.conv2 = nn.Conv1d(dim_out, dim_out, 3, padding=1)
        self.conv1x1 = nn.Conv1d(dim_in, dim_out, 1, bias=False) if dim_in != dim_out else None
        if upsample:
            self.pool = nn.ConvTranspose1d(dim_in, dim_in, 3, stride=2, groups=dim_in, padding=1,
                                           output_padding=1)

    def forward(self, x: Tensor, s: Tensor, mask: Tensor | None = None, out_mask: Tensor | None = None,
                stats: NormStats | None = None) -> Tensor:
        """``mask`` covers x's frames; ``out_mask`` the output's (2x as many when upsampling)."""
        if not self.upsample:
            out_mask = mask
        h = F.leaky_relu(self.norm1(x, s, mask, stats), 0.2)
        if self.upsample:
            h = self.pool(masked(h, mask))
        h = self.conv1(masked(h, out_mask))
        h = F.leaky_relu(self.norm2(h, s, out_mask, stats), 0.2)
        h = self.conv2(masked(h, out_mask))
        short = x.repeat_interleave(2, dim=-1) if self.upsample else x
        if self.conv1x1 is not None:
            short = self.conv1x1(short)
        return (h + short) / 1.4142135381698608
