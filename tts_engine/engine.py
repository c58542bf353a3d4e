"""The engine: text in, audio out, no Ray. The whole public surface in one class.

    engine = TTSEngine()
    result = engine.synthesize("Hello world.", voice="en_US-joe-medium", speed=1.1, seed=7)
    result.audio, result.sample_rate

The serving layer uses the two halves separately: ``prepare`` (text side: validate,
normalize, phonemize; no model needed) and ``render_batch`` / ``render_stream``
(model side: acoustic + vocoder on phoneme ids, batched or chunked).
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from tts_engine.audio.assembly import finish_audio, join_sentences, silence
from tts_engine.errors import InvalidInput, TextTooLong, UnsupportedLanguage
from tts_engine.models.fastpath import keep_freed_memory_mapped
from tts_engine.text.frontend import Sentence, TextFrontend
from tts_engine.settings import Settings, get_settings
from tts_engine.models.vits import NoiseSpec, Vits
from tts_engine.voices import VoiceCatalog, VoiceInfo
from tts_engine.models.vits_weights import load_vits

SPEED_RANGE = (0.5, 2.0)
NOISE_RANGE = (0.0, 2.0)
VOLUME_RANGE = (0.0, 4.0)
PITCH_RANGE = (-12.0, 12.0)
ENGINE_VERSION = "vits-torch-1"
IDS_PER_SECOND = 48  # measured on en_US-joe-medium at speed 1 (Piper ids: phonemes with pads between)


@dataclass(frozen=True)
class SynthesisOptions:
    """Every knob of one synthesis; None means the voice's own default."""

    voice: str | None = None
    language: str = "auto"
    speed: float = 1.0
    noise_scale: float | None = None
    noise_w: float | None = None
    seed: int | None = None
    volume: float = 1.0
    pitch: float = 0.0
    speaker: str | int | None = None

    def validated(self) -> "SynthesisOptions":
        _check_range("speed", self.speed, SPEED_RANGE)
        _check_range("volume", self.volume, VOLUME_RANGE)
        _check_range("pitch", self.pitch, PITCH_RANGE)
        for name in ("noise_scale", "noise_w"):
            value = getattr(self, name)
            if value is not None:
                _check_range(name, value, NOISE_RANGE)
        if self.seed is not None and not (0 <= self.seed < 2**63):
            raise InvalidInput("seed must be an integer between 0 and 2**63-1", field="seed")
        return self


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    if not (lo <= value <= hi):
        raise InvalidInput(f"{name} must be between {lo} and {hi} (got {value})", field=name)


@dataclass
class Prepared:
    """The text side's output: everything the model side needs, picklable."""

    voice: VoiceInfo
    language: str
    sentences: list[Sentence]
    noise: list[NoiseSpec]
    speaker_id: int | None
    seed: int
    volume: float = 1.0
    pitch: float = 0.0
    dropped: list[str] = field(default_factory=list)
    model_version: str = ""
    seed_given: bool = False   # a random seed must not make the result a cache identity

    @property
    def normalized_text(self) -> str:
        return " ".join(s.text for s in self.sentences)


@dataclass
class Synthesis:
    audio: np.ndarray          # float32 mono in [-1, 1]
    sample_rate: int
    voice: str
    language: str
    seed: int
    dropped: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


