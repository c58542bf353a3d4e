"""Serving overhead benchmark: VoxServe on a local Ray Serve vs the bare engine, same sentences, one run.

    RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/serving.py

Measures, against a local-directory store (so storage does not dominate):

(a) sync latency of POST /v1/tts (wav, response=binary, cache=false, one sentence, sequential)
    vs the bare engine in this process (TTSEngine.synthesize + WAV encode) on the same sentence,
    interleaved request by request; overhead ratio = median(service) / median(engine), with the
    engine at the Synthesizer replica's torch thread count (Ray sets OMP_NUM_THREADS=1 for a
    fractional-CPU actor), and also at this process's torch default for reference.
(b) streaming time to first audio byte (first byte past the 44-byte WAV header) of
    POST /v1/tts/stream for the same sentence: median and p90.
(c) throughput in audio-seconds per wall second at client concurrency 1/4/16 (httpx.AsyncClient,
    cache=false, distinct sentences) vs the bare engine at the replica's thread count: sequential
    synthesize, and render_batch in batches of 4 and 8. Modes are interleaved in rounds; a second
    round only starts within the time budget.

Prints a table and replaces the ``<!-- bench:serving -->`` section of docs/BENCHMARKS.md
(other sections are kept). Takes about 3-5 minutes on a shared 2-core CPU box.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "BENCHMARKS.md"
DOC_INTRO = """# VoxServe benchmarks

Numbers measured by the scripts in `bench/`. Each script rewrites only its own section
(between its `<!-- bench:NAME -->` markers); re-run a script to refresh its numbers.
"""

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."

SUBJECTS = ["The old lighthouse keeper", "A young engineer", "Our small team", "The city council",
            "My neighbour's daughter", "The night train conductor", "A curious student", "The museum guide"]
VERBS = ["carefully checked", "quietly described", "finally repaired", "proudly presented"]
OBJECTS = ["the broken radio before the storm arrived.", "a new plan for the harbour at dawn.",
           "the long report on Tuesday afternoon.", "an old map of the northern valley."]

TARGET_RATIO = 1.15
TARGET_TTFB_MS = 150.0
TIME_BUDGET_S = 170  # no second throughput round starts after this (keeps the run near 5 minutes)


def distinct_sentences(n: int) -> list[str]:
    """``n`` different one-sentence texts of similar length (about 3 s of speech each)."""
    out = []
    for i in range(n):
        s = SUBJECTS[i % len(SUBJECTS)]
        v = VERBS[(i // len(SUBJECTS)) % len(VERBS)]
        o = OBJECTS[(i + i // len(SUBJECTS)) % len(OBJECTS)]
        out.append(f"{s} {v} {o}")
    assert len(set(out)) == n, "sentence pool too small"
    return out


# ---------------------------------------------------------------------------- shared helpers (cache.py too)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_info() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        model = m.group(1).strip() if m else model
    except (OSError, subprocess.CalledProcessError):
        pass
    ram_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        ram_gib = kb / 1024 / 1024
    except (OSError, AttributeError):
        pass
    return f"{model}, {os.cpu_count()} cores, {ram_gib:.0f} GiB RAM, {platform.system()} {platform.release()}"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def percentile(xs: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method)."""
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def update_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->`` section; keep the rest."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else DOC_INTRO
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(doc)


def wav_audio_seconds(data: bytes) -> float:
    if len(data) < 44 or data[:4] != b"RIFF":
        raise ValueError(f"not a WAV response ({len(data)} bytes: {data[:80]!r})")
    rate = struct.unpack("<I", data[24:28])[0]
    return (len(data) - 44) / 2 / rate


def start_ray(env: dict[str, str] | None = None, num_cpus: int = 2) -> None:
    import ray

    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, configure_logging=False,
             logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": env} if env else None)


def start_serve(port: int) -> None:
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": port})


def wait_ready(base: str, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base}/readyz", timeout=5)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(f"service at {base} not ready: {last}")


def replica_counts() -> dict[str, int]:
    from ray import serve

    out = {}
    for app_name, app in serve.status().applications.items():
        for dep_name, dep in app.deployments.items():
            out[f"{app_name}/{dep_name}"] = sum(dep.replica_states.values())
    return out


def replica_torch_threads() -> tuple[str | None, int]:
    """OMP_NUM_THREADS / torch threads that a num_cpus=0.5 actor (like a Synthesizer replica) gets."""
    import ray

    @ray.remote(num_cpus=0.5)
    def probe():
        import torch
        return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()

    return ray.get(probe.remote())


