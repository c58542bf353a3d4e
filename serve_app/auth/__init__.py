"""Authentication, authorization and limits of the HTTP layer.

* ``tokens``: JWT access tokens (PyJWT, HS256, ``kid`` rotation) for /oauth/token.
* ``verifier``: bearer credential -> ``Principal`` (JWT or API key), with per-replica caches.
* ``scopes``: public allow-list and the scope each route needs.
* ``limiter``: the ingress side of the global RateLimiter (token leases, stream slots, usage).
* ``middleware``: the ASGI middleware that applies all of it to every route.
"""

from .principal import ANONYMOUS, Principal, principal_of, tenant_of

__all__ = ["ANONYMOUS", "Principal", "principal_of", "tenant_of"]
