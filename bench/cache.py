"""Phrase cache and object-store benchmark against moto's S3 server, one run.

    RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/cache.py

1. VoxServe on a local Ray Serve with ``store: s3://voxbench/audio`` (moto on 127.0.0.1):
   POST /v1/tts for one sentence (wav) -- the first request is a cache miss (fresh synthesis, then
   stored); then cache hits of that same request, interleaved with the same request with
   ``cache: false`` (fresh synthesis) and with cache misses (a new seed each, so a new key).
   Done for ``response: url`` (hit = frontend + HEAD) and ``response: binary`` (hit = frontend +
   HEAD + GET). Medians; target: a hit is >= 20x faster than fresh synthesis.
2. ``open_store(Settings(store="s3://voxbench/clips"))`` straight from this process: put / head / get
   of a 3 s WAV and a 3 s MP3 encoded from real synthesized audio, interleaved, medians over 20 ops.

Prints the numbers and replaces the ``<!-- bench:cache -->`` section of docs/BENCHMARKS.md
(other sections are kept). moto is an in-process stand-in for S3: these numbers are the
service's own cost plus a local HTTP round trip, not a real S3 region's latency.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
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
    DOC,
    free_port,
    machine_info,
    median,
    percentile,
    start_ray,
    start_serve,
    update_section,
    wait_ready,
)

SENTENCE = "Your table for four is ready, please follow the host to the garden terrace."
CLIP_TEXT = "Thank you for calling. Your order has shipped and will arrive on Friday."
TARGET_SPEEDUP = 20.0
HITS, FRESH, MISSES = 20, 10, 10
STORE_OPS = 20


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "voxbench-secret", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }


def three_second_clips() -> dict[str, bytes]:
    """A 3.00 s clip of real synthesized speech, as WAV and as MP3."""
    import numpy as np

    from tts_engine.audio import encoders
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    res = TTSEngine(Settings(device="cpu")).synthesize(CLIP_TEXT, seed=3)
    n = 3 * res.sample_rate
    audio = res.audio[:n] if len(res.audio) >= n else np.pad(res.audio, (0, n - len(res.audio)))
    return {"wav": encoders.encode(audio, res.sample_rate, "wav"),
            "mp3": encoders.encode(audio, res.sample_rate, "mp3")}


def measure_store(clips: dict[str, bytes]) -> dict[str, list[float]]:
    """put / head / get of each clip through AudioStore, interleaved; seconds per op."""
    from tts_engine.settings import Settings
    from storage import open_store

    store = open_store(Settings(store="s3://voxbench/clips"))
    types = {"wav": "audio/wav", "mp3": "audio/mpeg"}
    for fmt, data in clips.items():  # bucket creation, connection pool, first-call costs
        store.put(f"warm/clip.{fmt}", data, types[fmt])
        store.get(f"warm/clip.{fmt}")
    times: dict[str, list[float]] = {}

    def timed(label: str, fn, *args) -> object:
        t0 = time.perf_counter()
        out = fn(*args)
        times.setdefault(label, []).append(time.perf_counter() - t0)
        return out

    for i in range(STORE_OPS):
        for fmt, data in (clips.items() if i % 2 == 0 else reversed(clips.items())):
            key = f"bench/{i:03d}/clip.{fmt}"
            timed(f"put {fmt}", store.put, key, data, types[fmt], {"duration-s": "3.000"})
            timed(f"head {fmt}", store.head, key)
            got = timed(f"get {fmt}", store.get, key)
            assert got == data, "store returned different bytes"
    return times


def measure_cache(client, base: str, response: str) -> dict:
    """One sentence: first request (miss), then hits interleaved with cache:false and new-key misses."""
    body = {"text": SENTENCE, "format": "wav", "response": response, "seed": 7}

    def post(extra: dict, expect_cached: bool) -> float:
        t0 = time.perf_counter()
        r = client.post(f"{base}/v1/tts", json={**body, **extra})
        elapsed = time.perf_counter() - t0
        r.raise_for_status()
        cached = (r.headers["x-cache"] == "hit") if response == "binary" else r.json()["cached"]
        if cached != expect_cached:
            raise RuntimeError(f"expected cached={expect_cached}, got {cached} for {extra}")
        return elapsed

    # A distinct text per response mode, so each mode's first request is a real miss.
    body["text"] = f"{SENTENCE} ({'r' if response == 'url' else 'b'})"
    first = post({}, expect_cached=False)
    hits, fresh, misses = [], [], []
    for i in range(HITS):
        hits.append(post({}, expect_cached=True))
        if i % 2 == 0:
            fresh.append(post({"cache": False}, expect_cached=False))
        else:
            misses.append(post({"seed": 1000 + i}, expect_cached=False))
    return {"first": first, "hit": hits, "fresh": fresh, "miss": misses}


def main() -> int:
    import httpx
    import ray
    from ray import serve

    from serve_app.app import build_app
    from tests.s3util import moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    started = time.perf_counter()
    load_before = os.getloadavg()
    clips = three_second_clips()
    with moto_server() as endpoint:
        env = s3_env(endpoint)
        os.environ.update(env)
        print("store put/head/get ...", flush=True)
        store_times = measure_store(clips)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        start_ray(env)
        try:
            start_serve(port)
            serve.run(build_app({"store": "s3://voxbench/audio", "auth": "none"}), name="cachebench", route_prefix="/")
            wait_ready(base)
            with httpx.Client(timeout=300) as client:
                for i in range(3):  # warm: model, frontend, S3 client in the ingress
                    client.post(f"{base}/v1/tts", json={"text": f"Warm up number {i}.", "format": "wav",
                                                        "response": "binary"}).raise_for_status()
                print(f"service up in {time.perf_counter() - started:.0f} s", flush=True)
                results = {}
                for response in ("url", "binary"):
                    print(f"phrase cache, response={response} ...", flush=True)
                    results[response] = measure_cache(client, base, response)
        finally:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    load_txt = f"1-min load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end"

    # ------------------------------------------------------------------ report
    ms = lambda xs: median(xs) * 1000  # noqa: E731
    lines = ["| response | first request (miss) | cache hit p50 / p90 | fresh, `cache: false` p50 | "
             "miss, new key p50 | fresh / hit | miss / hit |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for response, r in results.items():
        speed = ms(r["fresh"]) / ms(r["hit"])
        speed_miss = ms(r["miss"]) / ms(r["hit"])
        lines.append(f"| {response} | {r['first'] * 1000:.0f} ms | {ms(r['hit']):.1f} / "
                     f"{percentile(r['hit'], 90) * 1000:.1f} ms | {ms(r['fresh']):.0f} ms | {ms(r['miss']):.0f} ms | "
                     f"**{speed:.0f}x** | {speed_miss:.0f}x |")
        verdicts.append(f"`response: {response}`: hit {speed:.1f}x faster than fresh synthesis -- target >= "
                        f"{TARGET_SPEEDUP:.0f}x: " + ("met" if speed >= TARGET_SPEEDUP else "**NOT met**"))
    table_cache = "\n".join(lines)

    lines = ["| op (3.00 s clip) | size | p50 | p90 | min |", "|---|---:|---:|---:|---:|"]
    for label in sorted(store_times, key=lambda k: (k.split()[1], ["put", "head", "get"].index(k.split()[0]))):
        xs = store_times[label]
        size = len(clips[label.split()[1]])
        lines.append(f"| {label} | {size / 1024:.0f} KiB | {ms(xs):.1f} ms | {percentile(xs, 90) * 1000:.1f} ms | "
                     f"{min(xs) * 1000:.1f} ms |")
    table_store = "\n".join(lines)

    print()
    print(table_cache)
    for v in verdicts:
        print(v)
    print()
    print(table_store)
    print(f"elapsed {elapsed:.0f} s; {load_txt}")

    body = f"""
