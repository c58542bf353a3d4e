"""Operations: liveness, readiness, per-replica stats, and local-store media."""

import asyncio
import email.utils
import logging
import time

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse
from ray import serve

from storage import LocalStore, validate_key
from tts_engine.errors import AudioNotStored, AudioPending, InvalidInput, NotFound

from ..context import Services, get_services
from ..openapi import error_responses

log = logging.getLogger("voxserve")
router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the problems are listed; Retry-After set"}})
async def readyz(services: Services = Depends(get_services)) -> JSONResponse:
    problems = await asyncio.to_thread(readiness_problems, services)
    body = {"status": "ready" if not problems else "not_ready", "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503,
                        headers=None if not problems else {"Retry-After": "1"})


def readiness_problems(services: Services) -> list[str]:
    problems = []
    try:
        services.store.check()   # a probe write: reachable is not writable
    except Exception as exc:  # noqa: BLE001 - any storage failure means not ready
        # The detail (paths, hosts, exception types) is for the log, not for anyone who asks.
        log.warning("readiness: storage check failed: %s", getattr(exc, "message", repr(exc)))
        problems.append("storage: unavailable")
    return problems + deployment_problems(serve.status().applications, _own_app())


def _own_app() -> str | None:
    try:
        return serve.get_replica_context().app_name
    except Exception:  # noqa: BLE001 - outside a replica (tests): look at every application
        return None


def deployment_problems(applications: dict, app_name: str | None) -> list[str]:
    """Ready while every deployment of this application has a running replica: one replica being
    replaced (crash, node loss) leaves the service able to answer, so it stays ready."""
    problems = []
    for name, app_status in applications.items():
        if app_name is not None and name != app_name:
            continue
        for dep_name, dep in app_status.deployments.items():
            running = sum(n for state, n in dep.replica_states.items() if str(state).endswith("RUNNING"))
            if running == 0:
                problems.append(f"{name}/{dep_name}: no running replica ({dep.status}: {dep.message})".strip())
    return problems


@router.get("/v1/stats")
async def stats(services: Services = Depends(get_services)) -> dict:
    """This ingress replica's counters and one Synthesizer replica's batch sizes per model family (for
    tests and dashboards without Prometheus; cluster-wide numbers are in Ray's metrics)."""
    synthesizers = {family: await handle.stats.remote() for family, handle in services.synthesizers.items()}
    body = {"ingress": dict(services.metrics.local), "synthesizers": synthesizers,
            "speaker_cache": await services.speaker_cache.stats.remote()}
    if services.limiter is not None:
        body["limiter"] = await services.limiter.stats()
    return body


@router.get("/media/{key:path}", include_in_schema=False)
async def media(key: str, expires: str = "", sig: str = "",
                services: Services = Depends(get_services)) -> FileResponse:
    """Local-store audio behind HMAC-signed, expiring URLs (S3 deployments use presigned/CDN URLs)."""
    store = services.store
    if not isinstance(store, LocalStore):
        raise NotFound("media is served by object storage in this deployment", field="key")
    try:
        store.verify_media_signature(key, expires, sig)
        if not await asyncio.to_thread(store.exists, key):
            raise_for_missing(services, key)
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


@router.get("/v1/tts/status/{key:path}", responses=error_responses(404, 422, 503))
async def audio_status(key: str, services: Services = Depends(get_services)) -> dict:
    """Whether a key's audio is stored: ``stored``; ``pending`` (a stream's store failed, retrying)
    or ``failed`` with the reason. A stream advertises this in its ``X-Audio-Status`` header."""
    validate_key(key)
    if await asyncio.to_thread(services.store.exists, key):
        return {"key": key, "status": "stored"}
    raise_for_missing(services, key)


def raise_for_missing(services: Services, key: str) -> None:
    """The error for a key with no object: what this replica knows of a failed store, else 404."""
    outcome = services.synthesis.deferred.outcome(key)
    # The store's own reason can name paths and hosts: it goes to the log, the client gets the state.
    if outcome is not None and outcome.status == "pending":
        log.info("audio %s not stored yet: %s", key, outcome.reason)
        raise AudioPending("storing this streamed audio failed; retrying until "
                           f"{time.strftime('%H:%M:%S', time.gmtime(outcome.retry_until))} UTC", field="key")
    if outcome is not None and outcome.status == "failed":
        log.info("audio %s not stored: %s", key, outcome.reason)
        raise AudioNotStored("this audio was streamed but could not be stored; synthesize it again", field="key")
    raise NotFound(f"no stored audio for key {key!r}", field="key")
