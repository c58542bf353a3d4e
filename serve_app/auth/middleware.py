"""The ASGI middleware that puts auth, scopes and limits in front of every route.

Order for one request: CORS (preflights are answered here, before auth: browsers send them
without credentials) -> public allow-list -> bearer credential -> scope -> request token
(429 rpm / audio quota) -> the app. A response that starts streaming (200 without a
Content-Length: chunked audio, SSE) takes a concurrent-stream slot first; over the limit it
is answered 429 instead and the app's body is never produced.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_engine.errors import VoxServeError

from .. import context
from ..errors import as_voxserve_error, public_error
from .errors import InsufficientScope, RateLimited, Unauthorized
from .principal import ANONYMOUS, Principal
from .scopes import is_public, relative_path, required_scope

log = logging.getLogger("voxserve")

CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
CORS_EXPOSED = ["X-Request-ID", "X-Audio-URL", "X-Audio-Key", "X-Cache", "Retry-After", "X-RateLimit-Limit",
                "X-RateLimit-Remaining", "X-RateLimit-Reset"]


class _StreamRejected(BaseException):
    """Raised out of ``send`` to stop an app whose stream was answered 429 (BaseException, so no
    ``except Exception`` handler in between turns it into a 500)."""


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cors: ASGIApp | None = None
        self._background: set[asyncio.Task] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._cors is None:
            origins = context.get_services().settings.cors_allow_origins
            self._cors = CORSMiddleware(self._guarded, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                                        allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED, max_age=600)
        await self._cors(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = context.get_services()
        state = scope.setdefault("state", {})
        path = relative_path(scope)
        if services.auth is None:
            state["principal"] = ANONYMOUS
        if services.auth is None or is_public(path):
            await self.app(scope, receive, send)
            return
        try:
            principal = await services.auth.authenticate(Headers(scope=scope).get("authorization"))
            needed = required_scope(scope["method"], path)
            if not principal.has(needed):
                state["principal"] = principal
                raise InsufficientScope(needed)
            decision = None
            if principal.limits is not None and services.limiter is not None:
                state["principal"] = principal
                decision = await services.limiter.take(principal)
        except (Unauthorized, InsufficientScope, RateLimited) as err:
            await self._reject(err, scope, receive, send)
            return
        except Exception as exc:  # noqa: BLE001 - store/limiter down: our 503, never a 500
            err = as_voxserve_error(exc)
            if err is None:
                raise
            await self._reject(err, scope, receive, send)
            return
        state["principal"] = principal
        await self._call(scope, receive, send, principal, decision.headers() if decision else {})

    async def _call(self, scope: Scope, receive: Receive, send: Send, principal: Principal,
                    limit_headers: dict[str, str]) -> None:
        services = context.get_services()
        slot: str | None = None
        rejected = False

        async def guarded_send(message: Message) -> None:
            nonlocal slot, rejected
            if rejected:
                raise _StreamRejected()
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in limit_headers.items():
                    headers[name] = value
                streaming = message["status"] == 200 and "content-length" not in headers
                if streaming and principal.limits is not None and services.limiter is not None:
                    try:
                        slot = await services.limiter.open_stream(principal)
                    except RateLimited as err:
                        rejected = True
                        await self._reject(err, scope, receive, send)
                        raise _StreamRejected() from None
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except BaseException:
            if not rejected:
                raise
        finally:
            if slot is not None:  # released in the background: this task may be being cancelled
                task = asyncio.get_running_loop().create_task(services.limiter.close_stream(principal, slot))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    @staticmethod
    async def _reject(err: VoxServeError, scope: Scope, receive: Receive, send: Send) -> None:
        headers = err.headers() if hasattr(err, "headers") else {}
        body, status, extra = public_error(err)
        response = JSONResponse(body, status_code=status, headers={**headers, **extra})
        await response(scope, receive, send)
