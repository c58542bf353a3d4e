"""Reference voices: validate a clip, analyse it, condition synthesis on it, keep registered voices.

What this does, honestly: no zero-shot cloning model can be installed here, so speaker
identity is not cloned. The working ``VoiceConditioning`` is *voice adaptation*: the
default voice's output is moved toward the reference's pitch (log-F0 median and spread),
vocal-tract length (formant warp) and long-term spectral balance with WORLD. A zero-shot
backend can be added later as another ``VoiceConditioning`` without touching deployments.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from tts_engine.errors import InvalidInput, VoxServeError
from tts_engine.settings import Settings

MIN_RMS_DBFS = -45.0        # quieter than this is silence or a broken microphone
MAX_CLIPPED_FRACTION = 0.01  # more than 1% of samples at full scale is heavy clipping
SIMILARITY_SENTENCE = "The quick brown fox jumps over the lazy dog, and then it rests in the warm sun."
METHOD = ("voice adaptation: pitch (log-F0 median and spread), vocal-tract length (formant warp) "
          "and long-term spectral balance matched to the reference with the WORLD vocoder; "
          "not identity cloning")


# ---------------------------------------------------------------------- the reference clip


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_reference(audio: np.ndarray, sample_rate: int, settings: Settings, field_name: str) -> float:
    """Duration in seconds, or InvalidInput (422) saying what is wrong with the clip."""
    duration = len(audio) / sample_rate
    lo, hi = settings.reference_min_s, settings.reference_max_s
    if not lo <= duration <= hi:
        raise InvalidInput(f"reference audio is {duration:.1f} s; it must be between {lo:g} and {hi:g} s",
                           field=field_name)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    level = 20 * np.log10(max(rms, 1e-10))
    if level < MIN_RMS_DBFS:
        raise InvalidInput(f"reference audio is silent or too quiet ({level:.0f} dBFS; needs above "
                           f"{MIN_RMS_DBFS:.0f} dBFS)", field=field_name)
    clipped = float(np.mean(np.abs(audio) >= 0.999))
    if clipped > MAX_CLIPPED_FRACTION:
        raise InvalidInput(f"reference audio is heavily clipped ({clipped:.1%} of samples at full scale; "
                           f"at most {MAX_CLIPPED_FRACTION:.0%} allowed)", field=field_name)
    return duration


def decode_reference(data: bytes, settings: Settings, field_name: str) -> tuple[np.ndarray, int]:
    """Decoded mono clip after every check (415 not audio, 422 length/level/clipping)."""
    from tts_engine.audio.encoders import decode

    try:
        audio, rate = decode(data, max_seconds=settings.reference_max_s + 1)
    except VoxServeError as exc:
        # The decoder knows what is wrong (not audio, too long), not which request field it came in.
        exc.field = exc.field or field_name
        raise
    check_reference(audio, rate, settings, field_name)
    return audio, rate


@dataclass
class Reference:
    """What the service keeps of a clip: its speaker embedding and voice profile."""

    hash: str
    embedding: list[float]
    profile: dict
    duration_s: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Reference":
        return cls(**json.loads(data))


def analyze_reference(data: bytes, settings: Settings, encoder) -> Reference:
    from tts_engine.audio.adapt import analyze_voice

    audio, rate = decode_reference(data, settings, "reference_audio")
    embedding = encoder.embed(audio, rate)
    profile = analyze_voice(audio, rate)
    return Reference(content_hash(data), [float(x) for x in embedding], profile.to_dict(), len(audio) / rate)


# ---------------------------------------------------------------------- conditioning


class VoiceConditioning(Protocol):
    """How a reference shapes synthesis, at two points:

    * ``condition(prepared)``: model side, before rendering -- it may replace the per-sentence
      controls (a fitted Kokoro style, see ``StyleConditioning``; a zero-shot model's speaker
      prompt would travel the same way, as part of the family's control);
    * ``apply(audio)``: a post-filter on the rendered audio (the WORLD adaptation).

    ``speaker`` picks a built-in speaker (multi-speaker voices). The deployments never look
    inside: the ingress calls ``condition`` on the text side's result and passes ``apply`` on.
    """

    speaker: int | None

    def condition(self, prepared): ...

    def apply(self, audio: np.ndarray, sample_rate: int) -> np.ndarray: ...

    def identity(self) -> str: ...


@dataclass
class AdaptationConditioning:
    """Adapt the synthesized audio toward the reference's profile (WORLD DSP)."""

    profile: dict
    speaker: int | None = None

    def condition(self, prepared):
        return prepared

    def apply(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        from tts_engine.audio.adapt import VoiceProfile, adapt_to_profile

        return adapt_to_profile(audio, sample_rate, VoiceProfile.from_dict(self.profile))

    def identity(self) -> str:
        return "adapt:" + hashlib.sha256(json.dumps(self.profile, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class NearestSpeakerConditioning:
    """For multi-speaker voices: the built-in speaker whose embedding is nearest the reference."""

    speaker: int | None

    def condition(self, prepared):
        return prepared

    def apply(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return audio

    def identity(self) -> str:
        return f"speaker:{self.speaker}"


@dataclass
class StyleConditioning:
    """Voice matching: every Kokoro sentence takes its style from a fitted style pack
    ([510, 256], row = phoneme count - 1), optionally followed by the WORLD post-filter.

    Sentences of other families pass unchanged (a Piper voice has no style to replace)."""

    pack: np.ndarray
    post: AdaptationConditioning | None = None
    speaker: int | None = None

    def condition(self, prepared):
        from dataclasses import replace as _replace

        from tts_engine.models.kokoro_family import KokoroControl

        controls = []
        for sentence, control in zip(prepared.sentences, prepared.controls):
            if not isinstance(control, KokoroControl):
                return prepared
            row = self.pack[min(max(len(sentence.ids), 1), len(self.pack)) - 1]
            controls.append(_replace(control, style=tuple(float(x) for x in row)))
        identity = {**prepared.control_identity, "style": "pack:" + self.pack_digest()}
        return _replace(prepared, controls=controls, control_identity=identity)

    def apply(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return audio if self.post is None else self.post.apply(audio, sample_rate)

    def pack_digest(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.pack, dtype=np.float32).tobytes()).hexdigest()[:16]

    def identity(self) -> str:
        post = "" if self.post is None else "+" + self.post.identity()
        return f"style:{self.pack_digest()}{post}"


def nearest_speaker(reference: np.ndarray, speaker_embeddings: dict[int, np.ndarray]) -> int:
    from tts_engine.speaker.ge2e import similarity

    return max(speaker_embeddings, key=lambda s: similarity(reference, speaker_embeddings[s]))
