"""Typed errors the engine raises for bad input or unavailable dependencies.

Each carries an HTTP status, a machine-readable code and, where the fault is
one request field, that field's name; the HTTP layer maps them 1:1 to
``{"error": {"code", "message", "field"}}`` bodies.
"""

from __future__ import annotations


class VoxServeError(Exception):
    """Base class: ``status`` is the HTTP status the ingress should answer."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self):
        # Errors cross process boundaries (Ray); keep the field when unpickled.
        return (self.__class__, (self.message, self.field))

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class BadRequest(VoxServeError):
    """The request is malformed or asks for something never allowed (e.g. a path outside a root)."""

    status = 400
    code = "bad_request"


class InvalidInput(VoxServeError):
    """A field is present but its value is not acceptable (range, content)."""

    status = 422
    code = "invalid_input"


class EmptyText(InvalidInput):
    code = "empty_text"


class TextTooLong(VoxServeError):
    status = 413
    code = "text_too_long"


class UnsupportedLanguage(InvalidInput):
    code = "unsupported_language"


class UnsupportedFormat(InvalidInput):
    code = "unsupported_format"


class UnknownVoice(VoxServeError):
    status = 404
    code = "unknown_voice"


class NotFound(VoxServeError):
    status = 404
    code = "not_found"


class PayloadTooLarge(VoxServeError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(VoxServeError):
    status = 415
    code = "unsupported_media_type"


class Forbidden(VoxServeError):
    status = 403
    code = "forbidden"


class StorageUnavailable(VoxServeError):
    """Object storage stayed unreachable after bounded retries."""

    status = 503
    code = "storage_unavailable"


class Overloaded(VoxServeError):
    status = 503
    code = "overloaded"


class BackendFailed(VoxServeError):
    """A replica died or became unreachable while serving the request; a retry goes to a live one."""

    status = 502
    code = "backend_failed"


class VoiceNotReady(VoxServeError):
    status = 409
    code = "voice_not_ready"


class LimitReached(VoxServeError):
    """A per-owner quota (e.g. registered voices) is used up; free something first."""

    status = 409
    code = "limit_reached"


class ServiceUnavailable(VoxServeError):
    """A replica the request needed died or is being replaced; the same request may be retried."""

    status = 503
    code = "replica_unavailable"


class AudioPending(VoxServeError):
    """A streamed result's stored copy failed and is being retried; ask again shortly."""

    status = 503
    code = "audio_not_stored_yet"


class AudioNotStored(VoxServeError):
    """A streamed result was delivered but its stored copy could not be written."""

    status = 404
    code = "audio_not_stored"
