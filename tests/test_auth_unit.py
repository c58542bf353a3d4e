"""Auth, tenants and limits without Ray: stores, tokens, bucket math, scopes, settings, CLI, infra."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import jwt
import pytest
import yaml

from deployments.rate_limiter import Bucket, LimiterState, seconds_to_utc_midnight, utc_day
from serve_app import cli, netcheck, run
from serve_app.auth.errors import RateLimited, Unauthorized
from serve_app.auth.limiter import LimiterClient
from serve_app.auth.principal import Principal
from serve_app.auth.scopes import is_public, relative_path, required_scope
from serve_app.auth.tokens import KeyRing, TokenIssuer
from serve_app.edge import RequestIdGuard
from serve_app.errors import public_error
from storage import LocalStore
from storage.clients import API_KEY_PREFIX, ClientStore, Limits, UsageLog
from storage.voices import VoiceRegistry
from tts_engine.errors import InvalidInput, NotFound, StorageUnavailable
from tts_engine.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(60, 2, 100.0)


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(Settings(), tmp_path)


@pytest.fixture
def clients(store) -> ClientStore:
    return ClientStore(store)


# ---------------------------------------------------------------------- clients and keys


def test_client_secrets_are_stored_only_as_argon2_hashes(clients, store):
    record, secret = clients.create_client("app", "acme", ["tts"], LIMITS)
    raw = store.get(f"auth/clients/{record.client_id}.json").decode()
    assert secret not in raw and json.loads(raw)["secret_hash"].startswith("$argon2id$")
    assert clients.verify_secret(record.client_id, secret).tenant == "acme"
    assert clients.verify_secret(record.client_id, secret + "x") is None
    assert clients.verify_secret("vxc_0000000000000000", secret) is None
    clients.revoke_client(record.client_id)
    assert clients.verify_secret(record.client_id, secret) is None


@pytest.mark.parametrize("tenant,scopes,field", [("Bad!", ["tts"], "tenant"), ("ok", ["root"], "scopes"),
                                                 ("ok", [], "scopes"), ("../x", ["tts"], "tenant")])
def test_bad_client_fields_are_refused(clients, tenant, scopes, field):
    with pytest.raises(InvalidInput) as err:
        clients.create_client("app", tenant, scopes, LIMITS)
    assert err.value.field == field


def test_limits_must_be_positive():
    with pytest.raises(InvalidInput) as err:
        Limits(0, 1, 1.0)
    assert err.value.field == "rpm"


def test_api_keys_verify_and_revoke(clients, store):
    record, _ = clients.create_client("app", "acme", ["tts"], LIMITS)
    key_record, key = clients.create_key(record.client_id)
    assert key.startswith(API_KEY_PREFIX) and key.split(".")[1] not in store.get(f"auth/keys/{key_record.key_id}.json").decode()
    assert clients.verify_api_key(key).client_id == record.client_id
    assert clients.verify_api_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert clients.verify_api_key("vxk_short") is None and clients.verify_api_key("Bearer nonsense") is None
    clients.revoke_key(key_record.key_id)
    assert clients.verify_api_key(key) is None
    clients.revoke_client(record.client_id)
    with pytest.raises(InvalidInput):
        clients.create_key(record.client_id)
    with pytest.raises(NotFound):
        clients.get_key("../../etc")


def test_signing_keys_are_created_once_and_rotate(clients, store):
    first = clients.signing_keys()
    assert ClientStore(store).signing_keys().keys == first.keys  # a second replica gets the same
    new_kid = clients.rotate_signing_key()
    rotated = clients.signing_keys()
    assert rotated.active == new_kid and set(first.keys) < set(rotated.keys)


# ---------------------------------------------------------------------- tokens


def issuer_for(clients, **settings) -> TokenIssuer:
    config = Settings(**settings)
    ring = KeyRing(config, clients)
    ring.load()
    return TokenIssuer(config, ring)


def test_tokens_verify_expire_and_survive_rotation(clients):
    record, _ = clients.create_client("app", "acme", ["tts", "admin"], LIMITS)
    issuer = issuer_for(clients)
    token = issuer.issue(record, ["tts"])
    assert token.expires_in == 7200 and token.scope == "tts"
    claims = issuer.verify(token.token)
    assert claims["sub"] == record.client_id and claims["tenant"] == "acme" and claims["exp"] - claims["iat"] == 7200
    clients.rotate_signing_key()
    fresh = issuer_for(clients)
    assert fresh.verify(token.token)["sub"] == record.client_id  # old kid still verifies
    assert jwt.get_unverified_header(fresh.issue(record, ["tts"]).token)["kid"] != \
        jwt.get_unverified_header(token.token)["kid"]
    keys = clients.signing_keys()
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, keys.keys[keys.active], algorithm="HS256",
                         headers={"kid": keys.active})
    with pytest.raises(Unauthorized, match="expired"):
        fresh.verify(expired)
    for bad in ["nonsense", token.token[:-4] + "AAAA",
                jwt.encode(claims, b"z" * 32, algorithm="HS256", headers={"kid": keys.active}),
                jwt.encode(claims, b"z" * 32, algorithm="HS256", headers={"kid": "unknown"}),
                jwt.encode(claims, "", algorithm="none")]:
        with pytest.raises(Unauthorized):
            fresh.verify(bad)


def test_configured_signing_keys(clients):
    record, _ = clients.create_client("app", "acme", ["tts"], LIMITS)
    issuer = issuer_for(clients, jwt_signing_keys={"k1": "a" * 32, "k2": "b" * 32}, jwt_active_kid="k1")
    assert jwt.get_unverified_header(issuer.issue(record, ["tts"]).token)["kid"] == "k1"
    with pytest.raises(ValueError, match="32 bytes"):
        issuer_for(clients, jwt_signing_keys={"k1": "short"})
    with pytest.raises(ValueError, match="jwt_active_kid"):
        issuer_for(clients, jwt_signing_keys={"k1": "a" * 32}, jwt_active_kid="k9")


# ---------------------------------------------------------------------- limiter state


def test_bucket_grants_at_most_its_tokens_and_refills():
    bucket = Bucket(6.0, 6.0, 0.0)
    assert bucket.take(4) == 4 and bucket.take(4) == 2 and bucket.take(1) == 0
    assert bucket.wait_s() == pytest.approx(10.0)  # 6 per minute: one every 10 s
    bucket.refill(25.0, 6.0)
    assert bucket.take(5) == 2
    bucket.give_back(10)
    assert bucket.tokens == 6.0


def test_leases_share_one_bucket_and_take_back_unused_tokens():
    state = LimiterState()
    a = state.lease("replica-a", "c1", "t", rpm=10, want=4, returned=0, now=0.0)
    b = state.lease("replica-b", "c1", "t", rpm=10, want=8, returned=0, now=0.0)
    assert a["granted"] + b["granted"] == 10 and b["remaining"] == 0 and b["retry_after_s"] == pytest.approx(6.0)
    again = state.lease("replica-a", "c1", "t", rpm=10, want=4, returned=3, now=0.0)
    assert again["granted"] == 3
    assert state.lease("replica-a", "c2", "t", rpm=10, want=4, returned=0, now=0.0)["granted"] == 4  # own bucket
    assert set(state.stats()["leases"]["c1"]) == {"replica-a", "replica-b"}


def test_stream_slots_are_limited_and_expire():
    state = LimiterState()
    first = state.open_stream("c1", 1, now=0.0)
    assert first["slot"] and state.open_stream("c1", 1, now=1.0)["slot"] is None
    state.close_stream("c1", first["slot"])
    second = state.open_stream("c1", 1, now=2.0)
    assert second["slot"]
    assert state.open_stream("c1", 1, now=2.0 + 3600.5)["slot"]  # a dead replica's slot expired


def test_usage_is_persisted_and_reloaded(store):
    state = LimiterState(UsageLog(store))
    now = time.time()
    charged = state.report([{"tenant": "acme", "client_id": "c1", "requests": 2, "characters": 30,
                             "audio_seconds": 3.0, "synthesized_seconds": 2.0, "cache_hits": 1,
                             "charged_seconds": 2.1}], now=now)
    assert charged == {"c1": pytest.approx(2.1)}
    assert state.write(state.take_dirty()) == []
    restarted = LimiterState(UsageLog(store))  # the quota survives a limiter restart
    assert restarted.charged("acme", "c1", now=now) == pytest.approx(2.1)
    rows = restarted.usage("acme", 3, stored=set(UsageLog(store).days("acme")), now=now)
    assert rows[0]["day"] == utc_day(now) and rows[0]["characters"] == 30 and "by_client" not in rows[0]
    assert restarted.usage("other", 3, now=now) == []
    assert 0 < seconds_to_utc_midnight() <= 86400


class InProcessLimiter:
    """The RateLimiter's state behind the same ``.method.remote(...)`` calls a Serve handle takes."""

    def __init__(self) -> None:
        self.state = LimiterState()
        self.calls = 0
        for name in ("lease", "open_stream", "close_stream", "report", "stats"):
            setattr(self, name, _Remote(self, getattr(self.state, name)))


