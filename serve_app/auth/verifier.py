"""Bearer credential -> ``Principal``: a JWT from /oauth/token or a long-lived API key.

The store is read only on cache misses. Client and key records are cached for
``auth_cache_ttl_s`` (so a revocation reaches every replica within that time); a verified API
key's digest is remembered so the argon2 check runs once per key and replica, and a failed
one is remembered for a minute so junk keys cannot make a replica hash all day. A verified
access token's claims are remembered until it expires (a token string never changes meaning;
revocation is checked on the client record every time).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from cachetools import LRUCache, TTLCache

from storage.clients import ApiKeyRecord, ClientRecord, ClientStore
from tts_engine.errors import NotFound
from tts_engine.settings import Settings

from .errors import Unauthorized
from .principal import Principal
from .tokens import LEEWAY_S, TokenIssuer

CACHE_SIZE = 10_000
FAILED_KEY_TTL_S = 60.0
MAX_CREDENTIAL_CHARS = 4096


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Authenticator:
    def __init__(self, settings: Settings, clients: ClientStore, issuer: TokenIssuer) -> None:
        self.settings, self.clients, self.issuer = settings, clients, issuer
        ttl = settings.auth_cache_ttl_s
        self._client_cache: TTLCache = TTLCache(CACHE_SIZE, ttl) if ttl > 0 else None
        self._key_cache: TTLCache = TTLCache(CACHE_SIZE, ttl) if ttl > 0 else None
        self._verified: LRUCache = LRUCache(CACHE_SIZE)          # digest -> key_id
        self._failed: TTLCache = TTLCache(CACHE_SIZE, FAILED_KEY_TTL_S)
        self._tokens: LRUCache = LRUCache(CACHE_SIZE)            # token -> verified claims

    async def authenticate(self, authorization: str | None) -> Principal:
        credential = self._bearer(authorization)
        if ClientStore.parse_api_key(credential) is not None:
            return await self._from_api_key(credential)
        claims = await self._claims(credential)
        client = await self._client(claims["sub"])
        if client is None or not client.active or client.tenant != claims.get("tenant"):
            raise Unauthorized("the client of this token is revoked or unknown")
        scopes = frozenset(claims["scope"].split()) & frozenset(client.scopes)
        return Principal(client.client_id, client.tenant, scopes, client.limits, "token")

    async def _claims(self, token: str) -> dict:
        claims = self._tokens.get(token)
        if claims is not None and claims["exp"] + LEEWAY_S > time.time():
            return claims
        if self.issuer.keyring.stale(TokenIssuer.kid_of(token)):
            await asyncio.to_thread(self.issuer.keyring.load)
        claims = self.issuer.verify(token)  # raises Unauthorized (expired ones too)
        self._tokens[token] = claims
        return claims

    @staticmethod
    def _bearer(authorization: str | None) -> str:
        if not authorization:
            raise Unauthorized("send Authorization: Bearer <access token or API key>")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("the Authorization header must be 'Bearer <access token or API key>'")
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise Unauthorized("the bearer credential is too long")
        return credential

    async def _from_api_key(self, presented: str) -> Principal:
        digest = _digest(presented)
        if digest in self._failed:
            raise Unauthorized("the API key is invalid or revoked")
        key_id = self._verified.get(digest)
        if key_id is None:
            record = await asyncio.to_thread(self.clients.verify_api_key, presented)
            if record is None:
                self._failed[digest] = True
                raise Unauthorized("the API key is invalid or revoked")
            key_id = record.key_id
            self._verified[digest] = key_id
            if self._key_cache is not None:
                self._key_cache[key_id] = record
        record = await self._key(key_id)
        client = await self._client(record.client_id) if record is not None else None
        if record is None or record.revoked_at is not None or client is None or not client.active:
            raise Unauthorized("the API key is invalid or revoked")
        return Principal(client.client_id, client.tenant, frozenset(client.scopes), client.limits, "api_key")

    async def _client(self, client_id: str) -> ClientRecord | None:
        return await self._cached(self._client_cache, client_id, self.clients.get_client)

    async def _key(self, key_id: str) -> ApiKeyRecord | None:
        return await self._cached(self._key_cache, key_id, self.clients.get_key)

    @staticmethod
    async def _cached(cache: TTLCache | None, ident: str, load):
        if cache is not None and ident in cache:
            return cache[ident]
        try:
            value = await asyncio.to_thread(load, ident)
        except NotFound:
            value = None
        if cache is not None:
            cache[ident] = value
        return value
