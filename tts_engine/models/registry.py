"""The model families this process offers, by name (``settings.model_families``)."""

from __future__ import annotations

from tts_engine.models.protocol import ModelFamily
from tts_engine.settings import Settings


def model_families(settings: Settings) -> dict[str, ModelFamily]:
    from tts_engine.models.kokoro_family import KokoroFamily
    from tts_engine.models.piper import PiperFamily

    known = {"piper": PiperFamily, "kokoro": KokoroFamily}
    unknown = [name for name in settings.model_families if name not in known]
    if unknown:
        raise ValueError(f"unknown model families {unknown}; known: {sorted(known)}")
    return {name: known[name](settings) for name in settings.model_families}
