"""Memory of ``make serve`` as it runs: idle peak, and both families' Synthesizer replicas after
1,000 mixed requests (bench/memory.py, issue 9's, samples one replica's RSS over time; this one
starts `make serve` itself, covers Piper and Kokoro, and measures the idle service as a whole).

    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/serve_memory.py [--requests 1000]

(1) Idle: once ready, for ``--idle-s`` seconds of no traffic, the whole process tree's
    memory is sampled every 0.5 s: peak and final total PSS (shared pages split between the processes
    that map them, so the sum is what the service really holds) and per process RSS at the end.
(2) Mixed load: ``--requests`` requests at 4 concurrent clients: Piper and Kokoro voices, sync (wav,
    mp3, opus) and streamed, one to four sentences, one in ten a phrase-cache hit. RSS of every
    Synthesizer replica after each tenth of them, so growth (a leak) shows as a trend, not a number.
Rewrites the ``<!-- bench:serve_memory -->`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import load1, run_meta, sentence_pool, voxserve  # noqa: E402
from bench.scaling import group_of  # noqa: E402
from bench.serving import update_section  # noqa: E402

MB = 1024 * 1024
TARGET_GB = 1.5


def tree_memory(procs: list[psutil.Process]) -> tuple[float, float, dict[str, float]]:
    """(total PSS MB, total RSS MB, RSS MB by process label)."""
    pss = rss = 0.0
    by: dict[str, float] = {}
    for p in procs:
        try:
            info = p.memory_full_info()
            label = group_of(p)
            if label == "other":
                label = p.name()
        except psutil.Error:
            continue
        pss += info.pss / MB
        rss += info.rss / MB
        by[f"{label} ({p.pid})"] = info.rss / MB
    return pss, rss, by


class Sampler:
    """Samples the server's process tree in the background; keeps the peak total PSS / RSS."""

    def __init__(self, server, every_s: float = 0.5) -> None:
        self.server, self.every_s = server, every_s
        self.peak_pss = self.peak_rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pss, rss, _ = tree_memory(self.server.processes())
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self._stop.wait(self.every_s)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def synthesizer_rss(server) -> dict[str, float]:
    out = {}
    for p in server.processes():
        label = group_of(p)
        if label.startswith("Synthesizer"):
            try:
                out[f"{label} ({p.pid})"] = p.memory_info().rss / MB
            except psutil.Error:
                pass
    return out


def mixed_requests(n: int, seed: int = 7) -> list[tuple[str, dict]]:
    """(route, body) pairs: the mix described in the module docstring."""
    rng = random.Random(seed)
    pool = sentence_pool(128)
    out: list[tuple[str, dict]] = []
    for i in range(n):
        text = " ".join(rng.sample(pool, rng.choice((1, 1, 2, 4))))
        voice = "kokoro/jf_alpha" if rng.random() < 0.25 else "en_US-joe-medium"
        body = {"text": text, "voice": voice, "cache": False, "response": "binary"}
        roll = rng.random()
        if roll < 0.1 and out:
            route, earlier = rng.choice(out)  # a repeat with the cache on: a phrase-cache hit after the first
            out.append((route, {**earlier, "cache": True}))
            continue
        if roll < 0.3:
            out.append(("/v1/tts/stream", {**body, "format": rng.choice(("wav", "mp3"))}))
        else:
            out.append(("/v1/tts", {**body, "format": rng.choice(("wav", "wav", "mp3", "opus"))}))
    return out


async def run_mixed(server, requests, concurrency: int, checkpoints: int, log) -> list[tuple[int, dict]]:
    queue = list(reversed(requests))
    done, errors = 0, 0
    marks: list[tuple[int, dict]] = [(0, synthesizer_rss(server))]
    step = max(1, len(requests) // checkpoints)

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal done, errors
        while queue:
            route, body = queue.pop()
            r = await c.post(f"{server.base}{route}", json=body)
            errors += r.status_code != 200
            done += 1
            if done % step == 0:
                marks.append((done, synthesizer_rss(server)))
                log(f"{done} requests ({errors} errors): "
                    + ", ".join(f"{k} {v:.0f} MB" for k, v in marks[-1][1].items()) + f"; load {load1():.1f}")

    async with httpx.AsyncClient(timeout=300) as c:
        await asyncio.gather(*[client(c) for _ in range(concurrency)])
    marks.append((done, synthesizer_rss(server)))
    marks[-1][1]["errors"] = errors
    return marks


def report(idle: dict, marks, meta, args) -> str:
    final = {k: v for k, v in marks[-1][1].items() if k != "errors"}
    worst = max(final.values()) / 1024 if final else float("nan")
    header = "| requests | " + " | ".join(final) + " |"
    lines = [header, "|---:|" + "---:|" * len(final)]
    for n, rss in marks:
        lines.append(f"| {n} | " + " | ".join(f"{rss.get(k, float('nan')):.0f}" for k in final) + " |")
    per_proc = ", ".join(f"{k} {v:.0f}" for k, v in sorted(idle["by"].items(), key=lambda kv: -kv[1])[:10])
    return f"""## Memory of `make serve` (`bench/serve_memory.py`)

- Command: `RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/serve_memory.py --requests {args.requests}`
- Machine: {meta['machine']}; 1-min load average {meta['load_start']:.1f} at start, {meta['load_end']:.1f} at end.
- Date: {meta['date']}; the run took {meta['took']:.0f} s.

**`make serve` idle** (once ready, {args.idle_s:.0f} s without traffic; whole process tree, sampled every
0.5 s): peak total PSS **{idle['peak_pss'] / 1024:.2f} GB** (peak RSS sum {idle['peak_rss'] / 1024:.2f} GB, which counts shared
pages once per process); at the end PSS {idle['pss'] / 1024:.2f} GB. Largest processes at the end (RSS MB): {per_proc}.

**Synthesizer replicas under {args.requests} mixed requests** ({meta['mix']}; {args.concurrency} concurrent clients;
{marks[-1][1].get('errors', 0)} errors). RSS in MB per replica:

{chr(10).join(lines)}

Steady state after {marks[-1][0]} requests: largest Synthesizer replica **{worst:.2f} GB** (target <= {TARGET_GB} GB:
{'met' if worst <= TARGET_GB else '**NOT met**'}).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    started = time.time()
    load_start = load1()
    with voxserve() as server:
        with Sampler(server) as sampler:
            time.sleep(args.idle_s)
        pss, _, by = tree_memory(server.processes())
        idle = {"peak_pss": sampler.peak_pss, "peak_rss": sampler.peak_rss, "pss": pss, "by": by}
        print(f"idle: peak PSS {sampler.peak_pss:.0f} MB, peak RSS sum {sampler.peak_rss:.0f} MB", flush=True)
        requests = mixed_requests(args.requests)
        marks = asyncio.run(run_mixed(server, requests, args.concurrency, 10, lambda m: print(m, flush=True)))
        load_end = load1()
    mix = ("25% Kokoro, 75% Piper; 70% sync (wav/mp3/opus), 30% streamed (wav/mp3), ~10% cache hits; "
           "1, 2 or 4 sentences")
    meta = run_meta(started, load_start, load_end, mix=mix)
    text = report(idle, marks, meta, args)
    print(text)
    if not args.no_doc:
        update_section("serve_memory", text)


if __name__ == "__main__":
    main()
