"""Client management over HTTP for the ``admin`` scope (an operator scope across tenants):
``POST/GET /v1/admin/clients``, ``DELETE /v1/admin/clients/{id}`` (revoke), ``POST .../{id}/keys``.
The same operations as the ``voxserve clients`` / ``voxserve keys`` CLI."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from storage.clients import DEFAULT_SCOPES, DEFAULT_TENANT, ClientStore, limits_from
from tts_engine.errors import NotFound

from ..context import Services, get_services
from ..http_io import read_model
from ..openapi import error_responses
from ..openapi import json_body as body_schema

# Every route answers 404 where auth is off (there are no clients then).
router = APIRouter(tags=["admin"], responses=error_responses(404))


class ClientCreate(BaseModel):
    name: str = Field(..., description="1 to 100 characters.")
    tenant: str = DEFAULT_TENANT
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    rpm: int | None = Field(None, ge=1, description="Requests per minute (default: settings.default_rpm).")
    concurrent_streams: int | None = Field(None, ge=1)
    audio_seconds_per_day: float | None = Field(None, gt=0)


def clients_of(services: Services) -> ClientStore:
    if services.clients is None:
        raise NotFound("auth is off on this server: there are no clients", field=None)
    return services.clients


@router.post("/v1/admin/clients", status_code=201, openapi_extra=body_schema(ClientCreate))
async def create_client(request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    clients = clients_of(services)
    body: ClientCreate = await read_model(request, ClientCreate)
    limits = limits_from(services.settings, body.rpm, body.concurrent_streams, body.audio_seconds_per_day)
    record, secret = await asyncio.to_thread(clients.create_client, body.name, body.tenant, body.scopes, limits)
    return JSONResponse({"client_id": record.client_id, "client_secret": secret, "tenant": record.tenant},
                        status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/v1/admin/clients")
async def list_clients(services: Services = Depends(get_services)) -> dict:
    clients = clients_of(services)
    return {"clients": [c.public() for c in await asyncio.to_thread(clients.list_clients)]}


@router.delete("/v1/admin/clients/{client_id}", status_code=204)
async def revoke_client(client_id: str, services: Services = Depends(get_services)) -> Response:
    await asyncio.to_thread(clients_of(services).revoke_client, client_id)
    return Response(status_code=204)


@router.post("/v1/admin/clients/{client_id}/keys", status_code=201)
async def create_key(client_id: str, services: Services = Depends(get_services)) -> JSONResponse:
    record, key = await asyncio.to_thread(clients_of(services).create_key, client_id)
    return JSONResponse({"key_id": record.key_id, "client_id": client_id, "api_key": key}, status_code=201,
                        headers={"Cache-Control": "no-store"})
