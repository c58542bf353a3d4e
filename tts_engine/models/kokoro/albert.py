"""PL-BERT: the ALBERT encoder that gives Kokoro's duration predictor its phoneme context.

ALBERT (Lan et al., 2019) factorizes the embeddings (128 wide, projected to the 768-wide hidden
size) and shares one transformer layer across all 12 applications. Kokoro's copy (vocabulary
178, 12 heads, FFN 2048, ``gelu_new``) is inference-only here: no dropout, no pooler, token types
all zero. Padded batches mask padded keys out of attention; each item's outputs at its own
positions are then what a single run gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class AlbertConfig:
    vocab: int = 178
    embedding: int = 128
    hidden: int = 768
    heads: int = 12
    intermediate: int = 2048
    layers: int = 12
    max_positions: int = 512
    eps: float = 1e-12


class AlbertEmbeddings(nn.Module):
    def __init__(self, cfg: AlbertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab, cfg.embedding)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.embedding)
        self.token_type_embeddings = nn.Embedding(2, cfg.embedding)
        self.LayerNorm = nn.LayerNorm(cfg.embedding, eps=cfg.eps)

    def forward(self, tokens: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.word_embeddings(tokens) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x + self.position_embeddings(positions))


class AlbertAttention(nn.Module):
    def __init__(self, cfg: AlbertConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, x: Tensor, key_bias: Tensor | None) -> Tensor:
        b, t, c = x.shape

        def heads(y: Tensor) -> Tensor:
            return y.view(b, t, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias)
        return self.LayerNorm(x + self.dense(ctx.transpose(1, 2).reshape(b, t, c)))


class AlbertLayer(nn.Module):
    def __init__(self, cfg: AlbertConfig) -> None:
        super().__init__()
        self.attention = AlbertAttention(cfg)
        self.ffn = nn.Linear(cfg.hidden, cfg.intermediate)
        self.ffn_output = nn.Linear(cfg.intermediate, cfg.hidden)
        self.full_layer_layer_norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, x: Tensor, key_bias: Tensor | None) -> Tensor:
        x = self.attention(x, key_bias)
        h = self.ffn_output(F.gelu(self.ffn(x), approximate="tanh"))
        return self.full_layer_layer_norm(h + x)


class AlbertLayerGroup(nn.Module):
    def __init__(self, cfg: AlbertConfig) -> None:
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertLayer(cfg)])


class AlbertEncoder(nn.Module):
    def __init__(self, cfg: AlbertConfig) -> None:
        super().__init__()
        self.repeats = cfg.layers
        self.embedding_hidden_mapping_in = nn.Linear(cfg.embedding, cfg.hidden)
        self.albert_layer_groups = nn.ModuleList([AlbertLayerGroup(cfg)])

    def forward(self, x: Tensor, key_bias: Tensor | None) -> Tensor:
        x = self.embedding_hidden_mapping_in(x)
        layer = self.albert_layer_groups[0].albert_layers[0]
        for _ in range(self.repeats):
            x = layer(x, key_bias)
        return x


class Albert(nn.Module):
    """tokens [B, N] (+ lengths for padded batches) -> last hidden states [B, N, 768]."""

    def __init__(self, cfg: AlbertConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or AlbertConfig()
        self.embeddings = AlbertEmbeddings(cfg)
        self.encoder = AlbertEncoder(cfg)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        key_bias = None
        n = tokens.shape[1]
        if lengths is not None and bool((lengths < n).any()):
            valid = torch.arange(n, device=tokens.device)[None, :] < lengths[:, None]
            key_bias = torch.zeros(valid.shape, dtype=torch.float32, device=tokens.device)
            key_bias = key_bias.masked_fill(~valid, torch.finfo(torch.float32).min)[:, None, None, :]
        return self.encoder(self.embeddings(tokens), key_bias)
