"""Putting rendered sentences together: pauses between them, pitch, volume, clipping.

Plain functions so the ingress (which has no model) and the engine share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(int(seconds * sample_rate), dtype=np.float32)


def join_sentences(pieces: Sequence[np.ndarray], sample_rate: int, pause_s: float) -> np.ndarray:
    """Sentences in order with a natural pause between them."""
    gap = silence(pause_s, sample_rate)
    out: list[np.ndarray] = []
    for i, piece in enumerate(pieces):
        if i:
            out.append(gap)
        out.append(piece)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def finish_audio(audio: np.ndarray, sample_rate: int, volume: float = 1.0, pitch: float = 0.0) -> np.ndarray:
    """Pitch shift (semitones, duration unchanged) and volume, clipped to [-1, 1]."""
    if pitch:
        from tts_engine.audio.adapt import shift_pitch  # WORLD is only needed when pitch is asked for

        audio = shift_pitch(audio, sample_rate, pitch)
    if volume != 1.0:
        audio = audio * volume
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)
