"""Auth overhead on phrase-cache hits (where it shows most), one run.

    RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/auth.py

Two applications on one local Ray Serve, identical but for ``auth``: "open" (``auth: none``) and
"authed" (``auth: required``, its RateLimiter, a client with a limit high enough never to say
429). Each serves the same cached sentence (``POST /v1/tts``, ``response: url``): after warm-up
every request is a cache hit (the request->key memo plus one HEAD on the local store). Requests
are interleaved: open, bearer JWT from /oauth/token, API key, ... sequential over one keep-alive
connection each; client-side latency, medians. Target: authed / open <= 1.10.

On a shared 2-core box the end-to-end medians move by more than auth costs, so the same code is
also timed in-process, without Ray or HTTP: the auth middleware around a do-nothing ASGI app
(real Authenticator on a local store, real LimiterClient leasing from the limiter's state through
an in-process stand-in for its handle) against the bare app, in microseconds per request.

Replaces the ``<!-- bench:auth -->`` section of docs/BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

from serving import (  # noqa: E402  (bench/serving.py: shared helpers)
    free_port,
    machine_info,
    median,
    percentile,
    start_ray,
    start_serve,
    update_section,
    wait_ready,
)

SENTENCE = "Your call is important to us, please stay on the line."
REPS = 500
MICRO_REPS = 20000
TARGET = 1.10


def measure(clients: dict, reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {mode: [] for mode in clients}
    for _ in range(reps):
        for mode, (client, path, headers) in clients.items():
            t0 = time.perf_counter()
            resp = client.post(path, json={"text": SENTENCE, "response": "url"}, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            if resp.status_code != 200 or not resp.json()["cached"]:
                raise RuntimeError(f"{mode}: {resp.status_code} {resp.text[:200]}")
            times[mode].append(elapsed)
    return times


class _Remote:
    def __init__(self, fn) -> None:
        self.fn = fn

    async def remote(self, *args):
        return self.fn(*args)


def micro(tmp: str) -> dict[str, float]:
    """Microseconds per request: the auth middleware (JWT / API key) vs a bare ASGI app, in-process."""
    import asyncio
    from types import SimpleNamespace

    from deployments.rate_limiter import LimiterState
    from serve_app import context
    from serve_app.auth.limiter import LimiterClient
    from serve_app.auth.middleware import AuthMiddleware
    from serve_app.auth.tokens import KeyRing, TokenIssuer
    from serve_app.auth.verifier import Authenticator
    from storage import open_store
    from storage.clients import ClientStore, Limits
    from tts_engine.settings import Settings

    settings = Settings(store=f"file://{tmp}/micro")
    clients = ClientStore(open_store(settings, create=True))   # this process starts the store
    ring = KeyRing(settings, clients)
    ring.load()
    issuer = TokenIssuer(settings, ring)
    state = LimiterState()
    handle = SimpleNamespace(**{n: _Remote(getattr(state, n)) for n in ("lease", "open_stream", "close_stream",
                                                                        "report", "stats")})
    context.install(SimpleNamespace(settings=settings, auth=Authenticator(settings, clients, issuer),
                                    limiter=LimiterClient(handle, settings, "bench")))
    record, _ = clients.create_client("micro", "bench", ["tts"], Limits(10**9, 8, 1e12))
    credentials = {"jwt": issuer.issue(record, ["tts"]).token, "api_key": clients.create_key(record.client_id)[1]}

    async def bare(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def sent(message):
        pass

    async def received():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def run(app, authorization: str | None) -> float:
        headers = [(b"authorization", f"Bearer {authorization}".encode())] if authorization else []
        scope = {"type": "http", "method": "POST", "path": "/v1/tts", "root_path": "", "headers": headers}
        for _ in range(200):
            await app(dict(scope), received, sent)
        t0 = time.perf_counter()
        for _ in range(MICRO_REPS):
            await app(dict(scope), received, sent)
        return (time.perf_counter() - t0) / MICRO_REPS * 1e6

    guarded = AuthMiddleware(bare)
    out = {"bare": asyncio.run(run(bare, None))}
    for mode, credential in credentials.items():
        out[mode] = asyncio.run(run(guarded, credential))
    return out


def main() -> int:
    import httpx
    import ray
    from ray import serve

    from serve_app.app import build_app
    from storage import open_store
    from storage.clients import ClientStore, Limits
    from tts_engine.settings import Settings

    started, load_before = time.perf_counter(), os.getloadavg()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        # Two whole applications side by side: Ray gets 2 logical CPUs per application (the box has
        # 2 cores; cache hits barely use them) and each fits its replicas to its own 2. An
        # application's smallest shape needs more than 1 CPU, so with 2 in all the second one's
        # replicas could never be placed (the bench hung).
        open_args = {"store": f"file://{tmp}/open", "auth": "none", "deploy_cpus": 2.0}
        authed_args = {"store": f"file://{tmp}/authed", "auth": "required", "deploy_cpus": 2.0}
        start_ray(num_cpus=4)
        try:
            start_serve(port)
            serve.run(build_app(open_args), name="open", route_prefix="/open")
            serve.run(build_app(authed_args), name="authed", route_prefix="/authed")
            wait_ready(base + "/open")
            wait_ready(base + "/authed")
            clients = ClientStore(open_store(Settings(**authed_args)))
            record, secret = clients.create_client("bench", "bench", ["tts"], Limits(10_000_000, 8, 1e9))
            key = clients.create_key(record.client_id)[1]
            token = httpx.post(f"{base}/authed/oauth/token", data={
                "grant_type": "client_credentials", "client_id": record.client_id, "client_secret": secret},
                timeout=60).json()["access_token"]
            conns = {mode: httpx.Client(base_url=base, timeout=120) for mode in ("none", "jwt", "api_key")}
            modes = {"none": (conns["none"], "/open/v1/tts", {}),
                     "jwt": (conns["jwt"], "/authed/v1/tts", {"Authorization": f"Bearer {token}"}),
                     "api_key": (conns["api_key"], "/authed/v1/tts", {"Authorization": f"Bearer {key}"})}
            for client, path, headers in modes.values():  # warm: synthesis once, then the memo
                for _ in range(3):
                    client.post(path, json={"text": SENTENCE, "response": "url"}, headers=headers).raise_for_status()
            measure(modes, 20)
            print("measuring ...", flush=True)
            times = measure(modes, REPS)
            for client in conns.values():
                client.close()
        finally:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
        print("in-process middleware timing ...", flush=True)
        micro_us = micro(tmp)
    elapsed, load_after = time.perf_counter() - started, os.getloadavg()
    section = report(times, micro_us, elapsed, load_before[0], load_after[0])
    print(section)
    update_section("auth", section)
    return 0


def report(times: dict[str, list[float]], micro_us: dict[str, float], elapsed: float, load_before: float,
           load_after: float) -> str:
    base = median(times["none"])
    rows = []
    labels = {"none": "`auth: none`", "jwt": "`auth: required`, bearer JWT", "api_key": "`auth: required`, API key"}
    for mode, label in labels.items():
        xs = times[mode]
        rows.append(f"| {label} | {median(xs):.2f} ms | {percentile(xs, 90):.2f} ms | {median(xs) / base:.3f}x |")
    worst = max(median(times["jwt"]), median(times["api_key"])) / base
    verdict = "met" if worst <= TARGET else "**NOT met**"
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""
## Auth overhead on cache hits (`bench/auth.py`)

- Command: `RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/auth.py`
- Machine: {machine_info()}; shared with other work (1-min load average {load_before:.1f} at start,
  {load_after:.1f} at end); modes interleaved request by request, medians.
- Date: {now}; the run took {elapsed:.0f} s.
- Two apps on one local Ray Serve (`ray.init(num_cpus=2)`), `build_app` defaults, local-directory stores:
  `auth: none` at /open and `auth: required` at /authed (its RateLimiter; a client with a limit that
  never answers 429, so its tokens are leased 20 at a time). Request: `POST /v1/tts`
  `{{"text": "{SENTENCE}", "response": "url"}}`, a phrase-cache hit every time ({REPS} per mode),
  sequential, one keep-alive connection per mode.
- What auth adds per request: the ASGI middleware (CORS check, Authorization parse, HS256 verify or
  a cached API-key lookup, a TTL-cached client record), one request token from the replica's lease
  (a limiter round trip only once per 20 requests, prefetched in the background), the usage count.

| cache hit, client latency | median | p90 | vs `auth: none` |
|---|---:|---:|---:|
{chr(10).join(rows)}

End to end, auth overhead (worst of JWT / API key): **{worst:.3f}x** -- target <= {TARGET:.2f}x: {verdict}.

In-process, per request ({MICRO_REPS} requests each; no Ray, no HTTP): bare ASGI app {micro_us['bare']:.1f} us;
behind the auth middleware {micro_us['jwt']:.1f} us with a JWT, {micro_us['api_key']:.1f} us with an API key. So auth
adds about **{max(micro_us['jwt'], micro_us['api_key']) - micro_us['bare']:.0f} us** per request, against a
{base:.1f} ms cache hit: {(max(micro_us['jwt'], micro_us['api_key']) - micro_us['bare']) / 1000 / base * 100:.1f}% of it.
A fresh credential costs more once per replica (an API key's argon2 check, ~50-100 ms; a client record read
every `auth_cache_ttl_s`), and a limiter round trip (~2 ms) every 20 requests of a client runs in the background.
"""


if __name__ == "__main__":
    sys.exit(main())
