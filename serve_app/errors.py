"""One error shape for every failure: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tts_engine.errors import BackendFailed, Overloaded, VoxServeError

log = logging.getLogger("voxserve")

RETRY_AFTER_S = "1"
# Ray's errors for a replica (actor) or its node dying mid-request: the client's request was
# fine, so it gets 502 (the seed article's "backend trouble"), never a 500.
REPLICA_FAILURES = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError",
                    "NodeDiedError", "ReplicaUnavailableError")
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
    """Our typed error for ``exc``, including Ray's overload rejections; None for a bug."""
    exc = unwrap(exc)
    if isinstance(exc, VoxServeError):
        return exc
    name = type(exc).__name__
    if name in ("BackPressureError", "DeploymentUnavailableError"):
        return Overloaded("the service is at capacity; retry shortly")
    if name in REPLICA_FAILURES:
        return BackendFailed("a backend replica failed while serving this request; retry it")
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form")]
        field = ".".join(loc) or None
        status = 400 if first.get("type") == "json_invalid" else 422
        message = first.get("msg", "invalid request")
        if field:
            message = f"{field}: {message}"
        body = {"error": {"code": "invalid_request", "message": message, "field": field}}
        return JSONResponse(body, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": str(exc.detail), "field": None}}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # Specific handlers answer inside Starlette's exception middleware; the catch-all
    # below runs in its server-error middleware, which re-raises (and Ray logs a failure).
    @app.exception_handler(VoxServeError)
    async def on_ours(request: Request, exc: VoxServeError) -> JSONResponse:
        return error_response(exc)

    from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError
    from ray.serve.exceptions import BackPressureError

    @app.exception_handler(RayTaskError)
    @app.exception_handler(RayActorError)
    @app.exception_handler(WorkerCrashedError)
    @app.exception_handler(BackPressureError)
    async def on_ray(request: Request, exc: Exception) -> JSONResponse:
        return await on_any(request, exc)

    @app.exception_handler(Exception)
    async def on_any(request: Request, exc: Exception) -> JSONResponse:
        err = as_voxserve_error(exc)
        if err is not None:
            return error_response(err)
        log.exception("unhandled error for %s %s", request.method, request.url.path)
        body = {"error": {"code": "internal_error", "message": "internal error", "field": None}}
        return JSONResponse(body, status_code=500)
