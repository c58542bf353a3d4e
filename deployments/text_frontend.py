"""TextFrontend deployment: normalize, detect language, split sentences, phonemize -> ids."""

from __future__ import annotations

from ray import serve

from tts_engine.engine import Prepared, SynthesisOptions, TTSEngine
from tts_engine.settings import Settings

from .options import TEXT_FRONTEND
from .refusal import Refused, refusing


@serve.deployment(name="TextFrontend", **TEXT_FRONTEND)
class TextFrontend:
    def __init__(self, settings: dict | None = None) -> None:
        # The engine loads no model until asked to render, so this replica stays small.
        self.engine = TTSEngine(Settings(**(settings or {})))

    @refusing
    def prepare(self, text: str, options: SynthesisOptions) -> Prepared | Refused:
        return self.engine.prepare(text, options)

    def voices(self) -> list[dict]:
        return [v.describe() for v in self.engine.voices.list()]
