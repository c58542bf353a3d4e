"""The text encoder: phoneme embeddings through relative-position self-attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import VitsConfig
from .layers import LayerNorm, OneDNNConv1d, PointwiseConv1d, sequence_mask


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
