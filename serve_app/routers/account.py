"""What a caller may know about its own tenant: ``GET /v1/usage``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from tts_engine.errors import NotFound

from ..auth import principal_of
from ..context import Services, get_services
from ..openapi import error_responses

router = APIRouter(tags=["account"])


@router.get("/v1/usage", responses=error_responses(404))
async def usage(request: Request, days: int = Query(7, ge=1, le=366),
                services: Services = Depends(get_services)) -> dict:
    """Your tenant's usage by UTC day, newest first: requests, characters, audio seconds delivered,
    seconds synthesized fresh, cache hits, and the seconds charged against daily quotas."""
    if services.limiter is None:
        raise NotFound("usage is recorded only when auth is on", field=None)
    tenant = principal_of(request).tenant
    return {"tenant": tenant, "days": await services.limiter.usage(tenant, days)}
