"""Voice matching end to end: a reference clip -> a fitted Kokoro style pack, honestly measured.

``VoiceMatcher.match`` is what a registration job (and an on-the-fly reference) runs:

1. split the reference into two halves at the quietest point near its middle: the *fitting*
   half A and the *held-out* half B; embed both with GE2E and the d-vector encoder; the
   half-vs-half similarity is the same-speaker ceiling;
2. start from the shipped Kokoro pack nearest A (both encoders, one sentence each);
3. fit a style offset to A by gradient (``style_fit``), within the step/second budget;
4. synthesize an evaluation sentence (never used in the fit) through the *serving* engine
   (``TTSEngine``, the configured Kokoro backend) with each candidate: the starting pack, the
   fitted pack, the fitted pack + WORLD adaptation to A's profile, and (when Piper is served)
   the Piper voice raw and with WORLD adaptation; score each against B with both encoders;
5. choose, among the allowed methods, the one with the best held-out GE2E, and say which.

Selecting among three methods by the held-out score makes the chosen score slightly
optimistic; every candidate's numbers are reported beside it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tts_engine.settings import Settings
from tts_engine.speaker.references import (
    METHOD as DSP_METHOD, SIMILARITY_SENTENCE, AdaptationConditioning, StyleConditioning,
)

log = logging.getLogger("voxserve")

STYLE_METHOD = "voice matching: a Kokoro style vector fitted to your reference; not identity cloning"
METHODS = {
    "kokoro-style": STYLE_METHOD,
    "kokoro-style+dsp": STYLE_METHOD + "; then DSP adaptation (WORLD: pitch, formant warp, spectral balance)",
    "dsp": DSP_METHOD,
}
# Fitting sentence(s): short (every step renders them all), varied phonemes.
FIT_SENTENCES = ("Please call me back before noon tomorrow, and bring the blue folder.",)
EVAL_SENTENCE = SIMILARITY_SENTENCE
SAMPLE_RATE = 24000


class MatchCancelled(Exception):
    """The job was cancelled (its voice was deleted) while fitting."""


# ---------------------------------------------------------------------------- the report


@dataclass
class MatchReport:
    method: str                      # kokoro-style | kokoro-style+dsp | dsp
    base_voice: str                  # the voice synthesis starts from
    profile: dict                    # WORLD profile of the fitting half (the DSP post-filter's target)
    heldout: dict[str, dict]         # candidate -> {"ge2e", "dvector"} against the held-out half
    ceiling: dict                    # half A vs half B: {"ge2e", "dvector"}
    base_pack: str | None = None
    delta: list[float] | None = None
    fit: dict = field(default_factory=dict)
    seconds: float = 0.0
    split_s: tuple[float, float] = (0.0, 0.0)

    @property
    def method_text(self) -> str:
        return METHODS[self.method]

    def pack(self) -> np.ndarray | None:
        """The fitted style pack [510, 256] (None for DSP-only)."""
        if self.base_pack is None or self.delta is None:
            return None
        from tts_engine.models.kokoro_family import voice_packs

        return (voice_packs()[self.base_pack] + np.asarray(self.delta, dtype=np.float32)[None, :]).astype(np.float32)

    def conditioning(self, pack: np.ndarray | None = None):
        """The conditioning that serves this voice (``pack`` if already loaded)."""
        post = AdaptationConditioning(self.profile)
        if self.method == "dsp":
            return post
        pack = self.pack() if pack is None else pack
        return StyleConditioning(pack, post if self.method == "kokoro-style+dsp" else None)

    def chosen(self) -> dict:
        return self.heldout.get(self.method, {})

    def public(self) -> dict:
        """What GET /v1/voices/{id} shows."""
        start = self.heldout.get("start", {})
        return {"method": self.method, "method_text": self.method_text, "base_voice": self.base_voice,
                "heldout_similarity": self.chosen(), "start_voice_similarity": start,
                "same_speaker_ceiling": self.ceiling, "candidates": self.heldout,
                "fit": {k: v for k, v in self.fit.items() if k != "history"},
                "split_s": list(self.split_s), "seconds": round(self.seconds, 1),
                "protocol": "reference split in two halves; fitted on the first, every similarity measured "
                            "against the second (held out) on a sentence not used in the fit"}

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> MatchReport:
        raw = json.loads(data)
        raw["split_s"] = tuple(raw.get("split_s", (0.0, 0.0)))
        return cls(**raw)


# ---------------------------------------------------------------------------- the split


def split_reference(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Two halves cut at the quietest 50 ms (10 ms hop) in the middle third of the clip."""
    x = np.asarray(audio, dtype=np.float32)
    win, hop = int(0.05 * rate), int(0.01 * rate)
    lo, hi = len(x) // 3, 2 * len(x) // 3
    if hi - lo <= win:
        cut = len(x) // 2
    else:
        starts = np.arange(lo, hi - win, hop)
        energy = np.array([np.mean(x[s: s + win] ** 2) for s in starts])
        cut = int(starts[int(np.argmin(energy))] + win // 2)
    return x[:cut], x[cut:]


# ---------------------------------------------------------------------------- the matcher

Progress = Callable[[float, int, "float | None"], bool]   # (fraction, step, held-out GE2E) -> go on?


class VoiceMatcher:
    """Loads the encoders, the torch Kokoro and a serving engine once; ``match`` per reference.

    Thread-safe: fits run one at a time (``lock``), each with ``settings.matching_threads``.
    """

    def __init__(self, settings: Settings, engine=None) -> None:
        from tts_engine.engine import TTSEngine
        from tts_engine.speaker.dvector import DVectorEncoder
        from tts_engine.speaker.ge2e import SpeakerEncoder

        self.settings = settings
        self.engine = engine or TTSEngine(settings)
        # Everything a fit differentiates through lives on the engine's device (the GPU if any).
        self.ge2e = SpeakerEncoder(device=str(self.engine.device))
        self.dvector = DVectorEncoder(device=str(self.engine.device))
        self.lock = threading.Lock()
        self._fit_parts = None

    # -------------------------------------------------------------- what can be served
    @property
    def kokoro(self) -> bool:
        return "kokoro" in self.engine.families

    def piper_voice(self) -> str | None:
        voice = self.settings.default_voices.get("en")
        if "piper" not in self.engine.families or not voice:
            return None
        try:
            return voice if self.engine.voices.get(voice).family == "piper" else None
        except Exception:  # noqa: BLE001 - no such voice installed: no Piper candidate
            return None

    def _parts(self):
        """The torch Kokoro renderer, objective and prior (loaded on first use)."""
        if self._fit_parts is None:
            from pathlib import Path

            from tts_engine.models.kokoro.assembly import assemble_kokoro_onnx
            from tts_engine.models.kokoro.model import KokoroModel
            from tts_engine.models.kokoro_family import kokoro_vocab, voice_packs
            from tts_engine.speaker.ge2e_torch import TorchGE2E
            from tts_engine.speaker.style_fit import KokoroStyleRenderer, SpeakerObjective, StylePrior
            from tts_engine.text.kokoro_phonemizer import KokoroPhonemizer

            model = KokoroModel.from_onnx(assemble_kokoro_onnx(Path(self.settings.model_cache_dir)))
            model = model.to(self.engine.device)
            self._fit_parts = (KokoroStyleRenderer(model), SpeakerObjective(TorchGE2E(self.ge2e), self.dvector),
                               StylePrior.from_packs(voice_packs()), KokoroPhonemizer(kokoro_vocab()))
        return self._fit_parts

    def embed(self, audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
        return self.ge2e.embed(audio, rate), self.dvector.embed(audio, rate)

    # -------------------------------------------------------------- the procedure
    def match(self, audio: np.ndarray, rate: int, steps: int, seconds: float,
              methods: Sequence[str] = ("kokoro-style", "kokoro-style+dsp", "dsp"),
              progress: Progress | None = None) -> MatchReport:
        import torch

        from tts_engine.audio.adapt import analyze_voice

        with self.lock:
            before = torch.get_num_threads()
            torch.set_num_threads(self.settings.matching_threads)
            try:
                return self._match(audio, rate, steps, seconds, methods, progress or (lambda *a: True),
                                   analyze_voice)
            finally:
                torch.set_num_threads(before)

    def _match(self, audio, rate, steps, seconds, methods, progress, analyze_voice) -> MatchReport:
        started = time.monotonic()
        half_a, half_b = split_reference(audio, rate)
        target_a, target_b = self.embed(half_a, rate), self.embed(half_b, rate)
        ceiling = _scores(target_a, target_b)
        profile = analyze_voice(half_a, rate).to_dict()
        self._check(progress(0.02, 0, None))
        fit, base_pack, delta = {}, None, None
        allowed = [m for m in methods if m in METHODS]
        if self.kokoro and any(m.startswith("kokoro") for m in allowed):
            base_pack, delta, fit = self._fit(target_a, target_b, steps, seconds, progress)
        else:
            allowed = [m for m in allowed if m == "dsp"]
        heldout = self._evaluate(base_pack, delta, profile, target_b)
        self._check(progress(0.98, fit.get("steps", 0), None))
        candidates = [m for m in allowed if m in heldout]
        if not candidates:
            raise RuntimeError("no voice-matching method can be served (neither Kokoro nor Piper)")
        method = max(candidates, key=lambda m: heldout[m]["ge2e"])
        base_voice = (f"kokoro/{base_pack}" if method.startswith("kokoro") else self.piper_voice()) or ""
        return MatchReport(method, base_voice, profile, heldout, ceiling, base_pack,
                           None if delta is None else [float(x) for x in delta], fit,
                           time.monotonic() - started, (len(half_a) / rate, len(half_b) / rate))

    @staticmethod
    def _check(go_on: bool) -> None:
        if not go_on:
            raise MatchCancelled("cancelled")

    def _fit(self, target_a, target_b, steps: int, seconds: float, progress: Progress):
        from tts_engine.models.kokoro_family import voice_packs
        from tts_engine.speaker.style_fit import Budget, FitConfig, fit_style

        renderer, objective, prior, phonemizer = self._parts()
        ids = [phonemizer.phonemize(text, "en").ids for text in FIT_SENTENCES]
        packs = voice_packs()
        allowed = self.settings.matching_start_packs or sorted(packs)
        unknown = sorted(set(allowed) - set(packs))
        if unknown:
            raise ValueError(f"matching_start_packs: no shipped pack named {unknown}; shipped: {sorted(packs)}")
        best = None
        for i, name in enumerate(allowed):  # the nearest shipped pack
            pack = packs[name]
            sentences = [renderer.sentence(text, t, pack[len(t) - 1]) for text, t in zip(FIT_SENTENCES, ids)]
            score = sum(sum(_scores(self.embed(s.start_audio.cpu().numpy(), SAMPLE_RATE), target_a).values())
                        for s in sentences)
            if best is None or score > best[0]:
                best = (score, name, sentences)
            self._check(progress(0.02 + 0.08 * (i + 1) / len(allowed), 0, None))
        _, name, sentences = best
        started = time.monotonic()

        def on_step(step, _delta) -> bool:
            held = None
            if step.ge2e_held is not None:
                held = step.ge2e_held
            done = max(step.step / steps, (time.monotonic() - started) / seconds)
            return progress(0.1 + 0.75 * min(1.0, done), step.step, held)

        result = fit_style(renderer, objective, prior, name, packs[name], sentences, target_a,
                           Budget(steps, seconds), FitConfig(lr=self.settings.matching_lr), on_step,
                           held=target_b)
        if result.stopped == "cancelled":
            raise MatchCancelled("cancelled")
        return name, result.delta, result.summary()

    def _evaluate(self, base_pack: str | None, delta, profile: dict, target_b) -> dict[str, dict]:
        """Held-out scores of every servable candidate on the evaluation sentence."""
        out: dict[str, dict] = {}
        adapt = AdaptationConditioning(profile)
        if base_pack is not None:
            from tts_engine.models.kokoro_family import voice_packs

            start = voice_packs()[base_pack]
            fitted = StyleConditioning((start + np.asarray(delta, dtype=np.float32)[None, :]).astype(np.float32))
            voice = f"kokoro/{base_pack}"
            out["start"] = self._score(voice, StyleConditioning(start), target_b)
            audio, rate = self.synthesize(voice, fitted)
            out["kokoro-style"] = _scores(self.embed(audio, rate), target_b)
            out["kokoro-style+dsp"] = _scores(self.embed(adapt.apply(audio, rate), rate), target_b)
        piper = self.piper_voice()
        if piper is not None:
            audio, rate = self.synthesize(piper, None)
            out["piper"] = _scores(self.embed(audio, rate), target_b)
            out["dsp"] = _scores(self.embed(adapt.apply(audio, rate), rate), target_b)
        return out

    def _score(self, voice: str, conditioning, target) -> dict:
        audio, rate = self.synthesize(voice, conditioning)
        return _scores(self.embed(audio, rate), target)

    def synthesize(self, voice: str, conditioning, text: str = EVAL_SENTENCE,
                   language: str = "en") -> tuple[np.ndarray, int]:
        """The serving engine's output for ``voice`` (conditioned model side, no post-filter)."""
        from tts_engine.engine import SynthesisOptions

        prepared = self.engine.prepare(text, SynthesisOptions(voice=voice, language=language, seed=0))
        if conditioning is not None:
            prepared = conditioning.condition(prepared)
        result = self.engine.finish(prepared, self.engine.render_batch(prepared.voice.id, prepared.items()))
        return result.audio, result.sample_rate


def _scores(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict:
    from tts_engine.speaker.ge2e import similarity

    return {"ge2e": round(similarity(a[0], b[0]), 4), "dvector": round(similarity(a[1], b[1]), 4)}