class _Remote:
    def __init__(self, owner, fn) -> None:
        self.owner, self.fn = owner, fn

    async def remote(self, *args):
        self.owner.calls += 1
        await asyncio.sleep(0)
        return self.fn(*args)


def test_two_replicas_leasing_in_batches_never_exceed_the_limit():
    async def scenario():
        limiter = InProcessLimiter()
        settings = Settings(limiter_lease_max=20)
        a, b = LimiterClient(limiter, settings, "a"), LimiterClient(limiter, settings, "b")
        p = Principal("c1", "t", frozenset({"tts"}), Limits(600, 2, 100.0), "api_key")
        allowed = 0
        for i in range(700):
            try:
                await (a if i % 2 else b).take(p)
                allowed += 1
            except RateLimited as err:
                assert err.field == "rpm" and err.retry_after_s > 0
        return allowed, limiter.calls

    allowed, calls = asyncio.run(scenario())
    assert 590 <= allowed <= 601  # the bucket (600) plus what refills while the loop runs
    assert calls < 120  # batches of 20, not a call per request


def test_audio_quota_is_checked_against_reported_usage():
    async def scenario():
        limiter = InProcessLimiter()
        client = LimiterClient(limiter, Settings(cache_hit_audio_factor=0.5), "a")
        p = Principal("c1", "t", frozenset({"tts"}), Limits(600, 2, 10.0), "api_key")
        await client.take(p)
        client.record(p, 20, 8.0, cached=False)
        client.record(p, 20, 2.0, cached=True)   # charges 1.0
        await client.flush()
        assert limiter.state.charged("t", "c1") == pytest.approx(9.0)
        client.check_audio(p)
        await client.take(p)
        client.record(p, 20, 1.0, cached=False)
        await client.take(p)  # requests still go through over quota (e.g. /v1/usage) ...
        with pytest.raises(RateLimited) as err:
            client.check_audio(p)  # ... syntheses do not
        assert err.value.field == "audio_seconds_per_day" and err.value.retry_after_s > 0

    asyncio.run(scenario())