# ---------------------------------------------------------------------------- measurements


def tts_body(text: str, **extra) -> dict:
    return {"text": text, "format": "wav", "response": "binary", "cache": False, "seed": 1, **extra}


def measure_sync(client, base: str, engine, encoders, reps: int, replica_threads: int) -> dict:
    """(a): service and bare engine alternately on SENTENCE, the engine both at the replica's torch
    thread count (like for like) and at torch's default for this process."""
    import torch

    default_threads = torch.get_num_threads()
    svc, eng, eng1 = [], [], []
    audio_s = 0.0

    def service_once() -> None:
        nonlocal audio_s
        t0 = time.perf_counter()
        r = client.post(f"{base}/v1/tts", json=tts_body(SENTENCE))
        r.raise_for_status()
        svc.append(time.perf_counter() - t0)
        audio_s = wav_audio_seconds(r.content)

    def engine_once(threads: int, into: list[float]) -> None:
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        res = engine.synthesize(SENTENCE, seed=1)
        encoders.encode(res.audio, res.sample_rate, "wav")
        into.append(time.perf_counter() - t0)
        torch.set_num_threads(default_threads)

    for i in range(reps):
        order = [service_once, lambda: engine_once(default_threads, eng), lambda: engine_once(replica_threads, eng1)]
        if i % 2:
            order.reverse()
        for step in order:
            step()
    # Server-side breakdown (JSON timings) from a few response=url requests.
    timings: dict[str, list[float]] = {}
    for _ in range(5):
        r = client.post(f"{base}/v1/tts", json=tts_body(SENTENCE, response="url"))
        r.raise_for_status()
        for k, v in r.json()["timings"].items():
            timings.setdefault(k, []).append(v)
    return {"service": svc, "engine": eng, "engine_like": eng1, "audio_s": audio_s,
            "engine_threads": default_threads,
            "server_timings_ms": {k: median(v) for k, v in timings.items()}}


def measure_ttfb(client, base: str, reps: int) -> dict:
    """(b): time from sending POST /v1/tts/stream to holding the first byte past the WAV header."""
    ttfb, total = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        first = None
        got = 0
        with client.stream("POST", f"{base}/v1/tts/stream", json=tts_body(SENTENCE)) as r:
            r.raise_for_status()
            for chunk in r.iter_raw():
                got += len(chunk)
                if first is None and got > 44:
                    first = time.perf_counter() - t0
        total.append(time.perf_counter() - t0)
        ttfb.append(first if first is not None else float("nan"))
    return {"ttfb": ttfb, "total": total}


