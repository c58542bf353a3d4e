"""Request-body timeouts: a client that trickles (or stops sending) its body gets 408 and the
connection is closed, instead of holding a replica slot until the proxy's request timeout.

``body_idle_timeout_s`` bounds the gap between two body chunks, ``body_timeout_s`` the whole body.
Only the body is timed: once it is complete, ``receive`` is passed through untouched (streaming
responses wait on it for the client's disconnect).
"""

from __future__ import annotations

import asyncio
import time

from ray.exceptions import TaskCancelledError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_engine.errors import VoxServeError

from . import context


class RequestTimeout(VoxServeError):
    status = 408
    code = "request_timeout"


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = context.get_services().settings
        idle, total = settings.body_idle_timeout_s, settings.body_timeout_s
        deadline = time.monotonic() + total
        done = False

        async def timed_receive() -> Message:
            nonlocal done
            if done:
                return await _disconnect_if_cancelled(receive)
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, min(idle, left)))
            except asyncio.TimeoutError:
                which = "body_timeout_s" if left <= idle else "body_idle_timeout_s"
                limit = total if left <= idle else idle
                raise RequestTimeout(f"the request body did not arrive in time (limit {limit:g} s)",
                                     field=which) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, timed_receive, send)


async def _disconnect_if_cancelled(receive: Receive) -> Message:
    """The next message after the body: a disconnect when Serve has cancelled the request. Serve's
    proxy cancels a request whose client left, and the waiting receive() of Starlette's disconnect
    listener then raised TaskCancelledError inside a streaming response: asyncio logged a traceback
    ("exception was never retrieved") for about one stream in four that clients left under load."""
    try:
        return await receive()
    except TaskCancelledError:
        return {"type": "http.disconnect"}
