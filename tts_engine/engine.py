"""The engine: text in, audio out, no Ray. The whole public surface in one class.

    engine = TTSEngine()
    result = engine.synthesize("Hello world.", voice="en_US-joe-medium", speed=1.1, seed=7)
    result.audio, result.sample_rate

The serving layer uses the two halves separately: ``prepare`` (text side: validate,
normalize, phonemize; no model needed) and ``render_batch`` / ``render_stream``
(model side: acoustic + vocoder on phoneme ids, batched or chunked).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from tts_engine.audio.assembly import finish_audio, join_sentences, silence
from tts_engine.errors import InvalidInput, TextTooLong, UnsupportedLanguage
from tts_engine.models.fastpath import SMALL_PRIMITIVE_CACHE, bound_primitive_cache, keep_freed_memory_mapped
from tts_engine.models.protocol import ModelFamily, Rendered, RenderItem, SpeechModel, StreamChunking
from tts_engine.models.registry import model_families
from tts_engine.text.sentences import ends_with_clause_mark
from tts_engine.text.split_methods import FIRST_CLAUSE, SPLIT_METHODS
from tts_engine.settings import Settings, get_settings
from tts_engine.text.frontend import Sentence, cjk_language, resolve_language, validate_text
from tts_engine.text.pronounce import LexiconEntry, Pronunciation, mark, table_identity
from tts_engine.timestamps import WordTiming, sentence_words, trimmed
from tts_engine.voices import VoiceCatalog, VoiceInfo

SPEED_RANGE = (0.5, 2.0)
NOISE_RANGE = (0.0, 2.0)
VOLUME_RANGE = (0.0, 4.0)
PITCH_RANGE = (-12.0, 12.0)
PAUSE_RANGE = (0.0, 2.0)
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
    # Where text is cut into separately rendered pieces, and the silence between them
    # (None: the server's sentence_pause_s); GPT-SoVITS clients set both per request.
    split: str = "sentence"
    pause_s: float | None = None
    # Pronunciation overrides (text/pronounce.py): SSML <phoneme> readings the text's placeholders
    # index, and lexicon entries to match in the text; both win over the frontend's own reading.
    pronunciations: tuple[Pronunciation, ...] = ()
    lexicon: tuple[LexiconEntry, ...] = ()
    # Rendered for a stream: where the model cannot stream within a piece, the first sentence is
    # cut after a clause (``Prepared.clause_cut``) so its first audio comes sooner.
    streaming: bool = False

    def validated(self) -> "SynthesisOptions":
        if self.split not in SPLIT_METHODS:
            raise InvalidInput(f"split must be one of {', '.join(SPLIT_METHODS)} (got {self.split!r})",
                               field="split")
        if self.pause_s is not None:
            _check_range("pause_s", self.pause_s, PAUSE_RANGE)
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


def _split_for(options: SynthesisOptions, family: ModelFamily) -> str:
    """The client's split, or, for a stream on a family that decodes whole pieces, ours with the
    first sentence cut after a clause."""
    if options.streaming and options.split == "sentence" and not family.streams_within_piece:
        return FIRST_CLAUSE
    return options.split


def _first_is_clause(sentences: Sequence[Sentence]) -> bool:
    return len(sentences) > 1 and ends_with_clause_mark(sentences[0].text)


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
    controls: list[Any]                 # one per sentence, the family's (NoiseSpec, KokoroControl, ...)
    speaker_id: int | None
    seed: int
    volume: float = 1.0
    pitch: float = 0.0
    dropped: list[str] = field(default_factory=list)
    model_version: str = ""
    seed_given: bool = False   # a random seed must not make the result a cache identity
    control_identity: dict = field(default_factory=dict)  # what of the controls changes the audio
    split: str = "sentence"
    pause_s: float | None = None  # None: the server's sentence_pause_s
    pronunciation_key: str = ""   # the overrides applied (lexicons, SSML <phoneme>): cache identity

    def pause(self, default_s: float) -> float:
        """Seconds of silence between rendered pieces."""
        return default_s if self.pause_s is None else self.pause_s

    def pause_before(self, i: int, sentence_pause_s: float, clause_pause_s: float) -> float:
        """Seconds of silence before piece ``i`` (> 0): a clause's pause after a cut first clause."""
        return clause_pause_s if self.clause_cut and i == 1 else self.pause(sentence_pause_s)

    @property
    def clause_cut(self) -> bool:
        """Whether the first piece is the first clause of a sentence whose rest is the second piece
        (a stream's early first audio): they join with a clause's pause (``pause_before``)."""
        return self.split == FIRST_CLAUSE

    @property
    def normalized_text(self) -> str:
        # Placeholders read as overrides: the cache key adds the overrides' identity to this.
        return " ".join(s.text for s in self.sentences)

    def items(self) -> list[RenderItem]:
        """One render item per sentence."""
        return [RenderItem(self.voice.id, s.ids, c, self.speaker_id) for s, c in zip(self.sentences, self.controls)]

    def words(self, pieces: Sequence[Rendered], default_pause_s: float) -> list[WordTiming]:
        """Word timestamps of the joined audio (sentences in order, pauses between them)."""
        rate, pause = self.voice.sample_rate, int(self.pause(default_pause_s) * self.voice.sample_rate)
        out: list[WordTiming] = []
        start = 0
        for sentence, piece in zip(self.sentences, pieces):
            out += sentence_words(sentence.words, piece, rate, start / rate)
            start += len(piece.audio) + pause
        return out