# ---------------------------------------------------------------------- scopes, errors, edge


def test_public_allow_list_and_scopes():
    assert all(is_public(p) for p in ("/healthz", "/readyz", "/oauth/token", "/docs", "/openapi.json", "/media/tts/x"))
    assert not any(is_public(p) for p in ("/v1/tts", "/v1/voices", "/mediax", "/healthz/x", "/tts/v1/anything"))
    assert required_scope("GET", "/v1/stats") == "admin"
    assert required_scope("POST", "/v1/admin/clients") == "admin"
    assert required_scope("POST", "/v1/voices") == "voices:write"
    assert required_scope("DELETE", "/v1/voices/vx_1") == "voices:write"
    assert required_scope("GET", "/v1/voices/vx_1") == "tts"
    assert required_scope("POST", "/some/future/route") == "tts"
    assert relative_path({"path": "/auth/v1/tts", "root_path": "/auth"}) == "/v1/tts"


def test_server_errors_hide_their_detail():
    body, status, headers = public_error(StorageUnavailable("local storage unavailable: /srv/data: PermissionError"))
    assert status == 503 and headers["Retry-After"]
    assert "/srv" not in json.dumps(body) and "Error" not in body["error"]["message"]


def test_request_id_guard_drops_invalid_ids():
    seen = []

    async def app(scope, receive, send):
        seen.append([v for k, v in scope["headers"] if k == b"x-request-id"])

    guard = RequestIdGuard(app)
    for given, kept in [([b"ok-1"], [b"ok-1"]), ([b"bad id"], []), ([b"x" * 129], []),
                        ([b"a", b"b"], [b"a"]), ([b"\xff"], [])]:
        asyncio.run(guard({"type": "http", "headers": [(b"x-request-id", v) for v in given]}, None, None))
        assert seen[-1] == kept


# ---------------------------------------------------------------------- tenancy in the store


def test_voice_registries_are_per_tenant(store):
    a, b = VoiceRegistry(store, "acme"), VoiceRegistry(store).for_tenant("globex")
    record = a.create("mine", "en", None, b"audio", "en_US-joe-medium")
    assert record.reference_key.startswith("tenants/acme/voices/")
    assert [r.voice_id for r in a.list()] == [record.voice_id] and b.list() == []
    with pytest.raises(NotFound):
        b.get(record.voice_id)
    with pytest.raises(NotFound):
        b.delete(record.voice_id)
    assert a.get(record.voice_id).tenant == "acme"


def test_cache_keys_are_scoped_only_when_asked(engine):
    from serve_app.audio_request import cache_key
    from tts_engine.engine import SynthesisOptions

    prepared = engine.prepare("Scoped keys.", SynthesisOptions())
    plain = cache_key(prepared, "wav", 22050)
    assert cache_key(prepared, "wav", 22050, scope="") == plain
    assert cache_key(prepared, "wav", 22050, scope="tenant:a") not in (plain, cache_key(prepared, "wav", 22050,
                                                                                          scope="tenant:b"))