async def service_batch(base: str, texts: list[str], concurrency: int) -> tuple[float, float, list[float]]:
    """All ``texts`` through POST /v1/tts with ``concurrency`` in flight; (audio s, wall s, latencies)."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    audio = 0.0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        async def one(text: str) -> None:
            nonlocal audio
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(f"{base}/v1/tts", json=tts_body(text))
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)
                audio += wav_audio_seconds(r.content)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(t) for t in texts))
        wall = time.perf_counter() - t0
    return audio, wall, latencies


def engine_batch(engine, encoders, texts: list[str], batch: int, threads: int) -> tuple[float, float]:
    """The bare engine over ``texts``: batch 1 = synthesize() each; else prepare + render_batch + finish."""
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _engine_batch(engine, encoders, texts, batch)
    finally:
        torch.set_num_threads(default_threads)


def _engine_batch(engine, encoders, texts: list[str], batch: int) -> tuple[float, float]:
    from tts_engine.engine import SynthesisOptions

    audio = 0.0
    t0 = time.perf_counter()
    if batch == 1:
        for text in texts:
            res = engine.synthesize(text, seed=1)
            encoders.encode(res.audio, res.sample_rate, "wav")
            audio += res.duration_s
    else:
        opts = SynthesisOptions(seed=1)
        for i in range(0, len(texts), batch):
            prepared = [engine.prepare(t, opts) for t in texts[i:i + batch]]
            items = [(s.ids, n, p.speaker_id) for p in prepared for s, n in zip(p.sentences, p.noise)]
            assert len(items) == len(prepared), "bench sentences must be one sentence each"
            pieces = engine.render_batch(prepared[0].voice.id, items)
            for p, piece in zip(prepared, pieces):
                res = engine.finish(p, [piece])
                encoders.encode(res.audio, res.sample_rate, "wav")
                audio += res.duration_s
    return audio, time.perf_counter() - t0


def measure_throughput(base: str, engine, encoders, texts: list[str], rounds: int, threads: int,
                       deadline: float = float("inf")) -> dict:
    """(c): every mode once per round, in alternating order; totals over all rounds. A round
    is only started before ``deadline`` (perf_counter), so a loaded machine cannot run for ever."""
    modes = [("service c=1", "svc", 1), ("service c=4", "svc", 4), ("service c=16", "svc", 16),
             ("engine sequential", "eng", 1), ("engine batch 4", "eng", 4), ("engine batch 8", "eng", 8)]
    acc = {name: {"audio": 0.0, "wall": 0.0, "lat": [], "per_round": []} for name, _, _ in modes}
    for rnd in range(rounds):
        if rnd and time.perf_counter() > deadline:
            print(f"  skipping round {rnd + 1}: over the time budget", flush=True)
            break
        order = modes if rnd % 2 == 0 else modes[::-1]
        for name, kind, n in order:
            if kind == "svc":
                audio, wall, lat = asyncio.run(service_batch(base, texts, n))
                acc[name]["lat"] += lat
            else:
                audio, wall = engine_batch(engine, encoders, texts, n, threads)
            acc[name]["audio"] += audio
            acc[name]["wall"] += wall
            acc[name]["per_round"].append(audio / wall)
            print(f"  round {rnd + 1} {name:18s} {audio / wall:6.2f} audio-s/s  ({len(texts)} req, {wall:.1f} s)",
                  flush=True)
    return acc


# ---------------------------------------------------------------------------- main


def main() -> int:
    import httpx
    import ray
    from ray import serve

    from serve_app.app import build_app
    from tts_engine.audio import encoders
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    started = time.perf_counter()
    load_before = os.getloadavg()
    sync_reps, ttfb_reps, rounds, per_level = 10, 15, 2, 16
    texts = distinct_sentences(per_level)

    engine = TTSEngine(Settings(device="cpu"))
    for _ in range(2):  # load + warm
        engine.synthesize(SENTENCE, seed=1)

    store_dir = tempfile.mkdtemp(prefix="voxbench-store-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start_ray()
    try:
        start_serve(port)
        serve.run(build_app({"store": f"file://{store_dir}", "public_base_url": base, "auth": "none"}),
                  name="bench", route_prefix="/")
        wait_ready(base)
        threads = replica_torch_threads()
        with httpx.Client(timeout=300) as client:
            for text in [SENTENCE] * 3 + texts[:2]:  # warm every path (sync, stream)
                client.post(f"{base}/v1/tts", json=tts_body(text)).raise_for_status()
            measure_ttfb(client, base, 2)
            print(f"service up in {time.perf_counter() - started:.0f} s; replicas run torch with "
                  f"OMP_NUM_THREADS={threads[0]} ({threads[1]} threads)", flush=True)

            print("(a) sync latency ...", flush=True)
            sync = measure_sync(client, base, engine, encoders, sync_reps, threads[1])
            print("(b) streaming first byte ...", flush=True)
            ttfb = measure_ttfb(client, base, ttfb_reps)
        print("(c) throughput ...", flush=True)
        tput = measure_throughput(base, engine, encoders, texts, rounds, threads[1], deadline=started + TIME_BUDGET_S)
        replicas = replica_counts()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(store_dir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    load_txt = f"1-min load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end"

    # ------------------------------------------------------------------ report
    like = threads[1]
    svc_ms = median(sync["service"]) * 1000
    eng_ms = median(sync["engine"]) * 1000
    like_ms = median(sync["engine_like"]) * 1000
    ratio, ratio_default = svc_ms / like_ms, svc_ms / eng_ms
    ttfb_ms = [x * 1000 for x in ttfb["ttfb"]]
    ttfb_med, ttfb_p90 = median(ttfb_ms), percentile(ttfb_ms, 90)
    ok_ratio = ratio <= TARGET_RATIO
    ok_ttfb = ttfb_med <= TARGET_TTFB_MS

    lines = ["| (a) one sentence, sync, sequential | median | min | max |", "|---|---:|---:|---:|"]
    for label, xs in [("service POST /v1/tts (wav, binary, cache off)", sync["service"]),
                      (f"bare engine synthesize + wav, {like} torch thread(s) = the replica's", sync["engine_like"]),
                      (f"bare engine synthesize + wav, {sync['engine_threads']} torch threads (torch default here)",
                       sync["engine"])]:
        lines.append(f"| {label} | {median(xs) * 1000:.0f} ms | {min(xs) * 1000:.0f} ms | {max(xs) * 1000:.0f} ms |")
    table_a = "\n".join(lines)
    breakdown = ", ".join(f"{k} {v:.0f} ms" for k, v in sync["server_timings_ms"].items())

    lines = ["| (c) mode | audio-s / s | per round | client latency p50 / p90 |", "|---|---:|---|---|"]
    for name, a in tput.items():
        lat = f"{median(a['lat']) * 1000:.0f} / {percentile(a['lat'], 90) * 1000:.0f} ms" if a["lat"] else "-"
        rounds_txt = ", ".join(f"{x:.2f}" for x in a["per_round"])
        lines.append(f"| {name} | {a['audio'] / a['wall']:.2f} | {rounds_txt} | {lat} |")
    table_c = "\n".join(lines)

    verdict_a = (f"**{ratio:.2f}x** (service {svc_ms:.0f} ms / engine {like_ms:.0f} ms at {like} thread(s)) -- "
                 f"target <= {TARGET_RATIO}: " + ("met" if ok_ratio else "**NOT met**"))
    verdict_default = (f"{ratio_default:.2f}x (engine {eng_ms:.0f} ms at {sync['engine_threads']} threads); on a "
                       "loaded 2-core box torch's 2 OpenMP threads fight other processes, so this row mostly "
                       "measures that contention, not serving overhead")
    verdict_b = (f"median **{ttfb_med:.0f} ms**, p90 {ttfb_p90:.0f} ms (n={len(ttfb_ms)}; whole stream median "
                 f"{median(ttfb['total']) * 1000:.0f} ms) -- target <= {TARGET_TTFB_MS:.0f} ms: "
                 + ("met" if ok_ttfb else "**NOT met**"))

    print()
    print(table_a)
    print(f"server-side timings (median of 5, response=url): {breakdown}")
    print(f"(a) overhead ratio, like for like: {verdict_a}")
    print(f"    vs the engine at torch's default threads: {verdict_default}")
    print(f"(b) streaming first audio byte: {verdict_b}")
    print()
    print(table_c)
    print(f"replicas at the end: {replicas}")
    print(f"elapsed {elapsed:.0f} s; {load_txt}")

    audio_s = sync["audio_s"]
    n_rounds = len(next(iter(tput.values()))["per_round"])
    body = f"""
