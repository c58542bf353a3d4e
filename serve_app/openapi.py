"""OpenAPI pieces for routes that read their own bodies: request bodies and our error responses.

Routes parse bodies themselves (to enforce size limits and our 4xx shape), so FastAPI cannot infer
their request schemas; these helpers declare them, and every error status a route can answer
with the one ``ErrorBody`` shape.
"""

from __future__ import annotations

from pydantic import BaseModel

from .schemas import ErrorBody, TTSRequest

_DESCRIPTIONS = {
    400: "Malformed body (JSON, multipart) or a forbidden path",
    403: "Not allowed on this server (the message says what to use instead)",
    404: "Unknown voice, key or route",
    409: "Voice still processing, or a per-owner limit reached",
    413: "Body, upload, text or its synthesized length over the limit (the message names it)",
    415: "Wrong Content-Type or an upload that is not audio",
    422: "A field's value is out of range or invalid (the message names the field and the limit)",
    503: "Storage down, a replica lost, or at capacity; retry after Retry-After seconds",
}


def error_responses(*statuses: int, model: type = ErrorBody) -> dict[int | str, dict]:
    """``responses=`` entries for the given statuses, each with the ErrorBody schema (or an
    adapter's own error ``model``)."""
    out: dict[int | str, dict] = {}
    for status in statuses:
        entry: dict = {"model": model, "description": _DESCRIPTIONS[status]}
        if status == 503:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}
        out[status] = entry
    return out


SYNTHESIS_ERRORS = error_responses(400, 404, 409, 413, 415, 422, 503)


def multipart_body(properties: dict[str, dict], required: list[str]) -> dict:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


VOICE_UPLOAD = multipart_body(
    {
        "audio": {"type": "string", "format": "binary", "description": "Reference clip (wav, flac, mp3, ogg)"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "transcript": {"type": "string", "description": "What the clip says (limit: max_transcript_chars)"},
        "language": {"type": "string", "description": "A language the base voice speaks"},
    },
    required=["audio", "name"],
)


def tts_body() -> dict:
    """POST /v1/tts and /v1/tts/stream: JSON, or the same fields as a form plus a reference clip."""
    schema = TTSRequest.model_json_schema()
    form = {**schema, "properties": {**schema["properties"], "reference_audio": {
        "type": "string", "format": "binary", "description": "Optional reference clip (voice adaptation)"}}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema},
                                                         "multipart/form-data": {"schema": form}}}}


def json_body(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}
