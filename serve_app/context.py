"""What every router needs, built once per ingress replica: settings, store, the synthesis service.

Routers get it with ``Depends(get_services)``; the ``Ingress`` deployment installs it when the
replica starts (one process per replica, so a module-level holder is per replica).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from fastapi import Request

from storage import AudioStore, open_store
from storage.clients import ClientStore
from storage.voices import VoiceRegistry
from tts_engine.settings import Settings
from tts_engine.speaker.references import decode_reference
from tts_engine.voice_aliases import resolve_voice_name
from tts_engine.voices import VoiceCatalog

from . import matching
from .audio_request import AudioRequest
from .auth.limiter import LimiterClient
from .auth.principal import Principal, principal_of
from .auth.tokens import KeyRing, TokenIssuer
from .auth.verifier import Authenticator
from .metrics import IngressMetrics
from .schemas import TTSRequest
from .synthesis import SynthesisService


@dataclass
class Services:
    settings: Settings
    store: AudioStore
    voices: VoiceCatalog
    # Registered voices belong to tenants: get a tenant's with registry_for(request); there is
    # deliberately no unscoped registry here, so no route can list or use another tenant's voices.
    registries: VoiceRegistry
    metrics: IngressMetrics
    synthesis: SynthesisService
    synthesizers: dict            # Ray Serve handles: model family -> its Synthesizer
    speaker_cache: object
    clients: ClientStore | None = None
    issuer: TokenIssuer | None = None
    auth: Authenticator | None = None        # None: auth is off (settings.auth == "none")
    limiter: LimiterClient | None = None     # None: no limits (auth off)
    jobs: set[asyncio.Task] = field(default_factory=set)

    @classmethod
    def build(cls, settings: Settings, frontend, synthesizers: dict, speaker_cache, limiter=None,
              caller: str = "ingress") -> "Services":
        store = open_store(settings)
        metrics = IngressMetrics()
        services = cls(settings=settings, store=store, voices=VoiceCatalog(settings), registries=VoiceRegistry(store),
                       metrics=metrics, synthesis=SynthesisService(settings, frontend, synthesizers, store, metrics),
                       synthesizers=synthesizers, speaker_cache=speaker_cache)
        if settings.auth == "required":
            services.clients = ClientStore(store)
            keyring = KeyRing(settings, services.clients)
            keyring.load()  # fail at start on bad configured keys; creates the stored ones once
            services.issuer = TokenIssuer(settings, keyring)
            services.auth = Authenticator(settings, services.clients, services.issuer)
            if limiter is not None:
                services.limiter = LimiterClient(limiter, settings, caller)
        return services

    def registry_for(self, request: Request) -> VoiceRegistry:
        """The caller's tenant's registered voices."""
        return self.registries.for_tenant(principal_of(request).tenant)

    def meter_for(self, principal: Principal):
        """Where a request's delivered audio is counted (None when nothing is limited)."""
        if self.limiter is None or principal.limits is None:
            return None
        limiter = self.limiter

        def meter(characters: int, seconds: float, cached: bool) -> None:
            limiter.record(principal, characters, seconds, cached)
            self.metrics.tenant_audio(principal.tenant, seconds, cached)
        return meter

    async def audio_request(self, body: TTSRequest, request: Request,
                            reference: bytes | None = None) -> AudioRequest:
        """Resolve voice names (aliases), registered voices and reference clips into a base voice,
        the language a name implies, and conditioning."""
        choice = resolve_voice_name(self.settings, body.voice)
        voice, conditioning = choice.voice, None
        # A name like "zh-CN-XiaoyanNeural" implies a language; a language the request names wins.
        language = choice.language if choice.language and body.language in ("", "auto") else body.language
        principal = principal_of(request)
        if self.limiter is not None:
            self.limiter.check_audio(principal)  # every synthesis route comes through here
        if reference is not None:
            await asyncio.to_thread(decode_reference, reference, self.settings, "reference_audio")
            voice, conditioning = await matching.reference_conditioning(self, reference, voice, language, body.text,
                                                                        principal.tenant)
        elif VoiceRegistry.is_registered_id(voice):
            registry = self.registry_for(request)
            record = await asyncio.to_thread(registry.ready, voice)
            voice, conditioning = await matching.registered_conditioning(registry, record)
        return AudioRequest(
            text=body.text, format=body.format, options=replace(body.options(), voice=voice, language=language),
            sample_rate=body.sample_rate, cache=body.cache, request_id=request.state.request_id,
            conditioning_key=conditioning.identity() if conditioning else "",
            transform=matching.post_filter(conditioning),
            condition=conditioning.condition if conditioning else None,
            cache_scope=f"tenant:{principal.tenant}" if self.settings.effective_cache_scope == "tenant" else "",
            meter=self.meter_for(principal),
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
