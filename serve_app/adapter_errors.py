"""Errors in another API's shape, for the compatibility routers (GPT-SoVITS, CosyVoice).

A router opts in with ``APIRouter(route_class=adapter_route(render))``: any typed error
its routes raise (our ``VoxServeError``s, body validation, Ray's overload and replica
failures) is turned into a ``Problem`` and rendered by ``render`` in the upstream
API's shape, with our status code unless the adapter maps it. Anything else is a bug:
it goes on to the app's handlers (logged, 500 in our shape).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, replace

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from .errors import RETRY_AFTER_S, as_voxserve_error


@dataclass(frozen=True)
class Problem:
    status: int
    code: str
    message: str
    field: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)  # "field" is taken above

    def renamed(self, wire_names: dict[str, str]) -> "Problem":
        """The same problem with our field name replaced by the adapter's wire name
        (``speed`` -> ``speed_factor``), in the message too when it starts with it."""
        wire = wire_names.get(self.field or "")
        if wire is None:
            return self
        message = self.message
        if message.startswith(f"{self.field} "):
            message = wire + message[len(self.field):]
        elif not message.startswith(wire):
            message = f"{wire}: {message}"
        return replace(self, field=wire, message=message)


def problem_of(exc: Exception) -> Problem | None:
    """The client-facing problem behind ``exc``; None when it is a bug of ours."""
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form")]
        name = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        status = 400 if first.get("type") == "json_invalid" else 422
        return Problem(status, "invalid_request", f"{name}: {message}" if name else message, name)
    if isinstance(exc, HTTPException):
        return Problem(exc.status_code, "http_error", str(exc.detail), None, dict(exc.headers or {}))
    err = as_voxserve_error(exc)
    if err is None:
        return None
    headers = {"Retry-After": RETRY_AFTER_S} if err.status in (429, 503) else {}
    return Problem(err.status, err.code, err.message, err.field, headers)


def adapter_route(render: Callable[[Problem], Response]) -> type[APIRoute]:
    """A route class whose handlers answer typed errors with ``render(problem)``."""

    class AdapterRoute(APIRoute):
        def get_route_handler(self) -> Callable:
            handler = super().get_route_handler()

            async def reshaped(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:  # noqa: BLE001 - typed ones are answered, bugs re-raised
                    problem = problem_of(exc)
                    if problem is None:
                        raise
                    return render(problem)

            return reshaped

    return AdapterRoute
