"""Who is calling: the ``Principal`` every authenticated request carries in ``request.state.principal``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from storage.clients import DEFAULT_TENANT, SCOPES, Limits


@dataclass(frozen=True)
class Principal:
    client_id: str
    tenant: str
    scopes: frozenset[str]
    limits: Limits | None      # None: not limited (auth: none)
    via: str                   # "token" | "api_key" | "none"

    def has(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, frozenset(SCOPES), None, "none")


def principal_of(request: Request) -> Principal:
    """The caller of this request (set by the auth middleware; anonymous when auth is off)."""
    return getattr(request.state, "principal", None) or ANONYMOUS


def tenant_of(request: Request) -> str:
    return principal_of(request).tenant