# ---------------------------------------------------------------------- settings, make serve, CLI, infra


def test_auth_none_is_refused_off_loopback():
    with pytest.raises(ValueError, match="allow_insecure"):
        Settings(auth="none", host="0.0.0.0")
    assert Settings(auth="none", host="0.0.0.0", allow_insecure=True).auth == "none"
    assert Settings(auth="none", host="127.0.0.1").effective_cache_scope == "global"
    assert Settings().auth == "required" and Settings().effective_cache_scope == "tenant"


def test_make_serve_defaults_to_auth_none_unless_configured(monkeypatch):
    monkeypatch.delenv("VOXSERVE_AUTH", raising=False)
    assert run.local_overrides(Settings()) == {"auth": "none"}
    monkeypatch.setenv("VOXSERVE_AUTH", "required")
    assert run.local_overrides(Settings()) == {}


def test_listener_audit_finds_non_loopback_sockets():
    """A child process listening on 0.0.0.0 and on 127.0.0.1: only the first is reported."""
    import subprocess
    import sys

    code = ("import socket, sys, time\n"
            "w, l = socket.socket(), socket.socket()\n"
            "w.bind(('0.0.0.0', 0)); w.listen(); l.bind(('127.0.0.1', 0)); l.listen()\n"
            "print(w.getsockname()[1], l.getsockname()[1], flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        wide, local = map(int, child.stdout.readline().split())
        found = {item.port: item for item in netcheck.listeners(child.pid)}
        assert set(found) == {wide, local} and found[local].loopback and not found[wide].loopback
        exposed = netcheck.exposed(child.pid)
        assert [item.port for item in exposed] == [wide]
        problem = run.ray_exposure_problem(exposed, "disabled", allow_insecure=False)
        assert problem and str(wide) in problem
        assert run.ray_exposure_problem(exposed, "token", allow_insecure=False) is None
        assert run.ray_exposure_problem([], "disabled", allow_insecure=False) is None
    finally:
        child.kill()
        child.wait()


def test_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VOXSERVE_STORE", f"file://{tmp_path}")

    def voxserve(*argv) -> dict:
        assert cli.main(list(argv)) == 0
        return json.loads(capsys.readouterr().out)

    created = voxserve("clients", "create", "--name", "app", "--tenant", "acme", "--scopes", "tts,admin",
                       "--rpm", "7", "--concurrent-streams", "2", "--audio-seconds-per-day", "60")
    assert set(created) == {"client_id", "client_secret", "tenant"}
    key = voxserve("keys", "create", "--client", created["client_id"])
    assert key["api_key"].startswith(API_KEY_PREFIX)
    (listed,) = voxserve("clients", "list")
    assert listed["limits"] == {"rpm": 7, "concurrent_streams": 2, "audio_seconds_per_day": 60.0}
    assert listed["scopes"] == ["tts", "admin"] and "secret_hash" not in listed
    assert voxserve("keys", "revoke", key["key_id"])["revoked_at"]
    assert voxserve("clients", "revoke", created["client_id"])["revoked_at"]
    assert voxserve("signing-keys", "rotate")["active_kid"]
    assert cli.main(["clients", "revoke", "vxc_nobody"]) == 2
    assert cli.main(["clients", "create", "--name", "x", "--rpm", "0"]) == 2
    assert "rpm must be positive" in capsys.readouterr().err


def test_infra_turns_auth_and_ray_token_auth_on():
    local = yaml.safe_load((ROOT / "infra" / "serve_config.yaml").read_text())
    assert local["applications"][0]["args"]["auth"] == "required"
    service = next(d for d in yaml.safe_load_all((ROOT / "infra" / "kuberay" / "rayservice.yaml").read_text())
                   if d and d.get("kind") == "RayService")
    assert yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"]["auth"] == "required"
    cluster = service["spec"]["rayClusterConfig"]
    containers = [cluster["headGroupSpec"]["template"]["spec"]["containers"][0]]
    containers += [g["template"]["spec"]["containers"][0] for g in cluster["workerGroupSpecs"]]
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
        assert env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"]["value"] == "serve_app.edge:proxy_middlewares"
    assert "RAY_AUTH_MODE=token" in (ROOT / "Makefile").read_text()


def test_tenant_data_is_never_expired_by_the_lifecycle_rule():
    rules = json.loads((ROOT / "infra" / "s3" / "lifecycle.json").read_text())["Rules"]
    for rule in rules:
        if "Expiration" in rule:
            prefix = rule.get("Filter", {}).get("Prefix", "")
            assert not "tenants/".startswith(prefix) and not "auth/".startswith(prefix), rule["ID"]


def test_loopback_hosts():
    from serve_app.app import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.0.2.1", "example.com"))
