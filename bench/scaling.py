"""Scaling curve and long text: VoxServe (``make serve`` defaults) under growing concurrency.

    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/scaling.py [--levels 1,2,4,8,16,32] [--max-load 3]

(1) For each model family (Piper voice ``en_US-joe-medium``, Kokoro voice ``kokoro/jf_alpha``) and
    each client concurrency level, one closed-loop pass of distinct one-sentence texts (``POST
    /v1/tts``, wav, binary, cache off): audio-seconds per second, client latency p50/p99, and where
    the CPU went (cores busy per process group: Serve's proxy, Ingress, TextFrontend, each
    Synthesizer, the rest of Ray; and the whole machine), so the point where throughput stops
    growing names the saturated resource. Table in docs/BENCHMARKS.md, plot in docs/scaling.png.
(2) Long text: a ~2,000-character paragraph in one request vs the sum of its sentences sent one
    by one (sequential), medians of interleaved repetitions, Piper voice.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (CpuWatch, drive, load1, median, run_meta, sentence_pool, summary, voxserve,  # noqa: E402
                           wait_for_quiet)
from bench.serving import update_section  # noqa: E402

LEVELS = (1, 2, 4, 8, 16, 32)
VOICES = {"piper": "en_US-joe-medium", "kokoro": "kokoro/jf_alpha"}
PLOT = ROOT / "docs" / "scaling.png"
GROUPS = ("proxy", "Ingress", "TextFrontend", "Synthesizer-piper", "Synthesizer-kokoro", "other")

PARAGRAPH = (
    "The harbour town woke slowly on the first cold morning of autumn. Fishing boats rocked against the "
    "wooden pier while gulls circled above the market, waiting for the first crates of the day. Maria opened "
    "the bakery at six, as she had done for almost thirty years, and the smell of fresh bread drifted down "
    "the narrow street towards the water. Her first customer was the old lighthouse keeper, who always asked "
    "for two rolls and a newspaper, and who always paid with exact change. They talked about the weather, "
    "about the storm that the radio had promised for the weekend, and about the new ferry schedule that "
    "nobody seemed to understand. At the school on the hill, the teachers were preparing for the annual "
    "science fair. The students had built small wind turbines, water filters made from sand and charcoal, and "
    "a model of the harbour that lit up when you pressed a button. By noon the sun had burned away the fog, "
    "and the whole bay shone like polished silver. Tourists gathered on the terrace of the only hotel, taking "
    "photographs of the cliffs and the distant islands. In the afternoon, the wind picked up, and the "
    "fishermen returned early, tying their boats twice as tightly as usual. Everyone agreed that the storm "
    "would arrive sooner than expected. Maria closed the bakery at five, walked home along the sea wall, and "
    "watched the first dark clouds gather over the horizon, heavy and silent, like a promise kept. That "
    "night the rain came in long grey sheets, drumming on the roofs and filling the gutters until they "
    "overflowed into the lanes. The lighthouse turned its slow beam across the water, and somewhere beyond "
    "the breakwater a single ship sounded its horn, low and patient, asking for the way home. In the morning "
    "the streets were washed clean, the air smelled of salt and seaweed, and the children ran down to the "
    "beach to see what the storm had left behind: driftwood, a broken oar, and a glass bottle with no message. "
    "Nobody spoke of the bottle again, but for weeks everyone in town wondered who had sent it, and why."
)


def group_of(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "ProxyActor" in cmd:
        return "proxy"
    for name in GROUPS[1:-1]:
        if f":{name}" in cmd or f"#{name}#" in cmd:
            return name
    return "other"


def cpu_by_group(procs: list[psutil.Process]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        out[f"{group_of(p)}:{p.pid}"] = t.user + t.system
    return out


async def level_pass(server, family: str, level: int, texts: list[str]):
    bodies = [{"text": t, "voice": VOICES[family], "format": "wav", "response": "binary", "cache": False}
              for t in texts]
    procs = server.processes()
    before, t0 = cpu_by_group(procs), time.perf_counter()
    psutil.cpu_percent()  # starts the machine-wide interval
    with CpuWatch(procs) as cpu:
        result = await drive(f"{server.base}/v1/tts", bodies, level)
    wall = time.perf_counter() - t0
    machine = psutil.cpu_percent() / 100 * psutil.cpu_count()
    result.others = cpu.other_cores
    after = cpu_by_group(server.processes())
    groups: dict[str, float] = defaultdict(float)
    replicas: dict[str, int] = defaultdict(int)
    for key, secs in after.items():
        name = key.split(":")[0]
        groups[name] += (secs - before.get(key, 0.0)) / wall  # a replica started mid-pass counts from 0
        replicas[name] += 1
    result.groups, result.machine_cores, result.replicas = dict(groups), machine, dict(replicas)
    return result


def pass_sizes(level: int, base: int) -> int:
    return max(base, 3 * level)


async def scaling(server, families, levels, base: int, log) -> dict:
    out = {}
    for level in levels:
        for family in families:
            texts = sentence_pool(min(128, pass_sizes(level, base)))
            p = await level_pass(server, family, level, texts)
            out[(family, level)] = p
            log(f"{family:>6} c={level:>2}: {p.throughput:5.1f} audio-s/s, machine {p.machine_cores:.2f} cores, "
                f"synth {p.groups.get('Synthesizer-' + family, 0):.2f}, load {load1():.1f}")
    return out


async def long_text(server, reps: int, log) -> dict:
    from tts_engine.text.frontend import split_sentences

    sentences = split_sentences(PARAGRAPH)  # the service's own sentence split
    body = {"voice": VOICES["piper"], "format": "wav", "response": "binary", "cache": False}
    whole, parts = [], []
    async with httpx.AsyncClient(timeout=300) as c:
        for r in range(reps):
            t0 = time.perf_counter()
            resp = await c.post(f"{server.base}/v1/tts", json={**body, "text": PARAGRAPH})
            resp.raise_for_status()
            whole.append(time.perf_counter() - t0)
            total = 0.0
            for s in sentences:
                t0 = time.perf_counter()
                (await c.post(f"{server.base}/v1/tts", json={**body, "text": s})).raise_for_status()
                total += time.perf_counter() - t0
            parts.append(total)
            log(f"long text rep {r + 1}: whole {whole[-1]:.2f} s, sentences alone {total:.2f} s")
    audio_s = (len(resp.content) - 44) / 2 / 22050
    return {"whole": median(whole), "parts": median(parts), "n_sentences": len(sentences), "audio_s": audio_s,
            "chars": len(PARAGRAPH), "all_whole": whole, "all_parts": parts}


def plot(results: dict, families, levels) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for family in families:
        s = [summary([results[(family, c)]]) for c in levels]
        ax1.plot(levels, [x["throughput"] for x in s], marker="o", label=f"{family} ({VOICES[family]})")
        ax2.plot(levels, [x["p50_ms"] for x in s], marker="o", label=f"{family} p50")
        ax2.plot(levels, [x["p99_ms"] for x in s], marker="x", linestyle="--", label=f"{family} p99")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("audio seconds per second")
    ax1.set_title("Throughput (POST /v1/tts, cache off)")
    ax2.set_yscale("log")
    ax2.set_ylabel("client latency, ms")
    ax2.set_title("Latency per ~3 s sentence")
    fig.suptitle("VoxServe, make serve defaults, 2-core CPU", fontsize=10)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def report(results, families, levels, long, meta, args) -> str:
    rows = []
    for family in families:
        for c in levels:
            p = results[(family, c)]
            s = summary([p])
            g = p.groups
            synth = g.get(f"Synthesizer-{family}", 0.0)
            n_synth = p.replicas.get(f"Synthesizer-{family}", 0)
            rest = sum(v for k, v in g.items() if k not in ("proxy", "Ingress", "TextFrontend", f"Synthesizer-{family}"))
            rows.append(f"| {family} | {c} | {s['n']} | {s['throughput']:.1f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | "
                        f"{p.machine_cores:.2f} | {synth:.2f} ({n_synth}) | {g.get('proxy', 0):.2f} | "
                        f"{g.get('Ingress', 0):.2f} | {g.get('TextFrontend', 0):.2f} | {rest:.2f} | {p.others:.2f} | "
                        f"{s['errors']} |")
    long_lines = ""
    if long:
        long_lines = f"""
