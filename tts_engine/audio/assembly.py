"""Putting rendered sentences together: pauses between them, pitch, volume, clipping, and the
silence at a piece's edges (a model that pads its pieces with long silence has it trimmed).

Plain functions so the ingress (which has no model) and the engine share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tts_engine.models.protocol import Rendered

FRAME_S = 0.01
SILENCE_DB = -40.0   # a 10 ms frame this far below the loudest is silence


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


def loud_frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """One flag per ``FRAME_S`` of ``audio``: whether it is within ``SILENCE_DB`` of the loudest."""
    hop = max(1, int(FRAME_S * sample_rate))
    frames = len(audio) // hop
    if frames == 0:
        return np.zeros(0, dtype=bool)
    rms = np.sqrt(np.mean(np.square(audio[: frames * hop].reshape(frames, hop), dtype=np.float64), axis=1))
    return rms > max(float(rms.max()) * 10 ** (SILENCE_DB / 20), 1e-5)


def speech_trimmed(piece: Rendered, sample_rate: int, lead_keep_s: float, tail_keep_s: float) -> Rendered:
    """``piece`` from ``lead_keep_s`` before its first loud frame to ``tail_keep_s`` after its last
    (all of it when nothing is loud); its durations are cut and shifted with it."""
    loud = loud_frames(piece.audio, sample_rate)
    if not loud.any():
        return piece
    hop = max(1, int(FRAME_S * sample_rate))
    start = max(0, int(np.argmax(loud)) * hop - int(lead_keep_s * sample_rate))
    end = min(len(piece.audio), (len(loud) - int(np.argmax(loud[::-1]))) * hop + int(tail_keep_s * sample_rate))
    return Rendered(piece.audio[start:end], *_durations_within(piece.durations, piece.offset, start, end))


def _durations_within(durations: tuple[int, ...] | None, offset: int, start: int,
                      end: int) -> tuple[tuple[int, ...] | None, int]:
    """(durations, offset) of the symbols cut to samples ``start:end``, counted from ``start``: a
    symbol whose sound (often a final stop's parked pause) reaches past a cut edge is shortened."""
    if durations is None:
        return None, max(0, offset - start)
    bounds = np.clip(np.cumsum([offset, *durations]), start, end) - start
    return tuple(int(d) for d in np.diff(bounds)), int(bounds[0])
