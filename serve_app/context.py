"""What every router needs, built once per ingress replica: settings, store, the synthesis service.

Routers get it with ``Depends(get_services)``; the ``Ingress`` deployment installs it when the
replica starts (one process per replica, so a module-level holder is per replica).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from storage import AudioStore, open_store
from storage.voices import VoiceRegistry
from tts_engine.settings import Settings
from tts_engine.speaker.references import AdaptationConditioning, decode_reference
from tts_engine.voices import VoiceCatalog

from .metrics import IngressMetrics
from .resilience import once_more
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
    synthesizer: object           # Ray Serve handles
    speaker_cache: object
    jobs: set[asyncio.Task] = field(default_factory=set)

    @classmethod
    def build(cls, settings: Settings, frontend, synthesizer, speaker_cache) -> "Services":
        store = open_store(settings)
        metrics = IngressMetrics()
        return cls(settings=settings, store=store, voices=VoiceCatalog(settings), registry=VoiceRegistry(store),
                   metrics=metrics, synthesis=SynthesisService(settings, frontend, synthesizer, store, metrics),
                   synthesizer=synthesizer, speaker_cache=speaker_cache)

    async def audio_request(self, body: TTSRequest, request: Request,
                            reference: bytes | None = None) -> AudioRequest:
        """Resolve registered voices and reference clips into a base voice + conditioning."""
        voice, conditioning = body.voice, None
        if reference is not None:
            await asyncio.to_thread(decode_reference, reference, self.settings, "reference_audio")
            analysed = await once_more(lambda: self.speaker_cache.analyze.remote(reference), "reference analysis")
            conditioning = AdaptationConditioning(analysed.profile)
        elif VoiceRegistry.is_registered_id(voice):
            record = await asyncio.to_thread(self.registry.ready, voice)
            voice, conditioning = record.base_voice or None, AdaptationConditioning(record.profile)
        return AudioRequest(
            text=body.text, options=body.options(voice=voice or self.settings.default_voice), format=body.format,
            sample_rate=body.sample_rate, cache=body.cache, request_id=request.state.request_id,
            conditioning_key=conditioning.identity() if conditioning else "",
            transform=conditioning.apply if conditioning else None,
        )


_current: Services | None = None


def install(services: Services) -> None:
    global _current
    _current = services


def get_services() -> Services:
    if _current is None:
        raise RuntimeError("the ingress has not started: no services installed")
    return _current
