"""``POST /oauth/token``: RFC 6749 client credentials grant -> a bearer access token (JWT).

    curl -s localhost:8000/oauth/token -d grant_type=client_credentials \
         -d client_id=vxc_... -d client_secret=...          # or: -u vxc_...:secret (HTTP Basic)

Errors here use RFC 6749 section 5.2's shape, ``{"error": "invalid_client", "error_description"}``,
not our ``{"error": {...}}``: OAuth client libraries read ``error`` as a string code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tts_engine.errors import VoxServeError

from ..context import Services, get_services
from ..http_io import content_type_of, read_form

router = APIRouter(tags=["auth"])

MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(BaseModel):
    """RFC 6749 5.2's error body (not VoxServe's own error shape: OAuth clients parse this one)."""
    error: str
    error_description: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


def _oauth_response(description: str) -> dict:
    return {"model": OAuthError, "description": description}


TOKEN_RESPONSES: dict[int | str, dict] = {
    200: {"model": TokenResponse, "description": "An access token (RFC 6749 5.1)"},
    400: _oauth_response("invalid_request, unsupported_grant_type or invalid_scope"),
    401: _oauth_response("invalid_client"),
    404: _oauth_response("auth is off on this server: no tokens are issued"),
    413: _oauth_response("the form is over 16 KiB"),
}


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**NO_STORE, **(headers or {})})


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """(client_id, client_secret) from ``Authorization: Basic`` (form-encoded, RFC 6749 2.3.1)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


@router.post("/oauth/token", responses=TOKEN_RESPONSES)
async def token(request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    """Client credentials grant (form: grant_type=client_credentials, client_id, client_secret[, scope];
    or the client's id and secret as HTTP Basic). The token is valid for ``token_ttl_s`` (2 h)."""
    if services.issuer is None:
        return oauth_error(404, "invalid_request", "auth is off on this server: no tokens are needed")
    if content_type_of(request) != "application/x-www-form-urlencoded":
        return oauth_error(400, "invalid_request", "send application/x-www-form-urlencoded")
    try:
        fields, _ = await read_form(request, MAX_FORM_BYTES)
    except VoxServeError as exc:  # too big or not decodable: still in OAuth's shape
        return oauth_error(exc.status if exc.status < 500 else 400, "invalid_request", exc.message)
    grant = fields.get("grant_type")
    if not grant:
        return oauth_error(400, "invalid_request", "grant_type is required")
    if grant != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    basic = basic_credentials(request)
    if basic is not None and ("client_id" in fields and fields["client_id"] != basic[0] or "client_secret" in fields):
        return oauth_error(400, "invalid_request", "send the client credentials once: HTTP Basic or form fields")
    client_id, secret = basic if basic is not None else (fields.get("client_id", ""), fields.get("client_secret", ""))
    client = await asyncio.to_thread(services.clients.verify_secret, client_id, secret) if client_id else None
    if client is None:
        return oauth_error(401, "invalid_client", "unknown client, wrong secret or revoked client",
                           {"WWW-Authenticate": 'Basic realm="voxserve"'})
    requested = fields.get("scope", "").split()
    if any(s not in client.scopes for s in requested):
        return oauth_error(400, "invalid_scope", f"this client may ask only for {client.scopes}")
    issued = await asyncio.to_thread(services.issuer.issue, client, requested or client.scopes)
    return JSONResponse({"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in,
                         "scope": issued.scope}, headers=NO_STORE)
