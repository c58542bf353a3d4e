"""Synthesizer replica memory under a long mixed load (issue 9: ~7 GB per replica before the fix).

    python bench/memory.py [--requests 1000] [--clients 4] [--out docs/memory.json]

Starts VoxServe on a local Ray (local-directory store, the defaults `make serve` uses, fitted to
this machine's CPUs), sends ``--requests`` mixed requests (sync and streamed; wav/mp3/opus; short
to ~60-word texts; some repeated so the phrase cache answers), and samples the RSS of every
Synthesizer replica process (found by its process title) every second. Prints the RSS after
startup, the peak, and the steady state (the median of the samples in the last 10 % of the run
and after the load, once the replica is idle), per replica, in MB.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches "
         "in the old town hall before the long winter evening settles over the harbour").split()


def synthesizer_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any("ServeReplica" in part and "Synthesizer" in part for part in (p.info["cmdline"] or []))]


def rss_mb(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


def request_mix(n: int, seed: int = 0) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    mix = []
    for i in range(n):
        words = rng.choice([3, 6, 12, 25, 40, 60])
        text = " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."
        if rng.random() < 0.3 and words > 12:
            text += " " + " ".join(rng.choice(WORDS) for _ in range(10)) + "."
        if rng.random() < 0.15:
            text = f"Repeated phrase number {rng.randrange(20)}."   # phrase-cache hits
        path = "/v1/tts/stream" if rng.random() < 0.3 else "/v1/tts"
        body = {"text": text, "format": rng.choice(["wav", "mp3", "opus"]), "speed": rng.choice([0.8, 1.0, 1.2])}
        mix.append((path, body))
    return mix


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import ray
    from ray import serve

    from serve_app.app import build_app

    store = Path(tempfile.mkdtemp(prefix="voxmem-"))
    ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=False)
    port = 8000 + random.randrange(1000, 2000)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"store": f"file://{store}", "public_base_url": f"http://127.0.0.1:{port}"}),
              name="mem", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    samples: dict[int, list[tuple[float, float]]] = {}
    done = threading.Event()
    started = time.monotonic()

    def sampler() -> None:
        while not done.is_set():
            for pid in synthesizer_pids():
                samples.setdefault(pid, []).append((time.monotonic() - started, rss_mb(pid)))
            time.sleep(1)

    threading.Thread(target=sampler, daemon=True).start()
    time.sleep(2)
    start_rss = {pid: s[-1][1] for pid, s in samples.items()}
    mix = request_mix(args.requests)
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(part: list[tuple[str, dict]]) -> None:
        with httpx.Client(base_url=base, timeout=300) as c:
            for path, body in part:
                code = c.post(path, json=body).status_code
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1

    threads = [threading.Thread(target=client, args=(mix[i::args.clients],)) for i in range(args.clients)]
    t_load = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load_s = time.monotonic() - t_load
    time.sleep(10)   # idle: the replica hands freed memory back
    done.set()
    report = {"requests": args.requests, "clients": args.clients, "statuses": statuses, "load_s": round(load_s, 1),
              "replicas": {}}
    load_end = t_load - started + load_s
    for pid, series in samples.items():
        values = [v for _, v in series]
        tail = [v for t, v in series if t >= load_end - 0.1 * load_s]
        idle = [v for t, v in series if t > load_end + 5]
        report["replicas"][str(pid)] = {
            "start_mb": round(start_rss.get(pid, values[0])), "peak_mb": round(max(values)),
            "last_10pct_median_mb": round(statistics.median(tail)) if tail else None,
            "idle_after_mb": round(statistics.median(idle)) if idle else None,
        }
    serve.shutdown()
    ray.shutdown()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
