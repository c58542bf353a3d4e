"""Access tokens: HS256 JWTs (PyJWT) signed by the active key of a key ring, verified by ``kid``.

Keys come from settings (``jwt_signing_keys``) or, when none are set, from the store, where the
first replica creates them once. Rotation (``voxserve signing-keys rotate``) adds a key and makes
it active; replicas pick it up when they meet its ``kid`` or within ``REFRESH_S``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from storage.clients import ClientRecord, ClientStore, SigningKeys
from tts_engine.settings import Settings

from .errors import Unauthorized

ALGORITHM = "HS256"
REFRESH_S = 60.0        # re-read stored keys at least this often (rotation reaches every replica)
MIN_RELOAD_S = 1.0      # ... and on an unknown kid at most this often (no store storm from junk tokens)
LEEWAY_S = 5            # clock skew between replicas


@dataclass
class AccessToken:
    token: str
    expires_in: int
    scope: str


class KeyRing:
    def __init__(self, settings: Settings, clients: ClientStore) -> None:
        self.settings, self.clients = settings, clients
        self._keys: SigningKeys | None = None
        self._loaded_at = 0.0

    def _configured(self) -> SigningKeys | None:
        configured = {kid: v.get_secret_value().encode() for kid, v in self.settings.jwt_signing_keys.items()}
        if not configured:
            return None
        short = [kid for kid, key in configured.items() if len(key) < 32]
        if short:
            raise ValueError(f"jwt_signing_keys {short}: HS256 keys must be at least 32 bytes")
        active = self.settings.jwt_active_kid or list(configured)[-1]
        if active not in configured:
            raise ValueError(f"jwt_active_kid '{active}' is not in jwt_signing_keys")
        return SigningKeys(configured, active)

    def load(self) -> SigningKeys:
        """Blocking (store I/O): call from a thread."""
        self._keys = self._configured() or self.clients.signing_keys()
        self._loaded_at = time.monotonic()
        return self._keys

    def stale(self, kid: str | None = None) -> bool:
        """Whether keys should be (re)read before verifying a token with this ``kid``."""
        if self._keys is None or time.monotonic() - self._loaded_at > REFRESH_S:
            return True
        return kid is not None and kid not in self._keys.keys and time.monotonic() - self._loaded_at > MIN_RELOAD_S

    def current(self) -> SigningKeys:
        """Blocking when stale (store I/O)."""
        return self.load() if self.stale() else self._keys

    def key_for(self, kid: str) -> bytes | None:
        return self._keys.keys.get(kid) if self._keys is not None else None


class TokenIssuer:
    def __init__(self, settings: Settings, keyring: KeyRing) -> None:
        self.settings, self.keyring = settings, keyring

    def issue(self, client: ClientRecord, scopes: list[str]) -> AccessToken:
        """Blocking (may read keys from the store)."""
        keys = self.keyring.current()
        now = int(time.time())
        ttl = self.settings.token_ttl_s
        claims = {"iss": self.settings.token_issuer, "sub": client.client_id, "tenant": client.tenant,
                  "scope": " ".join(scopes), "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, keys.keys[keys.active], algorithm=ALGORITHM, headers={"kid": keys.active})
        return AccessToken(token, ttl, claims["scope"])

    @staticmethod
    def kid_of(token: str) -> str:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is malformed") from None
        if not isinstance(kid, str):
            raise Unauthorized("the bearer token was not issued by this service")
        return kid

    def verify(self, token: str) -> dict:
        """The claims of a valid token; Unauthorized otherwise. CPU only (load the key ring first)."""
        key = self.keyring.key_for(self.kid_of(token))
        if key is None:
            raise Unauthorized("the bearer token was not issued by this service")
        try:
            return jwt.decode(token, key, algorithms=[ALGORITHM], issuer=self.settings.token_issuer,
                              leeway=LEEWAY_S, options={"require": ["exp", "iat", "sub", "iss", "scope"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired; request a new one at /oauth/token") from None
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is invalid") from None
