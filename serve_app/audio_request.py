"""What a synthesis route asks of the service and gets back, and the content address of a result.

Every route, whatever its wire format (native, OpenAI, GPT-SoVITS, CosyVoice, SSML plans), turns
its body into an ``AudioRequest``; the same text, voice, parameters, format and model always map
to the same ``cache_key``, so the phrase cache serves them all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from storage import StoredObject
from tts_engine.audio import encoders
from tts_engine.engine import Prepared, SynthesisOptions
from tts_engine.timestamps import WordTiming

AUDIO_PREFIX = "tts"


@dataclass
class AudioRequest:
    """What the service needs of any synthesis route, whatever its wire format."""

    text: str
    options: SynthesisOptions
    format: str
    sample_rate: int | None = None
    cache: bool = True
    request_id: str = ""
    # Extra identity for the cache key (e.g. the reference clip's content hash for adapted voices).
    conditioning_key: str = ""
    # Applied to the finished audio (voice adaptation); None for plain voices.
    transform: Callable[[np.ndarray, int], np.ndarray] | None = None
    # Voice matching (issue 13): applied to the text side's result before the cache key and the
    # render (a fitted style replaces the Kokoro controls); None for plain voices.
    condition: Callable[[Prepared], Prepared] | None = None
    # Auth (issue 11): the phrase-cache scope ("" = global; "tenant:<t>" keeps tenants' caches
    # apart) and where delivered audio is metered: meter(characters, seconds, cached).
    cache_scope: str = ""
    meter: Callable[[int, float, bool], None] | None = None
    # Word timestamps: answered with the audio and stored beside it (see serve_app/timed.py);
    # captions: "srt" | "vtt" side file made from them.
    timestamps: bool = False
    captions: str | None = None


@dataclass
class Result:
    key: str
    url: str
    duration_s: float
    sample_rate: int
    format: str
    voice: str
    cached: bool
    data: bytes | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stored: StoredObject | None = None
    words: list[WordTiming] | None = None     # rendered with the audio (None: not asked, or cached)
    captions_url: str | None = None


@dataclass
class Stream:
    """A streaming answer: headers known up front, bytes produced while synthesis runs."""

    key: str
    url: str
    content_type: str
    cached: bool
    body: AsyncIterator[bytes]
    sample_rate: int = 0


def cache_key(prepared: Prepared, fmt: str, rate: int, conditioning: str = "", scope: str = "") -> str:
    """Content address of a result: same text, voice, parameters, format and model -> same key."""
    identity = {
        "text": prepared.normalized_text,
        "voice": prepared.voice.id,
        "speaker": prepared.speaker_id,
        "language": prepared.language,
        **prepared.control_identity,   # the model family's own knobs (noise, length, style, ...)
        "seed": prepared.seed if prepared.seed_given else None,
        "volume": prepared.volume,
        "pitch": prepared.pitch,
        "format": fmt,
        "sample_rate": rate,
        "model": prepared.model_version,
        "conditioning": conditioning,
    }
    # Only when asked for, so the keys of every request without them stay what they were.
    if prepared.split != "sentence":
        identity["split"] = prepared.split
    if prepared.pause_s is not None:
        identity["pause_s"] = prepared.pause_s
    if scope:  # only when scoped, so global keys stay what they were
        identity["scope"] = scope
    if prepared.pronunciation_key:  # lexicon entries / SSML <phoneme>: a changed reading changes the audio
        identity["pronunciations"] = prepared.pronunciation_key
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{AUDIO_PREFIX}/{digest[:2]}/{digest}.{encoders.FILE_EXTENSIONS[fmt]}"
