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


def instance_stats(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-channel mean and sqrt(var + eps) over time (valid frames only), [B, C, 1] each."""
    if mask is None:
        mean = x.mean(-1, keepdim=True)
        d = x - mean
        var = (d * d).mean(-1, keepdim=True)
    else:
        m = mask.to(x.dtype)
        n = m.sum(-1, keepdim=True)
        mean = (x * m).sum(-1, keepdim=True) / n
        d = (x - mean) * m
        var = (d * d).sum(-1, keepdim=True) / n
    return mean, torch.sqrt(var + EPS)


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

    def forward(self, x: Tensor, s: Tensor, mask: Tensor | None = None, stats: NormStats | None = None) -> Tensor:
        known = stats.get(self.stat_key) if stats is not None else None
        if known is None:
            mean, std = instance_stats(x, mask)
            if stats is not None:
                stats.put(self.stat_key, mean, std)
        else:
            mean, std = known
        scale, beta = self.affine(s)
        return scale * ((x - mean) / std) + beta


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


class BiLSTM(nn.LSTM):
    """Bidirectional, batch-first, one-layer nn.LSTM run on each item's valid steps only."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """x [B, T, C_in] -> [B, T, 2H], zeros beyond each item's length."""
        if lengths is None or bool((lengths == x.shape[1]).all()):
            return super().forward(x)[0]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = super().forward(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def snake(x: Tensor, alpha: Tensor, inv_alpha: Tensor) -> Tensor:
    """Snake activation x + sin(alpha x)^2 / alpha (1/alpha as constant-folded by the export)."""
    return x + inv_alpha * torch.sin(alpha * x).pow(2)


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
