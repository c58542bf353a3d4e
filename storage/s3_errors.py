"""How a botocore failure is read: its code and status, whether a retry can help, how to name it.

Kept apart from the client and the store so the retry loop, the bucket set-up and every store
operation judge an error the same way, and messages never carry request details.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequestsException",
    "ConditionalRequestConflict",  # AWS asks callers to retry concurrent conditional writes
})


def _response_of(exc: BaseException) -> dict[str, Any]:
    # Connection-level botocore errors carry response=None, or no response at all.
    response = getattr(exc, "response", None)
    return response if isinstance(response, dict) else {}


def error_code(exc: BaseException) -> str:
    """The S3 error code (``NoSuchKey``, ``SlowDown``...), or "" for errors without a response."""
    return str(_response_of(exc).get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int:
    """The HTTP status of the failed response, or 0 for errors without a response."""
    return int(_response_of(exc).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(exc: Exception) -> bool:
    """True if the same request may succeed when retried (connection trouble, throttling, 5xx)."""
    from botocore.exceptions import ClientError, HTTPClientError, ResponseStreamingError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    # EndpointConnectionError and ConnectTimeoutError are ConnectionErrors;
    # ReadTimeoutError and ConnectionClosedError are HTTPClientErrors.
    if isinstance(exc, (BotoConnectionError, HTTPClientError, ResponseStreamingError)):
        return True
    if isinstance(exc, ClientError):
        status = http_status(exc)
        # 501 means "not supported", which no amount of retrying fixes.
        return (status >= 500 and status != 501) or status == 429 or error_code(exc) in TRANSIENT_CODES
    return False


def describe(exc: BaseException | None) -> str:
    """Short failure summary for messages: status and code or class, never request details."""
    if exc is None:
        return "unknown error"
    code = error_code(exc)
    if code:
        return f"HTTP {http_status(exc)} {code}"
    return type(exc).__name__


def matches(exc: Exception, expected: Collection[str]) -> bool:
    """True if the error's code, or its HTTP status as a string, is one of ``expected``."""
    return error_code(exc) in expected or str(http_status(exc)) in expected
