"""Which tenant a request acts for.

Tenant-owned objects (lexicons) are keyed by tenant. Until the auth middleware sets
``request.state.principal`` (another branch), every request is tenant ``default``; at merge this
reads the authenticated principal's tenant, and the WebSocket route passes its own principal.
"""

from __future__ import annotations

from typing import Any

DEFAULT_TENANT = "default"


def tenant_of(state: Any) -> str:
    """The tenant of a request's (or WebSocket's) ``state``: its principal's, else ``default``."""
    principal = getattr(state, "principal", None)
    tenant = getattr(principal, "tenant", None) or (principal.get("tenant") if isinstance(principal, dict) else None)
    return str(tenant) if tenant else DEFAULT_TENANT