## Phrase cache and object store (`bench/cache.py`)

- Command: `RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/cache.py`
- Machine: {machine_info()} (shared with other work; requests interleaved, medians)
- Date: {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}; run took {elapsed:.0f} s; {load_txt}
- S3: moto's server on 127.0.0.1 (`tests/s3util.moto_server`), in the benchmark process; the service runs
  on a local Ray Serve (`ray.init(num_cpus=2)`) with `build_app({{"store": "s3://voxbench/audio", "auth": "none"}})`.
  moto stands in for S3, so storage times here are a loopback round trip, not a real region's latency.

### Phrase cache: same request, hit vs fresh synthesis

One sentence ("{SENTENCE} (r|b)", wav, seed 7), sequential; {HITS} hits interleaved with {FRESH} fresh
(`cache: false`, same request) and {MISSES} misses (new seed each, so a new key: HEAD miss, synthesis, PUT).

{table_cache}

{chr(10).join("- " + v for v in verdicts)}
- The speedup is fresh-synthesis time over hit time, so it moves with CPU load: a hit is frontend + S3 HEAD
  (+ GET for `binary`), a fresh request is frontend + synthesis + encode + S3 PUT. "First request" is a single
  sample (noisier than the medians).

### AudioStore put / head / get (`open_store(Settings(store="s3://voxbench/clips"))` against moto, {STORE_OPS} ops each)

{table_store}
"""
    update_section("cache", body)
    print(f"wrote the cache section of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
