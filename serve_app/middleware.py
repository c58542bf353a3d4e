"""The outermost layer of the app (pure ASGI): request id, metrics, one log line per request, and
our JSON error shape for anything that escapes the routes.

Starlette's catch-all handler answers a 500 and then re-raises, so every such request became an
ERROR with a traceback in Ray's logs and Ray's proxy saw a failure. Here an exception that escapes
before the response starts is answered with our JSON (typed errors and Ray's overload / replica
loss as 4xx/503, anything else a logged 500) and not re-raised. After the response started, a
client that left is an INFO line; any other failure is re-raised so the proxy cuts the connection
(the client must not take a truncated stream for a complete one).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response, internal_error, as_voxserve_error

log = logging.getLogger("voxserve")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _client_left(exc: BaseException) -> bool:
    from starlette.requests import ClientDisconnect

    return isinstance(exc, (asyncio.CancelledError, ClientDisconnect, ConnectionError))


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: list[int] = []

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BaseException as exc:  # noqa: BLE001 - shaped here, re-raised only mid-response
            if not await self._answer(exc, scope, receive, tracking_send, status, request_id):
                raise
        finally:
            self._finish(scope, status[0] if status else 499, started, request_id)

    async def _answer(self, exc: BaseException, scope: Scope, receive: Receive, send: Send,
                      status: list[int], request_id: str) -> bool:
        """True if ``exc`` was answered (or needs no answer); False to re-raise it."""
        path = scope.get("path", "")
        if _client_left(exc):
            log.info("%s %s: client disconnected (request_id=%s)", scope.get("method"), path, request_id)
            return not isinstance(exc, asyncio.CancelledError)  # cancellation must propagate
        if status:
            log.warning("%s %s failed after its response started (request_id=%s): %s: %s",
                        scope.get("method"), path, request_id, type(exc).__name__, exc)
            return False
        if not isinstance(exc, Exception):
            return False
        err = as_voxserve_error(exc)
        response = error_response(err) if err is not None else internal_error(exc, scope)
        await response(scope, receive, send)
        return True

    @staticmethod
    def _finish(scope: Scope, status: int, started: float, request_id: str) -> None:
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        app = scope.get("app")
        metrics = getattr(getattr(app, "state", None), "metrics", None)
        if metrics is not None:
            principal = scope.get("state", {}).get("principal")
            metrics.request(path, status, time.perf_counter() - started, principal.tenant if principal else "-")
        level = logging.WARNING if status >= 500 else logging.INFO
        log.log(level, "%s %s -> %s request_id=%s", scope.get("method"), scope.get("path"), status, request_id)
