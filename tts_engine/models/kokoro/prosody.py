"""Kokoro's prosody predictor (StyleTTS 2): phoneme durations, then F0 and energy (N) curves.

- ``DurationEncoder``: 3 x (BiLSTM over [context; style], AdaLayerNorm(style)) on PL-BERT's output;
- durations: BiLSTM -> Linear(512, 50) -> sigmoid, summed over the 50 bins, divided by the speed,
  rounded half-to-even, at least 1 frame per phoneme (a frame is 600 samples, 25 ms);
- F0 / N: a shared BiLSTM over the frame-aligned features, then two stacks of AdaIN residual
  blocks (the second block doubles the frame rate) and a 1x1 projection each.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import AdainResBlk1d, AdaLayerNorm, BiLSTM, NormStats, masked


class DurationEncoder(nn.Module):
    def __init__(self, style_dim: int = 128, d_model: int = 512, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [BiLSTM(d_model + style_dim, d_model // 2), AdaLayerNorm(style_dim, d_model)]
        self.lstms = nn.ModuleList(blocks)

    def forward(self, x: Tensor, s: Tensor, lengths: Tensor | None, mask: Tensor | None) -> Tensor:
        """x [B, N, 512] (PL-BERT projected), s [B, 128] -> [B, N, 640] (features ++ style)."""
        style = s[:, None, :].expand(-1, x.shape[1], -1)
        token_mask = None if mask is None else mask.transpose(1, 2)
        x = masked(torch.cat([x, style], dim=-1), token_mask)
        for block in self.lstms:
            if isinstance(block, AdaLayerNorm):
                x = masked(torch.cat([block(x, s), style], dim=-1), token_mask)
            else:
                x = block(x, lengths)
        return x


class LinearNorm(nn.Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(d_in, d_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_layer(x)


class ProsodyPredictor(nn.Module):
    def __init__(self, style_dim: int = 128, d_hid: int = 512, layers: int = 3, max_dur: int = 50) -> None:
        super().__init__()
        self.text_encoder = DurationEncoder(style_dim, d_hid, layers)
        self.lstm = BiLSTM(d_hid + style_dim, d_hid // 2)
        self.duration_proj = LinearNorm(d_hid, max_dur)
        self.shared = BiLSTM(d_hid + style_dim, d_hid // 2)
        half = d_hid // 2
        self.F0 = nn.ModuleList([AdainResBlk1d(d_hid, d_hid, style_dim),
                                 AdainResBlk1d(d_hid, half, style_dim, upsample=True),
                                 AdainResBlk1d(half, half, style_dim)])
        self.N = nn.ModuleList([AdainResBlk1d(d_hid, d_hid, style_dim),
                                AdainResBlk1d(d_hid, half, style_dim, upsample=True),
                                AdainResBlk1d(half, half, style_dim)])
        self.F0_proj = nn.Conv1d(half, 1, 1)
        self.N_proj = nn.Conv1d(half, 1, 1)

    def durations(self, d: Tensor, lengths: Tensor | None, speed: Tensor) -> Tensor:
        """d [B, N, 640], speed [B] -> integer frames per token [B, N] (0 beyond each length)."""
        x = self.lstm(d, lengths)
        total = torch.sigmoid(self.duration_proj(x)).sum(-1) / speed[:, None]
        frames = torch.round(total).clamp(min=1).long()
        if lengths is not None:
            frames = frames * (torch.arange(d.shape[1], device=d.device)[None, :] < lengths[:, None])
        return frames

    def f0_energy(self, en: Tensor, s: Tensor, frames: Tensor | None, mask: Tensor | None,
                  mask2: Tensor | None, stats: NormStats | None = None) -> tuple[Tensor, Tensor]:
        """Aligned features en [B, 640, F] -> (F0, N), each [B, 2F] (zeros beyond 2 * frames)."""
        x = masked(self.shared(en.transpose(1, 2), frames).transpose(1, 2), mask)
        curves = []
        for blocks, proj in ((self.F0, self.F0_proj), (self.N, self.N_proj)):
            h = blocks[0](x, s, mask, stats=stats)
            h = blocks[1](h, s, mask, mask2, stats)  # doubles the frame rate
            h = blocks[2](h, s, mask2, stats=stats)
            curves.append(masked(proj(h), mask2).squeeze(1))
        return curves[0], curves[1]


def align(features: Tensor, durations: Tensor, total: int) -> Tensor:
    """Repeat each token's feature vector for its duration: [B, C, N] -> [B, C, total].

    Equal to ``features @ alignment`` with the one-hot alignment matrix the export builds
    (``CumSum``, ``Range``, comparisons); frames beyond an item's length are zero.
    """
    ends = torch.cumsum(durations, dim=1)  # [B, N]
    steps = torch.arange(total, device=features.device)
    index = torch.searchsorted(ends, steps.expand(ends.shape[0], -1).contiguous(), right=True)
    valid = steps[None, :] < ends[:, -1:]
    index = index.clamp(max=features.shape[-1] - 1)
    out = features.gather(2, index[:, None, :].expand(-1, features.shape[1], -1))
    return out * valid[:, None, :].to(out.dtype)