class TTSEngine:
    def __init__(self, settings: Settings | None = None, device: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.voices = VoiceCatalog(self.settings)
        self.frontend = TextFrontend(self.settings.max_text_chars, self.settings.max_sentence_chars)
        self.device = torch.device(device or _pick_device(self.settings.device))
        self._models: dict[str, Vits] = {}
        self._lock = threading.Lock()
        self._version_cache: dict[str, str] = {}
        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        if self.device.type == "cpu":
            keep_freed_memory_mapped()  # no page faults on the vocoder's large buffers (see fastpath.py)

    # ------------------------------------------------------------------ the simple API

    def synthesize(self, text: str, options: SynthesisOptions | None = None, **kwargs) -> Synthesis:
        """Whole-utterance synthesis: all sentences in one padded batch, joined with pauses."""
        prepared = self.prepare(text, _options(options, kwargs))
        pieces = self.render_batch(prepared.voice.id, _items(prepared))
        return self.finish(prepared, pieces)

    def stream(self, text: str, options: SynthesisOptions | None = None, **kwargs) -> Iterator[np.ndarray]:
        """Audio chunks as they are vocoded, sentence by sentence (pauses included)."""
        prepared = self.prepare(text, _options(options, kwargs))
        for i, (ids, noise, speaker) in enumerate(_items(prepared)):
            if i:
                yield silence(self.settings.sentence_pause_s, prepared.voice.sample_rate)
            for chunk in self.render_stream(prepared.voice.id, ids, noise, speaker):
                yield finish_audio(chunk, prepared.voice.sample_rate, prepared.volume, prepared.pitch)

    # ------------------------------------------------------------------ text side

    def prepare(self, text: str, options: SynthesisOptions) -> Prepared:
        options = options.validated()
        voice = self.voices.get(options.voice)
        result = self.frontend.process(text, voice.espeak_voice, voice.phoneme_id_map, options.language)
        if result.language not in voice.languages:
            able = self.voices.speaking(result.language)
            raise UnsupportedLanguage(
                f"voice '{voice.id}' speaks {voice.languages}, not '{result.language}'; "
                f"voices that can: {able or 'none installed'}",
                field="language",
            )
        seed = options.seed if options.seed is not None else random.randrange(2**31)
        base = NoiseSpec(
            noise_scale=voice.noise_scale if options.noise_scale is None else options.noise_scale,
            noise_w=voice.noise_w if options.noise_w is None else options.noise_w,
            length_scale=voice.length_scale / options.speed,
        )
        _check_work(result.sentences, options.speed, self.settings.max_phonemes)
        dropped = sorted({p for s in result.sentences for p in s.dropped})
        return Prepared(
            voice=voice,
            language=result.language,
            sentences=result.sentences,
            noise=[replace(base, seed=seed + i) for i in range(len(result.sentences))],
            speaker_id=voice.speaker_id(options.speaker),
            seed=seed,
            volume=options.volume,
            pitch=options.pitch,
            dropped=dropped,
            model_version=self.model_version(voice.id),
            seed_given=options.seed is not None,
        )

    # ------------------------------------------------------------------ model side

    def model(self, voice_id: str) -> Vits:
        """The voice's model, loaded once per process."""
        with self._lock:
            if voice_id not in self._models:
                model = load_vits(self.voices.get(voice_id).model_path).to(self.device)
                if self.settings.fp16 and self.device.type == "cuda":
                    model.dec.half()  # the vocoder dominates run time and tolerates fp16
                self._models[voice_id] = model
            return self._models[voice_id]

    def render_batch(
        self, voice_id: str, items: Sequence[tuple[list[int], NoiseSpec, int | None]]
    ) -> list[np.ndarray]:
        """Phoneme-id sequences -> one waveform each, computed as one padded batch."""
        model = self.model(voice_id)
        lengths = torch.tensor([len(ids) for ids, _, _ in items], device=self.device)
        batch = torch.zeros(len(items), int(lengths.max()), dtype=torch.long, device=self.device)
        for row, (ids, _, _) in enumerate(items):
            batch[row, : len(ids)] = torch.tensor(ids)
        speakers = _speaker_tensor([s for _, _, s in items], self.device)
        # Fresh NoiseSpecs so a spec's RNG state never leaks between calls.
        noise = [replace(n, generator=None) for _, n, _ in items]
        z, frames = model.acoustic(batch, lengths, noise, speakers)
        audio = model.vocoder(z, frames, speakers).cpu().numpy()
        return [audio[i, : int(frames[i]) * model.hop] for i in range(len(items))]

    def render_stream(
        self, voice_id: str, ids: list[int], noise: NoiseSpec, speaker_id: int | None
    ) -> Iterator[np.ndarray]:
        """One sentence, vocoded in overlapping chunks (first one ~0.23 s) as they are ready."""
        model = self.model(voice_id)
        batch = torch.tensor([ids], device=self.device)
        speakers = _speaker_tensor([speaker_id], self.device)
        z, _ = model.acoustic(batch, torch.tensor([len(ids)], device=self.device),
                              [replace(noise, generator=None)], speakers)
        s = self.settings
        for chunk in model.vocoder_stream(z, s.stream_first_chunk_frames, s.stream_chunk_frames,
                                          s.stream_context_frames, speakers):
            yield chunk.cpu().numpy()

    # ------------------------------------------------------------------ assembly

    def finish(self, prepared: Prepared, pieces: Sequence[np.ndarray]) -> Synthesis:
        rate = prepared.voice.sample_rate
        audio = join_sentences(pieces, rate, self.settings.sentence_pause_s)
        audio = finish_audio(audio, rate, prepared.volume, prepared.pitch)
        return Synthesis(audio, rate, prepared.voice.id, prepared.language, prepared.seed, prepared.dropped)

    def model_version(self, voice_id: str) -> str:
        """Changes whenever the voice's weights or our engine change (part of cache keys)."""
        if voice_id not in self._version_cache:
            digest = hashlib.sha256()
            with open(self.voices.get(voice_id).model_path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            self._version_cache[voice_id] = f"{ENGINE_VERSION}:{digest.hexdigest()[:16]}"
        return self._version_cache[voice_id]


def _check_work(sentences: Sequence[Sentence], speed: float, limit: int) -> None:
    """Bound what one request may make the model do: audio length (and so vocoder time, memory and
    file size) grows with phoneme ids / speed, which a short text can blow up ("9" x 4000)."""
    ids = sum(len(s.ids) for s in sentences)
    if ids / speed > limit:
        raise TextTooLong(
            f"text expands to {ids} phoneme ids at speed {speed:g} ({ids / speed:.0f} speed-adjusted); "
            f"the limit is max_phonemes={limit} (about {limit / IDS_PER_SECOND / 60:.0f} min of audio)",
            field="text",
        )


def _items(prepared: Prepared) -> list[tuple[list[int], NoiseSpec, int | None]]:
    return [(s.ids, n, prepared.speaker_id) for s, n in zip(prepared.sentences, prepared.noise)]


def _options(options: SynthesisOptions | None, overrides: dict) -> SynthesisOptions:
    return replace(options or SynthesisOptions(), **overrides)


def _speaker_tensor(speaker_ids: Sequence[int | None], device: torch.device) -> torch.Tensor | None:
    if all(s is None for s in speaker_ids):
        return None
    return torch.tensor([s or 0 for s in speaker_ids], dtype=torch.long, device=device)


def _pick_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
