"""What runs inside Ray Serve's HTTP proxy, before Ray itself handles a request.

Enabled with ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=serve_app.edge:proxy_middlewares`` in the
environment of the Ray processes (``make serve``, the test session and the KubeRay manifest set
it). Ray calls ``proxy_middlewares`` once when a proxy starts:

* ``RequestIdGuard``: an ``X-Request-ID`` that is not 1-128 characters of ``A-Za-z0-9._:-`` is
  dropped before Ray's proxy reads it, so Ray generates one instead: nothing unvalidated is
  echoed in a response header or written to a log, and the header always equals the body's
  ``request_id``.
* a request-head deadline on the proxy's HTTP connections (``header_timeout_s``): uvicorn, which
  Ray's proxy runs, has no header timeout, so a client that connects and sends nothing (or
  trickles its headers) would hold a connection forever. The deadline closes it. Idle keep-alive
  connections are closed by uvicorn itself after ``http_options.keep_alive_timeout_s``; request
  bodies have their own timeouts in the app (``serve_app/timeouts.py``).
"""

from __future__ import annotations

import logging
import re

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tts_engine.settings import Settings

log = logging.getLogger("voxserve")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HEADER = b"x-request-id"


def valid_request_id(value: str) -> bool:
    return bool(REQUEST_ID.fullmatch(value))


class RequestIdGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers, kept = [], False
            for name, value in scope["headers"]:
                if name.lower() == _HEADER:
                    if kept or not valid_request_id(value.decode("latin-1")):
                        continue  # at most one, and only a valid one
                    kept = True
                headers.append((name, value))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def install_header_deadline(seconds: float) -> None:
    """Close a proxy connection that has not sent a complete request head ``seconds`` after it
    opened (or after its previous response, plus the keep-alive time). Wraps uvicorn's HTTP
    protocol classes once per process; a new uvicorn without these hooks is left alone (logged)."""
    classes = []
    try:
        from uvicorn.protocols.http.h11_impl import H11Protocol
        classes.append(H11Protocol)
    except ImportError:
        pass
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        classes.append(HttpToolsProtocol)
    except ImportError:
        pass
    for cls in classes:
        if getattr(cls, "_voxserve_deadline", None) is not None:
            continue
        if not all(hasattr(cls, name) for name in ("connection_made", "on_response_complete")):
            log.warning("uvicorn %s has no connection hooks; request-head deadline not installed", cls.__name__)
            continue
        _wrap(cls, seconds)


def _arm(protocol, seconds: float) -> None:
    expected = getattr(protocol, "cycle", None)  # a new request head replaces the cycle

    def check() -> None:
        transport = protocol.transport
        if transport is None or transport.is_closing() or getattr(protocol, "cycle", None) is not expected:
            return
        # An upgraded connection (a WebSocket) belongs to another protocol now: not ours to close.
        if transport.get_protocol() is not protocol:
            return
        transport.close()

    protocol.loop.call_later(seconds, check)


def _wrap(cls, seconds: float) -> None:
    made, completed = cls.connection_made, cls.on_response_complete

    def connection_made(self, transport) -> None:
        made(self, transport)
        _arm(self, seconds)

    def on_response_complete(self) -> None:
        completed(self)
        if not self.transport.is_closing():
            _arm(self, seconds + float(getattr(self, "timeout_keep_alive", 0) or 0))

    cls.connection_made, cls.on_response_complete = connection_made, on_response_complete
    cls._voxserve_deadline = seconds


def proxy_middlewares() -> list[Middleware]:
    """Ray Serve's HTTP proxy callback (see the module docstring)."""
    install_header_deadline(Settings().header_timeout_s)
    return [Middleware(RequestIdGuard)]