### Long text (Piper voice)

A {long['chars']}-character paragraph ({long['n_sentences']} sentences, {long['audio_s']:.1f} s of audio) in one
`POST /v1/tts` vs its sentences sent one after another (sum of their latencies); medians of
{len(long['all_whole'])} interleaved repetitions: **{long['whole']:.2f} s** whole vs {long['parts']:.2f} s for the
sentences alone (ratio {long['whole'] / long['parts']:.2f}; target < 1: {'met' if long['whole'] < long['parts'] else '**NOT met**'}).
The paragraph's sentences are rendered side by side (one per core) inside the Synthesizer replica.
"""
    return f"""## Scaling curve (`bench/scaling.py`)

- Command: `RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/scaling.py`
- Machine: {meta['machine']}; 1-min load average {meta['load_start']:.1f} at start, {meta['load_end']:.1f} at end.
- Date: {meta['date']}; the run took {meta['took']:.0f} s.
- Service: `make serve` defaults (`python -m serve_app.run`, local store, auth off on loopback).
  One closed-loop pass per level: max({args.base}, 3 x concurrency) distinct ~3 s sentences, `POST /v1/tts`
  wav, binary, cache off; the client (httpx) runs on the same 2 cores.
- Cores: CPU seconds per wall second, machine-wide and per process group of the service (Synthesizer:
  replicas of the family that was driven, replica count in brackets; "Ray rest": GCS, raylet, controller,
  the other deployments; "other jobs": processes that are not the service's nor this client's, i.e. other
  engineers' work on the shared box, which the service had to share the cores with).

| family | clients | requests | audio-s/s | p50 ms | p99 ms | machine cores | Synthesizer | proxy | Ingress | TextFrontend | Ray rest | other jobs | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

![throughput and latency vs concurrency](scaling.png)

{meta.get('reading', '')}
{long_lines}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--families", default="piper,kokoro")
    parser.add_argument("--base", type=int, default=24, help="requests per pass at least")
    parser.add_argument("--long-reps", type=int, default=3)
    parser.add_argument("--max-load", type=float, default=3.0)
    parser.add_argument("--max-wait", type=float, default=900.0)
    parser.add_argument("--reading", default="", help="a paragraph of interpretation for the doc")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))
    families = tuple(args.families.split(","))
    started = time.time()
    with voxserve() as server:
        warm = asyncio.run
        for family in families:
            warm(level_pass(server, family, 2, sentence_pool(4)))
        load_start = wait_for_quiet(args.max_load, args.max_wait)
        results = asyncio.run(scaling(server, families, levels, args.base, lambda m: print(m, flush=True)))
        long = asyncio.run(long_text(server, args.long_reps, lambda m: print(m, flush=True))) if args.long_reps else None
        load_end = load1()
    meta = run_meta(started, load_start, load_end, reading=args.reading)
    text = report(results, families, levels, long, meta, args)
    print(text)
    if not args.no_doc:
        plot(results, families, levels)
        update_section("scaling", text)


if __name__ == "__main__":
    main()
