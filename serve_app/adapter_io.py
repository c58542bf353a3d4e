"""Reading and writing the wire formats of the compatibility routers.

Other APIs take their parameters in more places than ours: GPT-SoVITS in the query
(GET) or a JSON body (POST); CosyVoice's bundled client sends a *form body on a GET*.
``read_params`` gathers them all, with our size limits and 400/413/415 errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote

from fastapi import Request

from tts_engine.errors import BadRequest, UnsupportedMediaType

from .http_io import FORM_TYPES, MAX_JSON_BYTES, content_type_of, read_form, read_limited_body

# Query parameters that may repeat and then mean a list (GPT-SoVITS's aux_ref_audio_paths).
LIST_PARAMS = frozenset({"aux_ref_audio_paths"})


async def read_params(request: Request, upload_limit: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(parameters, uploaded files): the query string, overlaid by a JSON object or form body."""
    params: dict[str, Any] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        params[name] = values if name in LIST_PARAMS else values[-1]
    content_type = content_type_of(request)
    files: dict[str, bytes] = {}
    if content_type in FORM_TYPES:
        fields, files = await read_form(request, upload_limit)
        params.update(fields)
    elif content_type == "application/json":
        params.update(await _json_object(request))
    elif await _has_body(request):
        raise UnsupportedMediaType(f"send JSON or a form (got '{content_type or 'no content type'}')",
                                   field="content-type")
    return params, files


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await read_limited_body(request, MAX_JSON_BYTES, "body")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON", field="body") from None
    if not isinstance(body, dict):
        raise BadRequest("the JSON body must be an object", field="body")
    return body


async def _has_body(request: Request) -> bool:
    return bool(await read_limited_body(request, MAX_JSON_BYTES, "body"))


def header_list(names: Iterable[str]) -> str:
    """A header value naming parameters or phrases; non-ASCII (Chinese instructions) percent-encoded,
    since HTTP header values are Latin-1."""
    return ", ".join(quote(str(n), safe=" =+-._:()'") for n in names)


async def rechunked(body: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """``body`` in pieces of at most ``size`` bytes; nothing is held back, so latency is unchanged."""
    async for chunk in body:
        for at in range(0, len(chunk), size):
            yield chunk[at:at + size]
