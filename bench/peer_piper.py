"""VoxServe vs Piper's own HTTP server: same box, same voice, same sentences, interleaved rounds.

    .venv/bin/pip install -e ".[bench]"          # Flask (Piper's server), matplotlib
    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/peer_piper.py [--rounds 3] [--max-load 3]

Starts both servers itself: Piper's ``python -m piper.http_server -m en_US-joe-medium.onnx`` (the
piper-tts wheel, ONNX Runtime, Flask; ``POST /synthesize`` -> WAV) and VoxServe as ``make serve``
runs it (``POST /v1/tts``, wav, ``response: binary``, ``cache: false``). Each round runs every
concurrency level (1, 4, 16) on both servers, alternating which goes first, over the same list of
distinct one-sentence texts (~3 s of speech each). Reports audio-seconds per second, client latency
p50/p99, and the CPU the server's processes used (cores busy), then rewrites the
``<!-- bench:peer_piper -->`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (CpuWatch, drive, load1, piper_server, run_meta, sentence_pool,  # noqa: E402
                           summary, voxserve, wait_for_quiet)
from bench.serving import update_section  # noqa: E402

LEVELS = (1, 4, 16)
TARGET_MIN, TARGET = 1.0, 1.5


def bodies(texts: list[str], which: str) -> list[dict]:
    if which == "piper":
        return [{"text": t} for t in texts]
    return [{"text": t, "format": "wav", "response": "binary", "cache": False} for t in texts]


async def one_pass(server, which: str, texts: list[str], level: int):
    url = f"{server.base}/synthesize" if which == "piper" else f"{server.base}/v1/tts"
    with CpuWatch(server.processes()) as cpu:
        result = await drive(url, bodies(texts, which), level)
    result.cores, result.others = cpu.server_cores, cpu.other_cores
    return result


async def measure(servers: dict, texts: list[str], levels: tuple[int, ...], rounds: int, log) -> dict:
    passes: dict = {(w, c): [] for w in servers for c in levels}
    for r in range(rounds):
        for level in levels:
            order = list(servers) if (r + level) % 2 == 0 else list(reversed(servers))
            for which in order:
                p = await one_pass(servers[which], which, texts, level)
                passes[(which, level)].append(p)
                log(f"round {r + 1} c={level:>2} {which:>5}: {p.throughput:5.1f} audio-s/s, "
                    f"p50 {sorted(p.latencies_s)[len(p.latencies_s) // 2] * 1000:.0f} ms, "
                    f"{p.cores:.2f} cores, others {p.others:.2f} cores, load {load1():.1f}")
    return passes


def report(passes: dict, levels, args, meta: dict) -> str:
    rows, verdicts = [], []
    for level in levels:
        ours, theirs = summary(passes[("ours", level)]), summary(passes[("piper", level)])
        cores = {w: sum(p.cores for p in passes[(w, level)]) / len(passes[(w, level)]) for w in ("ours", "piper")}
        others = {w: sum(p.others for p in passes[(w, level)]) / len(passes[(w, level)]) for w in ("ours", "piper")}
        per_core = {w: s["throughput"] / cores[w] for w, s in (("ours", ours), ("piper", theirs))}
        ratio = ours["throughput"] / theirs["throughput"]
        rows.append(f"| {level} | {ours['throughput']:.1f} | {theirs['throughput']:.1f} | **{ratio:.2f}x** | "
                    f"{ours['p50_ms']:.0f} / {ours['p99_ms']:.0f} | {theirs['p50_ms']:.0f} / {theirs['p99_ms']:.0f} | "
                    f"{cores['ours']:.2f} / {cores['piper']:.2f} | {per_core['ours']:.1f} / {per_core['piper']:.1f} | "
                    f"{others['ours']:.2f} / {others['piper']:.2f} | {ours['errors']} / {theirs['errors']} |")
        want = TARGET_MIN if level == 1 else TARGET
        lower_p99 = level == 1 or ours["p99_ms"] < theirs["p99_ms"]
        verdicts.append(f"c={level}: {ratio:.2f}x (target >= {want:g}x"
                        + ("" if level == 1 else ", p99 lower") + "): "
                        + ("met" if ratio >= want and lower_p99 else "**NOT met**"))
        if level == 1:
            verdicts.append(f"c=1 p50 latency: ours {ours['p50_ms']:.0f} ms vs Piper {theirs['p50_ms']:.0f} ms "
                            "(target: no higher): " + ("met" if ours["p50_ms"] <= theirs["p50_ms"] else "**NOT met**"))
        if level > 1 and ratio < TARGET_MIN:
            verdicts.append(f"c={level}: slower than Piper (target >= 1.0x): **NOT met**")
    per_pass = "; ".join(
        f"c={c}: ours " + ", ".join(f"{p.throughput:.1f}" for p in passes[("ours", c)])
        + " / Piper " + ", ".join(f"{p.throughput:.1f}" for p in passes[("piper", c)]) for c in levels)
    return f"""## Throughput vs Piper's own server (`bench/peer_piper.py`)

- Command: `RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/peer_piper.py --rounds {args.rounds}`
- Machine: {meta['machine']}; 1-min load average {meta['load_start']:.1f} at start, {meta['load_end']:.1f} at end
  (other engineers' jobs share it; both servers see the same load, rounds interleaved)
- Date: {meta['date']}; the run took {meta['took']:.0f} s.
- Piper: `python -m piper.http_server -m en_US-joe-medium.onnx --host 127.0.0.1` (piper-tts
  {meta['piper_version']}, ONNX Runtime, Flask), `POST /synthesize {{"text"}}` -> WAV.
- VoxServe: `make serve` (`python -m serve_app.run`, its defaults, auth off on loopback, local store),
  `POST /v1/tts {{"text", "format": "wav", "response": "binary", "cache": false}}`.
- Load: {len(meta['texts'])} distinct one-sentence texts (about 3 s of speech each), each sent once per pass by
  N concurrent keep-alive clients (httpx, this process, same box); {args.rounds} rounds, the order of the two
  servers alternating per level and round. audio-s/s = audio seconds returned / wall seconds, over all passes.
  "cores" = CPU seconds of the server's processes (Ray's included) per wall second; "per core" = audio-s/s
  per core they used; "others" = cores that other processes on the shared box (not the servers, not this
  client) kept busy during the passes: the contention each server met.

| concurrency | VoxServe audio-s/s | Piper audio-s/s | ours / Piper | VoxServe p50 / p99 ms | Piper p50 / p99 ms | cores ours / Piper | audio-s/s per core ours / Piper | others' cores ours / Piper | errors |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Per pass (audio-s/s): {per_pass}.

{chr(10).join('- ' + v for v in verdicts)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--max-load", type=float, default=3.0, help="wait for a 1-min load average below this")
    parser.add_argument("--max-wait", type=float, default=900.0, help="seconds to wait for it at most")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))
    texts = sentence_pool(args.sentences)
    started = time.time()
    from importlib.metadata import version

    with piper_server() as piper, voxserve() as ours:
        servers = {"piper": piper, "ours": ours}
        print("warming up both servers", flush=True)
        for which, server in servers.items():
            asyncio.run(one_pass(server, which, texts[:8], 4))
        load_start = wait_for_quiet(args.max_load, args.max_wait)
        passes = asyncio.run(measure(servers, texts, levels, args.rounds, lambda m: print(m, flush=True)))
        load_end = load1()
    meta = run_meta(started, load_start, load_end, texts=texts, piper_version=version("piper-tts"))
    text = report(passes, levels, args, meta)
    print(text)
    if not args.no_doc:
        update_section("peer_piper", text)


if __name__ == "__main__":
    main()
