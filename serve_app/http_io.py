"""Reading request bodies with our limits and error shapes (400/413/415/422)."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from tts_engine.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

from .forms import parse_multipart, parse_urlencoded

MAX_JSON_BYTES = 1 << 20
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def content_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited_body(request: Request, limit: int, what: str) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (before reading it all)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes", field=what)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes", field=what)
    request._body = bytes(body)  # lets request.form() parse what was already read
    return request._body


def validated(model: type[BaseModel], data: dict | bytes) -> BaseModel:
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def read_model(request: Request, model: type[BaseModel]) -> BaseModel:
    """Parse a JSON body into ``model``, with our 400/413/415/422 errors."""
    content_type = content_type_of(request)
    if content_type not in ("application/json", ""):
        raise UnsupportedMediaType(f"send application/json (got '{content_type}')", field="content-type")
    raw = await read_limited_body(request, MAX_JSON_BYTES, "body")
    return validated(model, raw or b"{}")


async def read_form(request: Request, limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """Multipart or urlencoded form: (text fields, file fields as bytes); text strictly UTF-8."""
    body = await read_limited_body(request, limit, "body")
    if content_type_of(request) == "multipart/form-data":
        return parse_multipart(body, request.headers.get("content-type", ""))
    return parse_urlencoded(body), {}


async def read_audio_upload(request: Request, max_bytes: int, field: str = "audio") -> tuple[dict[str, str], bytes]:
    """A multipart upload with one audio file: (its text fields, the file's bytes), with our
    415 (not multipart), 422 (no file) and 413 (over ``max_bytes``) naming the field."""
    if content_type_of(request) != "multipart/form-data":
        raise UnsupportedMediaType(f"send multipart/form-data with an '{field}' file", field="content-type")
    fields, files = await read_form(request, max_bytes + 64 * 1024)
    audio = files.get(field)
    if audio is None:
        raise InvalidInput(f"an '{field}' file is required", field=field)
    if len(audio) > max_bytes:
        raise PayloadTooLarge(f"{field} is over the limit of {max_bytes} bytes", field=field)
    return fields, audio
