"""Auth and quota errors, in the one error shape ({"error": {"code", "message", "field"}})."""

from __future__ import annotations

from tts_engine.errors import VoxServeError


class Unauthorized(VoxServeError):
    """No, malformed, expired, revoked or unknown credential (RFC 6750 ``invalid_token``)."""

    status = 401
    code = "invalid_token"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer realm="voxserve", error="invalid_token", '
                                    f'error_description="{_quoted(self.message)}"'}


class InsufficientScope(VoxServeError):
    status = 403
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this route needs the '{scope}' scope", field="scope")
        self.scope = scope

    def __reduce__(self):
        return (self.__class__, (self.scope,))

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer realm="voxserve", error="insufficient_scope", scope="{self.scope}"'}


class RateLimited(VoxServeError):
    """Over a client limit; ``field`` names the limit (rpm, concurrent_streams, audio_seconds_per_day)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, field: str | None = None, retry_after_s: float = 1.0,
                 limit: float = 0, remaining: float = 0, reset_s: float = 0) -> None:
        super().__init__(message, field)
        self.retry_after_s, self.limit, self.remaining, self.reset_s = retry_after_s, limit, remaining, reset_s

    def __reduce__(self):
        return (self.__class__, (self.message, self.field, self.retry_after_s, self.limit, self.remaining,
                                 self.reset_s))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.499))),
                "X-RateLimit-Limit": str(int(self.limit)), "X-RateLimit-Remaining": str(int(self.remaining)),
                "X-RateLimit-Reset": str(max(0, round(self.reset_s + 0.499)))}


def _quoted(text: str) -> str:
    """A header-safe quoted-string body (RFC 7230: no quotes, backslashes or control characters)."""
    return "".join(c for c in text if 32 <= ord(c) < 127 and c not in '"\\')[:200]
