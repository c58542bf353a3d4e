"""The one interface every model family implements, so the engine and deployments never branch on it.

A *family* (Piper VITS, Kokoro, ...) owns three things:

* its voices (cheap to list: no weights loaded),
* the text side for its voices: text -> sentences of phoneme ids (``frontend``) and the per-sentence
  controls that travel with them (noise and length for VITS, style vector and speed for Kokoro),
* its models: ``load(voice)`` -> a :class:`SpeechModel` that renders ids to audio, batched or chunked.

Everything that crosses a process boundary (``RenderItem``, controls) is a small picklable value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from tts_engine.text.frontend import FrontendResult
    from tts_engine.voices import VoiceInfo


@dataclass(frozen=True)
class RenderItem:
    """One sentence to render: the voice, its phoneme ids and the family's controls for it."""

    voice: str
    ids: list[int]
    control: Any                      # family-specific, picklable (e.g. NoiseSpec, KokoroControl)
    speaker: int | None = None


@dataclass(frozen=True)
class Rendered:
    """A rendered sentence (or, streaming, one chunk of it) and, where known, how long each input
    symbol sounds: ``durations[i]`` samples for ``item.ids[i]``, after ``offset`` leading samples
    (Kokoro's boundary pad). Word timestamps come from these (``tts_engine/timestamps.py``).
    In a stream only the first chunk carries durations (the acoustic stage knows them all)."""

    audio: np.ndarray
    durations: tuple[int, ...] | None = None
    offset: int = 0

    @staticmethod
    def of(value: "Rendered | np.ndarray") -> "Rendered":
        """A bare waveform (a handle or fake that knows no durations) as a Rendered."""
        return value if isinstance(value, Rendered) else Rendered(np.asarray(value, dtype=np.float32))


@dataclass(frozen=True)
class StreamChunking:
    """How a streamed sentence is cut: seconds of audio in the first chunk and in later ones, and the
    decoder overlap each side; each model rounds them to its own frames."""

    first_s: float
    chunk_s: float
    context_s: float

    def frames(self, frame_s: float) -> tuple[int, int, int]:
        """(first, chunk, context) in frames of ``frame_s`` seconds; chunks of at least one frame."""
        return (max(1, round(self.first_s / frame_s)), max(1, round(self.chunk_s / frame_s)),
                max(0, round(self.context_s / frame_s)))


class SpeechModel(Protocol):
    sample_rate: int

    def render_batch(self, items: Sequence[RenderItem]) -> list[Rendered]:
        """One waveform (float32 mono) with its symbol durations per item; items may be rendered
        as one padded batch."""

    def render_stream(self, item: RenderItem, chunking: StreamChunking) -> Iterator[Rendered]:
        """One sentence as consecutive chunks whose audio concatenated equals ``render_batch([item])``'s;
        the first chunk carries the durations."""


class ModelFamily(Protocol):
    name: str
    # Whether a stream hears a piece's first audio before the whole piece is decoded. Where not
    # (Kokoro), a stream's first sentence is cut after a clause so first audio comes sooner.
    streams_within_piece: bool
    # Whether its renders reuse built oneDNN primitives (widths rounded to a few sizes): a process
    # whose first model is such a family keeps Settings.onednn_primitive_cache of them, others 16.
    reuses_built_shapes: bool

    def voices(self) -> list["VoiceInfo"]:
        """The family's voices, without loading weights."""

    def frontend(self, text: str, voice: "VoiceInfo", language: str, split: str = "sentence",
                 pronunciations: Sequence = ()) -> "FrontendResult":
        """Validated text -> normalized pieces (cut by ``split``, see text/split_methods.py) with
        phoneme ids for ``voice``; placeholders in ``text`` are read as ``pronunciations``
        (text/pronounce.py)."""

    def controls(self, voice: "VoiceInfo", options: Any, n_sentences: int, seed: int) -> list[Any]:
        """The per-sentence controls for ``options`` (speed, noise, seed, ...)."""

    def cache_identity(self, control: Any) -> dict:
        """What of a control changes the audio: part of the phrase-cache key."""

    def load(self, voice: "VoiceInfo", device: str) -> SpeechModel:
        """The voice's model, ready to render on ``device``."""

    def version(self, voice: "VoiceInfo") -> str:
        """Changes whenever the voice's weights or our implementation change (cache keys)."""
