"""Voice matching in the ingress (issue 13): which conditioning a reference or a registered voice gets.

The fitting itself runs in the VoiceMatcher deployment; here a request's reference clip or
registered voice id becomes a ``VoiceConditioning`` (a fitted Kokoro style pack, the WORLD
post-filter, or both) and the voice synthesis starts from.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import numpy as np

from storage.voices import VoiceRecord, VoiceRegistry
from tts_engine.errors import VoxServeError
from tts_engine.speaker.matching import METHODS
from tts_engine.speaker.references import AdaptationConditioning, StyleConditioning
from tts_engine.text.frontend import cjk_language, resolve_language

from .errors import as_voxserve_error

log = logging.getLogger("voxserve")
PACK_CACHE = 64
_packs: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()   # (tenant, style key) -> pack


def post_filter(conditioning):
    """The audio transform of a conditioning, or None when it has none (a bare fitted style
    streams chunk by chunk; a post-filter needs whole sentences)."""
    if conditioning is None or (isinstance(conditioning, StyleConditioning) and conditioning.post is None):
        return None
    return conditioning.apply


def _voice_family(services, voice: str | None, language: str, text: str) -> str | None:
    """The model family a request's voice (or its language's default voice) belongs to."""
    try:
        if voice:
            return services.voices.get(voice).family
        lang = resolve_language(language, text)
        cjk = cjk_language(text) if (language or "auto").strip().lower() in ("", "auto") else None
        return services.voices.get(None, cjk if cjk in services.settings.default_voices else lang).family
    except VoxServeError:
        return None  # the synthesis path reports the bad voice or language itself


async def reference_conditioning(services, data: bytes, voice: str | None, language: str, text: str,
                                 tenant: str):
    """(voice, conditioning) for an on-the-fly reference: a fitted style (short fit, cached by the
    clip's hash) where ``matching_on_the_fly`` applies to this voice; the WORLD adaptation otherwise."""
    settings = services.settings
    mode = settings.matching_on_the_fly if settings.matching_enabled else "off"
    family = _voice_family(services, voice, language, text)
    methods: tuple[str, ...] = ()
    if mode != "off" and "kokoro" in settings.model_families:
        if family == "kokoro":
            methods = ("kokoro-style", "kokoro-style+dsp")
        elif mode == "always" and not voice:
            methods = ("kokoro-style", "kokoro-style+dsp", "dsp")
    if methods:
        try:
            report = await services.speaker_cache.match.remote(data, tenant, methods)
        except Exception as exc:  # noqa: BLE001 - see below
            if as_voxserve_error(exc) is not None:
                raise  # something about the request (or overload): its own 4xx/503
            # The fit failed or its replica died: the request still gets the reference's voice,
            # by DSP adaptation, rather than an error for something it did not do.
            log.exception("on-the-fly voice matching failed; answering with DSP adaptation")
            methods = ()
    if not methods:
        analysed = await services.speaker_cache.analyze.remote(data, tenant)
        return voice, AdaptationConditioning(analysed.profile)
    if report.method == "dsp":
        return voice, AdaptationConditioning(report.profile)
    return report.base_voice, report.conditioning()


async def registered_conditioning(registry: VoiceRegistry, record: VoiceRecord):
    """(voice, conditioning) of a ready registered voice: its fitted style pack (loaded from the
    store once per replica) or its WORLD profile."""
    method = (record.matching or {}).get("method", "dsp")
    adapt = AdaptationConditioning(record.profile or {})
    if not record.style_key or method not in METHODS or method == "dsp":
        return record.base_voice or None, adapt
    key = (registry.tenant, record.style_key + ":" + record.reference_hash)
    pack = _packs.get(key)
    if pack is None:
        pack = await asyncio.to_thread(registry.style_pack, record)
        _packs[key] = pack
        while len(_packs) > PACK_CACHE:
            _packs.popitem(last=False)
    else:
        _packs.move_to_end(key)
    return record.base_voice, StyleConditioning(pack, adapt if method == "kokoro-style+dsp" else None)
