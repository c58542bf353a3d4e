"""What every router needs, built once per ingress replica: settings, store, the synthesis service.

Routers get it with ``Depends(get_services)``; the ``Ingress`` deployment installs it when the
replica starts (one process per replica, so a module-level holder is per replica).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from fastapi import Request

from storage import AudioStore, open_store
from storage.voices import VoiceRegistry
from tts_engine.settings import Settings
from tts_engine.speaker.references import AdaptationConditioning, decode_reference
from tts_engine.voice_aliases import resolve_voice_name
from tts_engine.voices import VoiceCatalog

from .metrics import IngressMetrics
from .schemas import TTSRequest
from .synthesis import AudioRequest, SynthesisService


@dataclass
class Services:
    settings: Settings
    store: AudioStore
    voices: VoiceCatalog
    registry: VoiceRegistry
    metrics: IngressMetrics
    synthesis: SynthesisService
    synthesizers: dict            # Ray Serve handles: model family -> its Synthesizer
    speaker_cache: object
    jobs: set[asyncio.Task] = field(default_factory=set)

    @classmethod
    def build(cls, settings: Settings, frontend, synthesizers: dict, speaker_cache) -> "Services":
        store = open_store(settings)
        metrics = IngressMetrics()
        return cls(settings=settings, store=store, voices=VoiceCatalog(settings), registry=VoiceRegistry(store),
                   metrics=metrics, synthesis=SynthesisService(settings, frontend, synthesizers, store, metrics),
                   synthesizers=synthesizers, speaker_cache=speaker_cache)

    async def audio_request(self, body: TTSRequest, request: Request,
                            reference: bytes | None = None) -> AudioRequest:
        """Resolve voice names (aliases), registered voices and reference clips into a base voice,
        the language a name implies, and conditioning."""
        choice = resolve_voice_name(self.settings, body.voice)
        voice, conditioning = choice.voice, None
        # A name like "zh-CN-XiaoyanNeural" implies a language; a language the request names wins.
        language = choice.language if choice.language and body.language in ("", "auto") else body.language
        if reference is not None:
            await asyncio.to_thread(decode_reference, reference, self.settings, "reference_audio")
            analysed = await self.speaker_cache.analyze.remote(reference)
            conditioning = AdaptationConditioning(analysed.profile)
        elif VoiceRegistry.is_registered_id(voice):
            record = await asyncio.to_thread(self.registry.ready, voice)
            voice, conditioning = record.base_voice or None, AdaptationConditioning(record.profile)
        return AudioRequest(
            text=body.text, format=body.format, options=replace(body.options(), voice=voice, language=language),
            sample_rate=body.sample_rate, cache=body.cache, request_id=request.state.request_id,
            conditioning_key=conditioning.identity() if conditioning else "",
            transform=conditioning.apply if conditioning else None,
            timestamps=body.timestamps or body.captions is not None, captions=body.captions,
        )


_current: Services | None = None


def install(services: Services) -> None:
    global _current
    _current = services


def get_services() -> Services:
    if _current is None:
        raise RuntimeError("the ingress has not started: no services installed")
    return _current
