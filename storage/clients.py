"""API clients, their keys, the token-signing keys and usage records, durable in the store.

Layout (none of it under ``tts/``, so neither the CDN policy nor the lifecycle rule touches it):

    auth/clients/{client_id}.json     a client: tenant, scopes, limits, argon2 hash of its secret
    auth/keys/{key_id}.json           a long-lived API key of a client: argon2 hash of its secret part
    auth/signing-keys.json            HS256 keys by kid (when not given in settings)
    tenants/{tenant}/usage/{day}.json usage of a tenant per UTC day (written by the RateLimiter only)

Secrets are shown once, at creation, and stored only as argon2id hashes (argon2-cffi); a stolen
bucket does not reveal them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from storage.base import AudioStore
from tts_engine.errors import InvalidInput, NotFound

CLIENT_PREFIX = "vxc_"
API_KEY_PREFIX = "vxk_"
SCOPES = ("tts", "voices:write", "admin")
DEFAULT_SCOPES = ("tts", "voices:write")
DEFAULT_TENANT = "default"
SIGNING_KEYS = "auth/signing-keys.json"

_TENANT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ID_RE = re.compile(r"[a-z0-9]{16}")
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise InvalidInput("tenant must be 1-63 characters of a-z 0-9 -, starting with a letter or digit",
                           field="tenant")
    return tenant


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(f"scopes must be a non-empty subset of {list(SCOPES)} (got {scopes})", field="scopes")
    return sorted(set(scopes), key=SCOPES.index)


@dataclass
class Limits:
    rpm: int
    concurrent_streams: int
    audio_seconds_per_day: float

    def __post_init__(self) -> None:
        for name in ("rpm", "concurrent_streams", "audio_seconds_per_day"):
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} must be positive", field=name)


@dataclass
class ClientRecord:
    client_id: str
    name: str
    tenant: str
    scopes: list[str]
    limits: Limits
    secret_hash: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict:
        """What may be shown: everything but the hash."""
        data = asdict(self)
        data.pop("secret_hash")
        return data

    @classmethod
    def from_json(cls, raw: bytes) -> "ClientRecord":
        data = json.loads(raw)
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


@dataclass
class ApiKeyRecord:
    key_id: str
    client_id: str
    key_hash: str
    created_at: float
    revoked_at: float | None = None


@dataclass
class SigningKeys:
    """HS256 keys by kid; ``active`` signs, all verify (so a rotation does not void live tokens)."""

    keys: dict[str, bytes]
    active: str

    def to_json(self) -> bytes:
        encoded = {kid: base64.b64encode(key).decode() for kid, key in self.keys.items()}
        return json.dumps({"active": self.active, "keys": encoded}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "SigningKeys":
        data = json.loads(raw)
        return cls({kid: base64.b64decode(k) for kid, k in data["keys"].items()}, data["active"])


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def _verify(hashed: str, secret: str) -> bool:
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


class ClientStore:
    """Clients and API keys in the store; every method is a few small store calls."""

    def __init__(self, store: AudioStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ clients

    def create_client(self, name: str, tenant: str = DEFAULT_TENANT, scopes: list[str] | None = None,
                      limits: Limits | None = None) -> tuple[ClientRecord, str]:
        """A new client and its secret (returned once, stored only hashed)."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("name is required (1 to 100 characters)", field="name")
        if limits is None:
            raise InvalidInput("limits are required", field="limits")
        secret = secrets.token_urlsafe(32)
        record = ClientRecord(CLIENT_PREFIX + _new_id(), name, check_tenant(tenant),
                              check_scopes(list(DEFAULT_SCOPES if scopes is None else scopes)), limits, _hasher.hash(secret), time.time())
        self._save_client(record)
        return record, secret

    def _save_client(self, record: ClientRecord) -> None:
        self.store.put(self._client_key(record.client_id), json.dumps(asdict(record)).encode(), "application/json")

    def get_client(self, client_id: str) -> ClientRecord:
        key = self._client_key(client_id)
        return ClientRecord.from_json(self.store.get(key))

    def list_clients(self) -> list[ClientRecord]:
        records = []
        for key in self.store.list_keys("auth/clients/"):
            try:
                records.append(ClientRecord.from_json(self.store.get(key)))
            except NotFound:
                continue  # removed while listing
        return sorted(records, key=lambda r: r.created_at)

    def revoke_client(self, client_id: str) -> ClientRecord:
        record = self.get_client(client_id)
        if record.revoked_at is None:
            record.revoked_at = time.time()
            self._save_client(record)
        return record

    def verify_secret(self, client_id: str, secret: str) -> ClientRecord | None:
        """The active client whose secret this is; None otherwise (unknown, revoked, wrong secret)."""
        try:
            record = self.get_client(client_id)
        except NotFound:
            return None
        if not record.active or not _verify(record.secret_hash, secret):
            return None
        return record

    @staticmethod
    def _client_key(client_id: str) -> str:
        if not (isinstance(client_id, str) and client_id.startswith(CLIENT_PREFIX)
                and _ID_RE.fullmatch(client_id[len(CLIENT_PREFIX):])):
            raise NotFound(f"unknown client '{str(client_id)[:40]}'", field="client_id")
        return f"auth/clients/{client_id}.json"

    # ------------------------------------------------------------------ API keys

    def create_key(self, client_id: str) -> tuple[ApiKeyRecord, str]:
        """A long-lived API key ``vxk_<key_id>.<secret>`` for an active client (returned once)."""
        client = self.get_client(client_id)
        if not client.active:
            raise InvalidInput(f"client '{client_id}' is revoked", field="client_id")
        key_id, secret = _new_id(), secrets.token_urlsafe(32)
        record = ApiKeyRecord(key_id, client_id, _hasher.hash(secret), time.time())
        self._save_key(record)
        return record, f"{API_KEY_PREFIX}{key_id}.{secret}"

    def _save_key(self, record: ApiKeyRecord) -> None:
        self.store.put(self._key_key(record.key_id), json.dumps(asdict(record)).encode(), "application/json")

    def get_key(self, key_id: str) -> ApiKeyRecord:
        return ApiKeyRecord(**json.loads(self.store.get(self._key_key(key_id))))

    def list_keys(self, client_id: str | None = None) -> list[ApiKeyRecord]:
        records = []
        for key in self.store.list_keys("auth/keys/"):
            try:
                record = ApiKeyRecord(**json.loads(self.store.get(key)))
            except NotFound:
                continue
            if client_id is None or record.client_id == client_id:
                records.append(record)
        return sorted(records, key=lambda r: r.created_at)

    def revoke_key(self, key_id: str) -> ApiKeyRecord:
        record = self.get_key(key_id)
        if record.revoked_at is None:
            record.revoked_at = time.time()
            self._save_key(record)
        return record

    @staticmethod
    def parse_api_key(presented: str) -> tuple[str, str] | None:
        """(key_id, secret) of a well-formed API key, else None."""
        if not presented.startswith(API_KEY_PREFIX) or "." not in presented:
            return None
        key_id, _, secret = presented[len(API_KEY_PREFIX):].partition(".")
        if not _ID_RE.fullmatch(key_id) or not 20 <= len(secret) <= 100:
            return None
        return key_id, secret

    def verify_api_key(self, presented: str) -> ApiKeyRecord | None:
        """The active key record for a presented API key; None if malformed, unknown, revoked or wrong."""
        parsed = self.parse_api_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        try:
            record = self.get_key(key_id)
        except NotFound:
            return None
        if record.revoked_at is not None or not _verify(record.key_hash, secret):
            return None
        return record

    @staticmethod
    def _key_key(key_id: str) -> str:
        if not (isinstance(key_id, str) and _ID_RE.fullmatch(key_id)):
            raise NotFound(f"unknown API key '{str(key_id)[:40]}'", field="key_id")
        return f"auth/keys/{key_id}.json"

    # ------------------------------------------------------------------ token-signing keys

    def signing_keys(self) -> SigningKeys:
        """The stored signing keys, created once (a conditional put: every replica gets the same)."""
        try:
            return SigningKeys.from_json(self.store.get(SIGNING_KEYS))
        except NotFound:
            pass
        kid = _new_id()
        fresh = SigningKeys({kid: secrets.token_bytes(32)}, kid)
        self.store.put_if_absent(SIGNING_KEYS, fresh.to_json(), "application/json")
        return SigningKeys.from_json(self.store.get(SIGNING_KEYS))

    def rotate_signing_key(self) -> str:
        """Add a new key and make it active; older keys still verify tokens issued before."""
        current = self.signing_keys()
        kid = _new_id()
        current.keys[kid] = secrets.token_bytes(32)
        current.active = kid
        self.store.put(SIGNING_KEYS, current.to_json(), "application/json")
        return kid


