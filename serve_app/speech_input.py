"""What a synthesis body asks to be said: plain text or SSML, plus the lexicons it names.

Plain text is one part. SSML (``"text_type": "ssml"``, or a text starting with ``<speak``) is
parsed into parts, each with its own voice, language and prosody and the silence before it
(``tts_engine/text/ssml.py``). Every part becomes an ``AudioRequest`` through the same
``Services.audio_request`` as plain text, so voice names, registered voices and references work
inside ``<voice name>`` as in ``voice``. A plan of one part without breaks is an ordinary request
(phrase cache, de-duplication, chunked streaming); longer plans go to ``composite.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from fastapi import Request

from storage.lexicons import LexiconStore
from tts_engine.errors import TextTooLong
from tts_engine.text.pronounce import LexiconEntry
from tts_engine.text.ssml import SsmlDocument, SsmlPart, looks_like_ssml, parse_ssml

from .context import Services
from .schemas import TTSRequest
from .audio_request import AudioRequest
from .tenancy import tenant_of

SSML_MARKUP_FACTOR = 4   # an SSML document may be this many times max_text_chars long (markup)


@dataclass
class SpeechPlan:
    parts: list[AudioRequest]
    breaks: list[float]                 # seconds of silence before each part
    trailing_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def single(self) -> AudioRequest | None:
        """The one ordinary request this plan is, if it is one."""
        if len(self.parts) == 1 and not self.breaks[0] and not self.trailing_s:
            return self.parts[0]
        return None


def wants_ssml(body: TTSRequest) -> bool:
    return body.text_type == "ssml" or (body.text_type == "auto" and looks_like_ssml(body.text))


async def plan_speech(services: Services, body: TTSRequest, request: Request,
                      reference: bytes | None = None) -> SpeechPlan:
    lexicon = await lexicon_entries(services, body.lexicons, request)
    if not wants_ssml(body):
        req = await services.audio_request(body, request, reference)
        return SpeechPlan([with_pronunciations(req, lexicon)], [0.0])
    document = await asyncio.to_thread(parse_document, services, body.text)
    parts = await asyncio.gather(*(part_request(services, body, request, reference, part, lexicon)
                                   for part in document.parts))
    return SpeechPlan(list(parts), [p.break_before_s for p in document.parts], document.trailing_break_s,
                      document.warnings)


def parse_document(services: Services, text: str) -> SsmlDocument:
    limit = services.settings.max_text_chars
    if len(text) > SSML_MARKUP_FACTOR * limit:
        raise TextTooLong(f"SSML is {len(text)} characters long; the limit is {SSML_MARKUP_FACTOR * limit} "
                          f"(markup included)", field="text")
    document = parse_ssml(text, services.settings.ssml_max_parts)
    spoken = sum(len(p.text) for p in document.parts)
    if spoken > limit:
        raise TextTooLong(f"the SSML's text is {spoken} characters long; the limit is {limit} characters",
                          field="text")
    return document


async def part_request(services: Services, body: TTSRequest, request: Request, reference: bytes | None,
                       part: SsmlPart, lexicon: tuple[LexiconEntry, ...]) -> AudioRequest:
    voice = part.voice or body.voice
    if part.language and not part.voice and voice and not _speaks(services, voice, part.language):
        voice = None  # <lang> without <voice>: the language's default voice if ours can't speak it
    part_body = body.model_copy(update={
        "text": part.text, "voice": voice, "language": part.language or body.language,
        "speed": body.speed * part.prosody.rate, "pitch": body.pitch + part.prosody.pitch,
        "volume": body.volume * part.prosody.volume, "text_type": "text",
    })
    req = await services.audio_request(part_body, request, reference)
    return with_pronunciations(req, lexicon, part.pronunciations)


def _speaks(services: Services, voice: str, language: str) -> bool:
    from tts_engine.text.frontend import resolve_language

    try:
        return resolve_language(language, "") in services.voices.get(voice).languages
    except Exception:  # noqa: BLE001 - an alias or registered voice: let the engine decide
        return True


def with_pronunciations(req: AudioRequest, lexicon: tuple[LexiconEntry, ...], inline: tuple = ()) -> AudioRequest:
    if not lexicon and not inline:
        return req
    return replace(req, options=replace(req.options, lexicon=lexicon, pronunciations=tuple(inline)))


async def lexicon_entries(services: Services, names: list[str], request: Request) -> tuple[LexiconEntry, ...]:
    if not names:
        return ()
    return await asyncio.to_thread(LexiconStore(services.store).entries, tenant_of(request.state), names)


def warning_header(plan: SpeechPlan) -> dict[str, str]:
    """``X-SSML-Warnings``: what of the SSML was not understood (unknown elements), ASCII only."""
    if not plan.warnings:
        return {}
    text = "; ".join(plan.warnings)
    return {"X-SSML-Warnings": text.encode("ascii", "replace").decode()[:2000]}
