"""Operations: liveness, readiness, per-replica stats, and local-store media."""

import asyncio
import email.utils
import time

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse
from ray import serve

from storage import LocalStore
from tts_engine.errors import InvalidInput, NotFound

from ..context import Services, get_services

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: Services = Depends(get_services)) -> JSONResponse:
    problems = await asyncio.to_thread(readiness_problems, services)
    body = {"status": "ready" if not problems else "not_ready", "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503,
                        headers=None if not problems else {"Retry-After": "1"})


def readiness_problems(services: Services) -> list[str]:
    problems = []
    try:
        services.store.check()
    except Exception as exc:  # noqa: BLE001 - any storage failure means not ready
        problems.append(f"storage: {getattr(exc, 'message', type(exc).__name__)}")
    for name, app_status in serve.status().applications.items():
        for dep_name, dep in app_status.deployments.items():
            if str(dep.status).split(".")[-1] not in ("HEALTHY", "UPSCALING", "DOWNSCALING"):
                problems.append(f"{name}/{dep_name}: {dep.status}")
    return problems


@router.get("/v1/stats")
async def stats(services: Services = Depends(get_services)) -> dict:
    """This ingress replica's counters and one Synthesizer replica's batch sizes (for tests and
    dashboards without Prometheus; cluster-wide numbers are in Ray's metrics)."""
    return {"ingress": dict(services.metrics.local), "synthesizer": await services.synthesizer.stats.remote(),
            "speaker_cache": await services.speaker_cache.stats.remote()}


@router.get("/media/{key:path}", include_in_schema=False)
async def media(key: str, expires: str = "", sig: str = "",
                services: Services = Depends(get_services)) -> FileResponse:
    """Local-store audio behind HMAC-signed, expiring URLs (S3 deployments use presigned/CDN URLs)."""
    store = services.store
    if not isinstance(store, LocalStore):
        raise NotFound("media is served by object storage in this deployment", field="key")
    try:
        store.verify_media_signature(key, expires, sig)
        path = store.media_path(key)
    except InvalidInput as exc:
        return JSONResponse({"error": {"code": "bad_key", "message": exc.message, "field": "key"}},
                            status_code=400)
    head = store.head(key)
    media_type = head.content_type if head else "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers=cache_headers(int(expires)))


def cache_headers(expires_at: int) -> dict[str, str]:
    """Cacheable only until the signed URL expires: a shared cache must not serve it past that."""
    remaining = max(0, expires_at - int(time.time()))
    return {"Cache-Control": f"public, max-age={remaining}",
            "Expires": email.utils.formatdate(expires_at, usegmt=True)}
