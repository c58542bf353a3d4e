"""`make cluster-test`: VoxServe on a real two-node Ray cluster on this machine, losing one node.

    python tests/cluster/run.py [--load-s 40] [--clients 4] [--report out.json]

1. `ray start --head` and a second `ray start --address=...` with its own CPUs (both 127.0.0.1,
   their own temp dir and ports, so nothing else running Ray on the machine is touched).
2. `serve deploy` of infra/serve_config.yaml (the cluster-sized numbers), adapted only where one
   machine differs from a cluster: one HTTP proxy (two nodes cannot both bind one port) on a free
   port, Ingress replicas beside that proxy (Ray's proxy answers 500 for an ingress replica that
   dies mid-request; on a real cluster each node's own proxy fronts its own traffic), a local store.
3. Checks that Synthesizer replicas run on both nodes, then sends a bounded load (N clients,
   mixed sync and streamed requests) and, halfway, kills the worker node's raylet and everything
   under it (what `ray stop` would do on that node alone).
4. Measures: requests failed (target <= 1 %, each a JSON 503 with Retry-After, none a 500), time
   until `serve status` is healthy again and /readyz answers 200, and fetches and decodes every
   URL answered 200. Exits non-zero if a target is missed; prints and writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INGRESS_RESOURCE = "voxserve_http_node"
TEXTS = [
    "The cluster keeps answering while a node goes away.",
    "Every request gets audio or a clear answer to come back. Nothing in between.",
    "Replicas on the surviving node take over the work.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    temp_dir: Path
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    worker_manager_port: int = field(default_factory=free_port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                   RAY_ROTATION_MAX_BYTES=str(16 << 20), RAY_ROTATION_BACKUP_COUNT="4",
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
        return env

    def ray(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([str(BIN / "ray"), *args], check=True, env=self.env(), timeout=timeout,
                       stdout=subprocess.DEVNULL)

    def start(self, head_cpus: int, worker_cpus: int) -> None:
        self.ray("start", "--head", f"--port={self.gcs_port}", "--node-ip-address=127.0.0.1",
                 f"--num-cpus={head_cpus}", "--num-gpus=0", f"--temp-dir={self.temp_dir}",
                 "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                 f"--resources={json.dumps({INGRESS_RESOURCE: 100})}", "--disable-usage-stats")
        self.ray("start", f"--address={self.address}", "--node-ip-address=127.0.0.1",
                 f"--num-cpus={worker_cpus}", "--num-gpus=0", f"--node-manager-port={self.worker_manager_port}",
                 "--disable-usage-stats")

    def worker_raylet(self) -> psutil.Process:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "raylet" in cmd and f"--node_manager_port={self.worker_manager_port}" in cmd:
                return proc
        raise RuntimeError("worker raylet not found")

    def kill_worker_node(self) -> None:
        """The worker node's raylet and everything it started (its replicas, agents): that node alone."""
        raylet = self.worker_raylet()
        for proc in [*raylet.children(recursive=True), raylet]:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass

    def stop(self) -> None:
        """Only this cluster's processes (matched by its temp dir and ports); never a global `ray stop`."""
        subprocess.run([str(BIN / "serve"), "shutdown", "-y", "-a", self.dashboard], env=self.env(),
                       timeout=60, capture_output=True)
        marks = (str(self.temp_dir), f"127.0.0.1:{self.gcs_port}", f"--gcs_server_port={self.gcs_port}")
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.pid != os.getpid() and any(m in cmd for m in marks):
                try:
                    proc.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass


def deploy_config(cluster: Cluster, store: Path) -> Path:
    config = yaml.safe_load((ROOT / "infra" / "serve_config.yaml").read_text())
    config["proxy_location"] = "HeadOnly"
    config["http_options"]["port"] = cluster.http_port
    app = config["applications"][0]
    # What this test is about is node loss, on the English family: no credentials (loopback only),
    # and the Kokoro and voice-matching deployments left out so two small nodes can place the rest.
    app["args"] = {**(app.get("args") or {}), "store": f"file://{store}",
                   "public_base_url": f"http://127.0.0.1:{cluster.http_port}", "auth": "none",
                   "model_families": ["piper"], "matching_enabled": False}
    app["deployments"] = [d for d in app["deployments"]
                          if d["name"] not in ("Synthesizer-kokoro", "VoiceMatcher", "RateLimiter")]
    for dep in app["deployments"]:
        if dep["name"] == "Ingress":
            dep["ray_actor_options"]["resources"] = {INGRESS_RESOURCE: 1}
    path = cluster.temp_dir / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def serve_status(cluster: Cluster) -> dict:
    out = subprocess.run([str(BIN / "serve"), "status", "-a", cluster.dashboard], env=cluster.env(),
                         capture_output=True, text=True, timeout=60)
    return yaml.safe_load(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}


