"""Which routes are public and which scope every other route needs.

Auth is on for every path that is not listed here as public, so routers added later are
protected without edits; a route that needs more than ``tts`` gets a rule below.
"""

from __future__ import annotations

# Exact public paths (relative to the application's route prefix).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/oauth/token", "/docs", "/docs/oauth2-redirect", "/redoc",
                          "/openapi.json", "/", "/playground"})
# Public prefixes: /media URLs carry their own HMAC signature and expiry; the playground's static
# files are a page (its API calls carry the key the user pastes). The realtime WebSocket
# authenticates in its session (header or config frame), closing 1008 when refused.
PUBLIC_PREFIXES = ("/media/", "/static/")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def required_scope(method: str, path: str) -> str:
    """The scope a request needs; ``tts`` unless a rule says otherwise."""
    if path == "/v1/stats" or path.startswith("/v1/admin/") or path == "/v1/admin":
        return "admin"
    if method == "POST" and path.rstrip("/") == "/v1/voices":
        return "voices:write"
    if method == "DELETE" and path.startswith("/v1/voices/"):
        return "voices:write"
    # The seed article's cloud API registers voices in two steps (upload, train).
    if method == "POST" and path.rstrip("/") in ("/clone/v1/upload", "/clone/v1/train"):
        return "voices:write"
    return "tts"


def relative_path(scope: dict) -> str:
    """The request path without the application's route prefix (Ray Serve sets it as root_path)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path