# ---------------------------------------------------------------------- usage records


@dataclass
class DayUsage:
    """One tenant's usage on one UTC day; per client for the daily audio quota."""

    requests: int = 0
    characters: int = 0
    audio_seconds: float = 0.0        # delivered (fresh + cached)
    synthesized_seconds: float = 0.0  # fresh syntheses only
    cache_hits: int = 0
    charged_seconds: float = 0.0      # what counts against audio_seconds_per_day
    by_client: dict[str, float] = field(default_factory=dict)  # client -> charged seconds

    def add(self, client_id: str, delta: dict) -> None:
        self.requests += int(delta.get("requests", 0))
        self.characters += int(delta.get("characters", 0))
        self.audio_seconds += float(delta.get("audio_seconds", 0.0))
        self.synthesized_seconds += float(delta.get("synthesized_seconds", 0.0))
        self.cache_hits += int(delta.get("cache_hits", 0))
        charged = float(delta.get("charged_seconds", 0.0))
        self.charged_seconds += charged
        self.by_client[client_id] = self.by_client.get(client_id, 0.0) + charged


class UsageLog:
    """``tenants/{tenant}/usage/{YYYY-MM-DD}.json``; one writer (the RateLimiter) so no races."""

    def __init__(self, store: AudioStore) -> None:
        self.store = store

    @staticmethod
    def key(tenant: str, day: str) -> str:
        return f"tenants/{check_tenant(tenant)}/usage/{day}.json"

    def load(self, tenant: str, day: str) -> DayUsage:
        try:
            return DayUsage(**json.loads(self.store.get(self.key(tenant, day))))
        except NotFound:
            return DayUsage()

    def save(self, tenant: str, day: str, usage: DayUsage) -> None:
        self.store.put(self.key(tenant, day), json.dumps(asdict(usage)).encode(), "application/json")

    def days(self, tenant: str) -> list[str]:
        prefix = f"tenants/{check_tenant(tenant)}/usage/"
        return [k[len(prefix):-len(".json")] for k in self.store.list_keys(prefix) if k.endswith(".json")]


def limits_from(settings, rpm: int | None = None, concurrent_streams: int | None = None,
                audio_seconds_per_day: float | None = None) -> Limits:
    """Limits for a new client: what was asked for, else the settings' defaults."""
    return Limits(rpm if rpm is not None else settings.default_rpm,
                  concurrent_streams if concurrent_streams is not None else settings.default_concurrent_streams,
                  audio_seconds_per_day if audio_seconds_per_day is not None else settings.default_audio_seconds_per_day)
