"""One error shape for every failure: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tts_engine.errors import Overloaded, VoxServeError

log = logging.getLogger("voxserve")

RETRY_AFTER_S = "1"
# What a client is told for a server-side failure: never paths, hosts or exception class names
# (the detail goes to the log).
PUBLIC_5XX = {
    "storage_unavailable": "storage is unavailable; retry shortly",
    "overloaded": "the service is at capacity; retry shortly",
}


def unwrap(exc: BaseException) -> BaseException:
    """The original exception behind Ray's wrappers (RayTaskError keeps it as ``cause``)."""
    seen = 0
    while seen < 5 and not isinstance(exc, VoxServeError):
        cause = getattr(exc, "cause", None)
        if cause is None or cause is exc:
            break
        exc, seen = cause, seen + 1
    return exc


def as_voxserve_error(exc: BaseException) -> VoxServeError | None:
    """Our typed error for ``exc``, including Ray's overload rejections and lost replicas; None for a bug."""
    from .resilience import replica_gone, unavailable

    exc = unwrap(exc)
    if isinstance(exc, VoxServeError):
        return exc
    name = type(exc).__name__
    if name in ("BackPressureError", "DeploymentUnavailableError"):
        detail = getattr(exc, "message", "") or name
        return Overloaded(f"the service is at capacity ({detail}); retry shortly")
    if replica_gone(exc):
        return unavailable("the request")
    return None


def public_error(err: VoxServeError) -> tuple[dict, int, dict[str, str]]:
    """(body, status, headers) safe to show a client; 5xx details are logged, not sent."""
    body = err.to_dict()
    headers = dict(err.headers()) if hasattr(err, "headers") else {}
    if err.status >= 500:
        log.warning("%s: %s", err.code, err.message)
        body["error"]["message"] = PUBLIC_5XX.get(err.code, "the service is unavailable; retry shortly")
    if err.status == 503:
        headers.setdefault("Retry-After", RETRY_AFTER_S)
    return body, err.status, headers


def error_response(err: VoxServeError, headers: dict[str, str] | None = None) -> JSONResponse:
    body, status, extra = public_error(err)
    return JSONResponse(body, status_code=status, headers={**extra, **(headers or {})})


def internal_error(exc: BaseException, scope: dict) -> JSONResponse:
    """A bug: logged once with its traceback, answered as a JSON 500."""
    log.error("unhandled error for %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
    body = {"error": {"code": "internal_error", "message": "internal error", "field": None}}
    return JSONResponse(body, status_code=500)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts for this path (Starlette's 405 names only one route's)."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in getattr(request.app.state, "api_routes", ()):
        if route.path_regex.match(path):
            methods |= set(route.methods or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Typed errors, validation and HTTP errors answered inside the app; anything else is shaped by
    the outer ``RequestContext`` middleware (so nothing is answered and then re-raised)."""

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form")]
        # The request field; deeper parts of a loc are union members ("speaker.str"), not fields.
        field = loc[0] if loc else None
        status = 400 if first.get("type") == "json_invalid" else 422
        message = first.get("msg", "invalid request")
        if field:
            message = f"{field}: {message}"
        body = {"error": {"code": "invalid_request", "message": message, "field": field}}
        return JSONResponse(body, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        field = None
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
            field = "method"
        elif exc.status_code == 404:
            field = "path"
        body = {"error": {"code": code, "message": str(exc.detail), "field": field}}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(VoxServeError)
    async def on_ours(request: Request, exc: VoxServeError) -> JSONResponse:
        return error_response(exc)

    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    async def on_ray_overload(request: Request, exc: Exception) -> JSONResponse:
        return error_response(as_voxserve_error(exc) or Overloaded("the service is at capacity; retry shortly"))

    for exc_class in (BackPressureError, DeploymentUnavailableError):
        FastAPI.add_exception_handler(app, exc_class, on_ray_overload)
        pinned_handlers(app).add(exc_class)


def pinned_handlers(app: FastAPI) -> set:
    """Exception classes whose handler is ours for good: Ray's replica registers plain-text handlers
    for its overload errors on the app after it starts (the plain 503s of issue 9, item 3)."""
    return getattr(app, "pinned_exceptions", set())


class VoxServeAPI(FastAPI):
    """FastAPI that keeps our handlers when Ray Serve later adds its own for the same exceptions.
    (A plain attribute, not app.state: Serve ships the app to replicas pickled, and keeps this.)"""

    def __init__(self, **kwargs) -> None:
        self.pinned_exceptions: set[type[BaseException]] = set()
        super().__init__(**kwargs)

    def add_exception_handler(self, exc_class_or_status_code, handler) -> None:  # type: ignore[override]
        if exc_class_or_status_code in pinned_handlers(self):
            return
        super().add_exception_handler(exc_class_or_status_code, handler)
