"""Kokoro's text encoder: phoneme embeddings -> 3 x (conv5, LayerNorm, LeakyReLU) -> BiLSTM.

Its per-phoneme output, stretched by the predicted durations, is the decoder's content input
("asr" features in StyleTTS 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import EPS, BiLSTM, masked


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a [B, C, T] tensor (StyleTTS 2 names: gamma/beta)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.gamma, self.beta, EPS)
        return y.transpose(1, 2)


class TextEncoder(nn.Module):
    def __init__(self, vocab: int = 178, channels: int = 512, kernel: int = 5, depth: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, channels)
        self.cnn = nn.ModuleList(
            nn.ModuleList([nn.Conv1d(channels, channels, kernel, padding=kernel // 2), ChannelLayerNorm(channels)])
            for _ in range(depth)
        )
        self.lstm = BiLSTM(channels, channels // 2)

    def forward(self, tokens: Tensor, lengths: Tensor | None, mask: Tensor | None) -> Tensor:
        """tokens [B, N] -> [B, 512, N] (zeros beyond each item's length)."""
        x = masked(self.embedding(tokens).transpose(1, 2), mask)
        for conv, norm in self.cnn:
            x = masked(F.leaky_relu(norm(conv(x)), 0.2), mask)
        x = self.lstm(x.transpose(1, 2), lengths).transpose(1, 2)
        return masked(x, mask)