## Serving overhead (`bench/serving.py`)

- Command: `RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/serving.py`
- Machine: {machine_info()}; shared with other jobs while measured ({load_txt}),
  so absolute times are inflated and noisy; modes are interleaved and medians reported.
- Date: {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}; the run took {elapsed:.0f} s.
- Service: local Ray Serve (`ray.init(num_cpus=2)`), `build_app` defaults (one replica per deployment),
  store `file://<tmpdir>`. Ray gives each Synthesizer replica OMP_NUM_THREADS={threads[0]}, so torch runs
  {like} thread(s) there; the bare engine is measured at that same thread count (like for like), and in (a)
  also at this process's torch default ({sync['engine_threads']}).
- Sentence for (a)/(b): "{SENTENCE}" ({audio_s:.2f} s of audio), seed 1, wav, cache off.

### (a) Sync latency, one sentence ({sync_reps} interleaved reps)

{table_a}

Overhead ratio service / bare engine, like for like: {verdict_a}.
Against the engine at torch's default thread count: {verdict_default}.
Server-side split (median of 5 `response=url` requests): {breakdown}.

### (b) Streaming time to first audio byte (`POST /v1/tts/stream`, first byte past the 44-byte WAV header)

{verdict_b}.

### (c) Throughput, {per_level} distinct one-sentence requests per level and round, {n_rounds} round(s), cache off

{table_c}

audio-s / s = seconds of audio produced per wall-clock second (totals over rounds). Service levels are
client concurrency (httpx.AsyncClient); engine rows run in this process at {like} torch thread(s):
`synthesize()` one text at a time, or `prepare` + `render_batch` of 4 / 8 texts + `finish` (+ WAV encode
in every row). Replicas at the end: {replicas}.
"""
    update_section("serving", body)
    print(f"wrote the serving section of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
