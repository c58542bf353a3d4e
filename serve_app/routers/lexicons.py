"""Pronunciation lexicons: ``PUT/GET/DELETE /v1/lexicons/{name}``, ``GET /v1/lexicons``.

A synthesis request names them in ``"lexicons": [...]``; see README "Pronunciation lexicons"
for the entry format and matching rules.
"""

import asyncio
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from storage.lexicons import LexiconStore, check_name, parse_entries
from tts_engine.errors import InvalidInput

from ..context import Services, get_services
from ..http_io import read_limited_body
from ..openapi import error_responses
from ..openapi import json_body as body_schema
from ..tenancy import tenant_of

router = APIRouter(tags=["lexicons"], responses=error_responses(404, 413, 415, 422))
MAX_LEXICON_BODY = 8 << 20


class LexiconEntryBody(BaseModel):
    grapheme: str = Field(..., description="Word or phrase as written (whole-word match; CJK: anywhere).")
    phonemes: str = Field(..., description="IPA, or pinyin with tone numbers ('chong2 qing4').")
    alphabet: str = Field("ipa", description="ipa | pinyin")
    case_sensitive: bool = Field(False, description="Match the grapheme's exact case.")


class LexiconBody(BaseModel):
    language: str | None = Field(None, description="Informational: the language the entries are for.")
    entries: list[LexiconEntryBody]


def lexicons(services: Services) -> LexiconStore:
    return LexiconStore(services.store)


@router.put("/v1/lexicons/{name}", openapi_extra=body_schema(LexiconBody))
async def put_lexicon(name: str, request: Request, services: Services = Depends(get_services)) -> dict:
    """Create or replace a lexicon of this tenant."""
    check_name(name)
    raw = await read_limited_body(request, MAX_LEXICON_BODY, "body")
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise InvalidInput("body must be JSON: {language?, entries: [...]}", field="body") from None
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object: {language?, entries: [...]}", field="body")
    entries = parse_entries(body.get("entries"), services.settings.lexicon_max_entries)
    language = body.get("language")
    if language is not None and (not isinstance(language, str) or len(language) > 16):
        raise InvalidInput("language must be a short code such as 'en' or 'zh'", field="language")
    lexicon = await asyncio.to_thread(lexicons(services).put, tenant_of(request.state), name, entries, language)
    return lexicon.public(with_entries=False)


@router.get("/v1/lexicons")
async def list_lexicons(request: Request, services: Services = Depends(get_services)) -> dict:
    found = await asyncio.to_thread(lexicons(services).list, tenant_of(request.state))
    return {"lexicons": [lex.public(with_entries=False) for lex in found]}


@router.get("/v1/lexicons/{name}")
async def get_lexicon(name: str, request: Request, services: Services = Depends(get_services)) -> dict:
    return (await asyncio.to_thread(lexicons(services).get, tenant_of(request.state), name)).public()


@router.delete("/v1/lexicons/{name}", status_code=204)
async def delete_lexicon(name: str, request: Request, services: Services = Depends(get_services)) -> Response:
    await asyncio.to_thread(lexicons(services).delete, tenant_of(request.state), name)
    return Response(status_code=204)