def healthy(status: dict) -> bool:
    apps = status.get("applications") or {}
    app = apps.get("voxserve") or {}
    deployments = app.get("deployments") or {}
    return app.get("status") == "RUNNING" and bool(deployments) and all(
        d.get("status") == "HEALTHY" for d in deployments.values())


def wait_healthy(cluster: Cluster, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if healthy(serve_status(cluster)):
            return time.monotonic() - started
        time.sleep(1)
    raise TimeoutError(f"serve status not healthy after {timeout_s:.0f} s: {serve_status(cluster)}")


def replica_nodes(cluster: Cluster) -> dict[str, set[str]]:
    """Deployment -> node ids of its live replicas (Ray's state API)."""
    from ray.util.state import list_actors

    nodes: dict[str, set[str]] = {}
    for actor in list_actors(address=cluster.dashboard, filters=[("state", "=", "ALIVE")], limit=1000):
        name = actor.class_name or ""
        if name.startswith("ServeReplica:voxserve:"):
            nodes.setdefault(name.rsplit(":", 1)[1], set()).add(actor.node_id)
    return nodes


@dataclass
class Answer:
    at: float
    path: str
    status: int
    content_type: str
    retry_after: str | None
    body: bytes
    url: str | None = None


def load(base: str, clients: int, seconds: float, kill_at: float, on_kill) -> list[Answer]:
    answers: list[Answer] = []
    lock = threading.Lock()
    started = time.monotonic()
    killed = threading.Event()

    def client(i: int) -> None:
        n = 0
        with httpx.Client(base_url=base, timeout=120) as c:
            while time.monotonic() - started < seconds:
                text = f"{TEXTS[n % len(TEXTS)]} Client {i}, request {n}, {uuid.uuid4().hex[:6]}."
                path = "/v1/tts/stream" if n % 4 == 3 else "/v1/tts"
                try:
                    r = c.post(path, json={"text": text, "format": "mp3" if n % 2 else "wav"})
                    a = Answer(time.monotonic() - started, path, r.status_code, r.headers.get("content-type", ""),
                               r.headers.get("retry-after"), r.content,
                               r.json().get("audio_url") if path == "/v1/tts" and r.status_code == 200
                               else r.headers.get("x-audio-url"))
                except httpx.HTTPError as exc:   # a connection cut is a failure too
                    a = Answer(time.monotonic() - started, path, 0, "", None, str(exc).encode())
                with lock:
                    answers.append(a)
                n += 1
                if i == 0 and not killed.is_set() and time.monotonic() - started >= kill_at:
                    killed.set()
                    on_kill()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def verify_urls(answers: list[Answer]) -> list[str]:
    """Every URL answered 200 must be fetchable and decode (streams' stored copies included)."""
    from tts_engine.audio.encoders import decode

    problems = []
    for a in answers:
        if a.status != 200 or not a.url:
            continue
        r = None
        for _ in range(20):   # a stream's stored copy lands as the stream ends
            r = httpx.get(a.url, timeout=30)
            if r.status_code == 200:
                break
            time.sleep(0.5)
        if r is None or r.status_code != 200:
            problems.append(f"{a.url}: {r.status_code if r else 'no answer'}")
            continue
        audio, rate = decode(r.content)
        if len(audio) / rate < 0.5:
            problems.append(f"{a.url}: {len(audio) / rate:.2f} s of audio")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load-s", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--head-cpus", type=int, default=4)
    parser.add_argument("--worker-cpus", type=int, default=4)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()

    temp = Path(tempfile.mkdtemp(prefix="voxcluster-"))
    cluster = Cluster(temp)
    report: dict = {"clients": args.clients, "load_s": args.load_s}
    try:
        t0 = time.monotonic()
        cluster.start(args.head_cpus, args.worker_cpus)
        store = temp / "store"
        config = deploy_config(cluster, store)
        subprocess.run([str(BIN / "serve"), "deploy", str(config), "-a", cluster.dashboard], check=True,
                       env=cluster.env(), timeout=120, capture_output=True)
        report["deploy_to_healthy_s"] = round(wait_healthy(cluster, 300), 1)
        report["startup_s"] = round(time.monotonic() - t0, 1)
        nodes = replica_nodes(cluster)
        report["replica_nodes"] = {k: len(v) for k, v in nodes.items()}
        base = f"http://127.0.0.1:{cluster.http_port}"
        marks: dict[str, float] = {}

        def kill() -> None:
            marks["killed_at"] = time.monotonic()
            cluster.kill_worker_node()

        readiness: list[tuple[float, int]] = []

        def watch_readyz() -> None:
            """/readyz once a second from the kill until serve status is healthy again."""
            while "killed_at" not in marks:
                time.sleep(0.2)
            while "healthy_at" not in marks:
                try:
                    code = httpx.get(base + "/readyz", timeout=30).status_code
                except httpx.HTTPError:
                    code = 0
                readiness.append((time.monotonic() - marks["killed_at"], code))
                time.sleep(1)

        def watch_serve_status() -> None:
            while "killed_at" not in marks:
                time.sleep(0.2)
            time.sleep(2)   # Ray notices the node is gone
            while not healthy(serve_status(cluster)):
                time.sleep(1)
            marks["healthy_at"] = time.monotonic()

        watchers = [threading.Thread(target=w, daemon=True) for w in (watch_readyz, watch_serve_status)]
        for w in watchers:
            w.start()
        marks["load_started"] = time.monotonic()
        answers = load(base, args.clients, args.load_s, args.load_s / 2, kill)
        for w in watchers:
            w.join(timeout=240)
        not_ready = [t for t, code in readiness if code != 200]
        failed = [a for a in answers if a.status != 200]
        report.update(
            requests=len(answers), ok=len(answers) - len(failed), failed=len(failed),
            failed_pct=round(100 * len(failed) / max(1, len(answers)), 2),
            failures=sorted({f"{a.status} {a.content_type} retry-after={a.retry_after}" for a in failed}),
            status_500=sum(a.status == 500 for a in failed),
            recovery_serve_status_healthy_s=round(marks.get("healthy_at", float("nan")) - marks["killed_at"], 1),
            readyz_samples_after_kill=len(readiness), readyz_not_ready_samples=len(not_ready),
            recovery_readyz_s=round(max(not_ready) + 1, 1) if not_ready else 0.0,
        )
        problems = verify_urls(answers)
        report["urls_checked"] = sum(1 for a in answers if a.status == 200 and a.url)
        report["url_problems"] = problems[:10]
        # what each failure was, for the log: path, seconds after the kill, and a cut's error text
        report["failure_details"] = [
            f"{a.path} at {a.at - (marks['killed_at'] - marks['load_started']):+.1f} s: {a.status} {a.body[:160]!r}"
            for a in failed][:10]
    finally:
        cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return check(report)


def check(report: dict) -> int:
    misses = []
    if min(report.get("replica_nodes", {}).get("Synthesizer-piper", 0), 2) < 2:
        misses.append("Synthesizer replicas were not on both nodes")
    if report["failed_pct"] > 1.0:
        misses.append(f"{report['failed_pct']} % of requests failed (target <= 1 %)")
    bad = [f for f in report["failures"] if not (f.startswith("503 application/json") and "retry-after=None" not in f)]
    if bad:
        misses.append(f"failures other than JSON 503 + Retry-After: {bad}")
    if not report["recovery_readyz_s"] <= 60:
        misses.append(f"readiness took {report['recovery_readyz_s']} s to recover (target <= 60 s)")
    if report["url_problems"]:
        misses.append(f"URLs that do not work: {report['url_problems']}")
    for miss in misses:
        print("MISSED:", miss, file=sys.stderr)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