@dataclass
class Synthesis:
    audio: np.ndarray          # float32 mono in [-1, 1]
    sample_rate: int
    voice: str
    language: str
    seed: int
    dropped: list[str] = field(default_factory=list)
    words: list[WordTiming] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


class TTSEngine:
    """Text in, audio out, for every model family; never branches on which family a voice is."""

    def __init__(self, settings: Settings | None = None, device: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.families: dict[str, ModelFamily] = model_families(self.settings)
        self.voices = VoiceCatalog(self.settings, self.families)
        self.device = torch.device(device or _pick_device(self.settings.device))
        self._models: dict[str, SpeechModel] = {}
        self._lock = threading.Lock()
        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        if self.device.type == "cpu":
            keep_freed_memory_mapped()  # no page faults on the vocoder's large buffers (see fastpath.py)

    # ------------------------------------------------------------------ the simple API

    def synthesize(self, text: str, options: SynthesisOptions | None = None, **kwargs) -> Synthesis:
        """Whole-utterance synthesis: all sentences in one padded batch, joined with pauses."""
        prepared = self.prepare(text, _options(options, kwargs))
        pieces = self.render_batch(prepared.voice.id, prepared.items())
        return self.finish(prepared, pieces)

    def stream(self, text: str, options: SynthesisOptions | None = None, **kwargs) -> Iterator[np.ndarray]:
        """Audio chunks as they are decoded, sentence by sentence (pauses included)."""
        prepared = self.prepare(text, _options(options, kwargs))
        rate = prepared.voice.sample_rate
        for i, item in enumerate(prepared.items()):
            if i:
                yield silence(prepared.pause(self.settings.sentence_pause_s), rate)
            for chunk in self.render_stream(item):
                yield finish_audio(chunk.audio, rate, prepared.volume, prepared.pitch)

    # ------------------------------------------------------------------ text side

    def prepare(self, text: str, options: SynthesisOptions) -> Prepared:
        """Validate, pick the voice (by language when none is given), normalize and phonemize."""
        options = options.validated()
        text = validate_text(text, self.settings.max_text_chars)
        language = resolve_language(options.language, text)
        if not self.settings.resolve_voice_alias(options.voice or ""):  # no voice: the language's default
            language = self._voice_language(text, options.language, language)
        voice = self.voices.get(options.voice, language)
        if language not in voice.languages:
            able = self.voices.speaking(language)
            raise UnsupportedLanguage(
                f"voice '{voice.id}' speaks {voice.languages}, not '{language}'; "
                f"voices that can: {able or 'none installed'}",
                field="language",
            )
        family = self.families[voice.family]
        text, table = mark(text, options.pronunciations, options.lexicon)
        split = _split_for(options, family)
        result = family.frontend(text, voice, options.language, split, table)
        if split == FIRST_CLAUSE and not _first_is_clause(result.sentences):
            split = options.split  # nothing was cut: the same pieces, audio and cache key as without

        seed = options.seed if options.seed is not None else random.randrange(2**31)
        _check_work(result.sentences, options.speed, self.settings.max_phonemes)
        controls = family.controls(voice, options, len(result.sentences), seed)
        return Prepared(
            voice=voice,
            language=language,
            sentences=result.sentences,
            controls=controls,
            speaker_id=voice.speaker_id(options.speaker),
            seed=seed,
            volume=options.volume,
            pitch=options.pitch,
            dropped=sorted({p for s in result.sentences for p in s.dropped}),
            model_version=self.model_version(voice.id),
            seed_given=options.seed is not None,
            control_identity=family.cache_identity(controls[0]) if controls else {},
            split=split,
            pause_s=options.pause_s,
            pronunciation_key=table_identity(table),
        )

    def _voice_language(self, text: str, requested: str, language: str) -> str:
        """The language of a request without a voice: with ``auto``, text that contains Chinese or
        Japanese is that language (its voice also reads the English around it), else the detected one."""
        if (requested or "auto").strip().lower() not in ("", "auto"):
            return language
        cjk = cjk_language(text)
        return cjk if cjk in self.settings.default_voices else language

    # ------------------------------------------------------------------ model side

    def model(self, voice_id: str) -> SpeechModel:
        """The voice's model, loaded once per process."""
        with self._lock:
            if voice_id not in self._models:
                voice = self.voices.get(voice_id)
                family = self.families[voice.family]
                if self.device.type == "cpu" and not self._models:  # before this process's first convolution
                    bound_primitive_cache(self.settings.onednn_primitive_cache if family.reuses_built_shapes
                                          else SMALL_PRIMITIVE_CACHE)
                self._models[voice_id] = family.load(voice, str(self.device))
            return self._models[voice_id]

    def render_batch(self, voice_id: str, items: Sequence[RenderItem]) -> list[Rendered]:
        """Sentences of one voice -> one waveform (and symbol durations) each (a padded batch where
        the family batches)."""
        return self.model(voice_id).render_batch(items)

    def render_stream(self, item: RenderItem) -> Iterator[Rendered]:
        """One sentence, decoded in overlapping chunks (the first one short, carrying the symbol
        durations) as they are ready."""
        s = self.settings
        chunking = StreamChunking(s.stream_first_chunk_s, s.stream_chunk_s, s.stream_context_s)
        return self.model(item.voice).render_stream(item, chunking)

    # ------------------------------------------------------------------ assembly

    def finish(self, prepared: Prepared, pieces: Sequence[Rendered | np.ndarray]) -> Synthesis:
        rate = prepared.voice.sample_rate
        rendered = [Rendered.of(p) for p in pieces]
        audio = join_sentences([r.audio for r in rendered], rate, prepared.pause(self.settings.sentence_pause_s))
        audio = finish_audio(audio, rate, prepared.volume, prepared.pitch)
        words = trimmed(prepared.words(rendered, self.settings.sentence_pause_s), audio, rate)
        return Synthesis(audio, rate, prepared.voice.id, prepared.language, prepared.seed, prepared.dropped, words)

    def model_version(self, voice_id: str) -> str:
        """Changes whenever the voice's weights or our implementation change (part of cache keys)."""
        voice = self.voices.get(voice_id)
        return self.families[voice.family].version(voice)


def _check_work(sentences: Sequence[Sentence], speed: float, limit: int) -> None:
    """Bound what one request may make the model do: audio length (and so decoder time, memory and
    file size) grows with phoneme ids / speed, which a short text can blow up ("9" x 4000)."""
    ids = sum(len(s.ids) for s in sentences)
    if ids / speed > limit:
        raise TextTooLong(
            f"text expands to {ids} phoneme ids at speed {speed:g} ({ids / speed:.0f} speed-adjusted); "
            f"the limit is max_phonemes={limit} (about {limit / IDS_PER_SECOND / 60:.0f} min of audio)",
            field="text",
        )


def _options(options: SynthesisOptions | None, overrides: dict) -> SynthesisOptions:
    return replace(options or SynthesisOptions(), **overrides)


def _pick_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
