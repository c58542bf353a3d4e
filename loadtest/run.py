"""Headless Locust run against a running VoxServe (``make loadtest``).

    python loadtest/run.py                                  # 8 users, 2/s spawn, 60 s, 127.0.0.1:8000
    python loadtest/run.py --users 3 --run-time 20s
    python loadtest/run.py --host http://10.0.0.5:8000 --allow-remote

Checks ``/readyz`` first, then runs ``loadtest/locustfile.py`` and writes
``loadtest/report_stats.csv`` (+ ``_stats_history.csv``, ``_failures.csv``, ``_exceptions.csv``)
and ``loadtest/report.html``. Exit status: Locust's (non-zero if any request failed),
or 2 if the service is not up. Only loopback hosts are targeted unless ``--allow-remote``.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOCUSTFILE = HERE / "locustfile.py"
DEFAULT_HOST = "http://127.0.0.1:8000"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=DEFAULT_HOST, help=f"base URL of VoxServe (default {DEFAULT_HOST})")
    p.add_argument("--users", "-u", type=int, default=8, help="peak concurrent users (default 8)")
    p.add_argument("--spawn-rate", "-r", type=float, default=2, help="users started per second (default 2)")
    p.add_argument("--run-time", "-t", default="60s", help="duration, e.g. 60s, 5m (default 60s)")
    p.add_argument("--csv-prefix", default=str(HERE / "report"),
                   help="Locust --csv prefix (default loadtest/report -> loadtest/report_stats.csv)")
    p.add_argument("--html", default=str(HERE / "report.html"), help="HTML report (default loadtest/report.html)")
    p.add_argument("--ready-timeout", type=float, default=30,
                   help="seconds to wait for /readyz to say ready (default 30)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host (load tests can hurt shared services)")
    p.add_argument("locust_args", nargs=argparse.REMAINDER,
                   help="anything after -- goes to locust unchanged (e.g. -- --loglevel DEBUG)")
    args = p.parse_args(argv)
    if args.locust_args and args.locust_args[0] == "--":
        args.locust_args = args.locust_args[1:]
    if args.users < 1 or args.spawn_rate <= 0:
        p.error("--users must be >= 1 and --spawn-rate > 0")
    return args


def is_loopback(host_url: str) -> bool:
    hostname = urlsplit(host_url).hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_host(host_url: str, allow_remote: bool) -> str | None:
    """An error message if the host is unusable, else None."""
    parts = urlsplit(host_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--host must be an http(s) URL such as {DEFAULT_HOST} (got {host_url!r})"
    if not is_loopback(host_url) and not allow_remote:
        return (f"refusing to load-test non-loopback host {parts.hostname!r}; "
                "pass --allow-remote if you really mean it")
    return None


def wait_ready(host_url: str, timeout_s: float) -> str | None:
    """None once GET /readyz answers 200; else a message explaining what is wrong."""
    url = host_url.rstrip("/") + "/readyz"
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return None
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:  # 503 while deployments start or storage is down
            try:
                problems = json.loads(exc.read() or b"{}").get("problems") or []
            except ValueError:
                problems = []
            last = f"HTTP {exc.code}" + (f": {'; '.join(problems)}" if problems else "")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return (f"VoxServe is not answering at {url} ({reason}).\n"
                    "Start it with `make serve` (or `serve run infra/serve_config.yaml`) and try again.")
        if time.monotonic() >= deadline:
            return f"VoxServe at {host_url} is up but not ready after {timeout_s:.0f}s ({last})."
        time.sleep(1)


def locust_command(args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless",
        "--host", args.host,
        "--users", str(args.users),
        "--spawn-rate", str(args.spawn_rate),
        "--run-time", args.run_time,
        "--csv", args.csv_prefix,
        "--html", args.html,
        "--only-summary",
        "--stop-timeout", "30",  # let in-flight syntheses finish so their latency is counted
        *args.locust_args,
    ]


def print_summary(stats_csv: Path) -> None:
    if not stats_csv.exists():
        return
    with stats_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"\n{'entry':<28}{'reqs':>6}{'fails':>7}{'median':>9}{'p95':>9}{'max':>9}{'req/s':>8}  (ms)")
    for row in rows:
        print(f"{row['Name']:<28}{row['Request Count']:>6}{row['Failure Count']:>7}"
              f"{row['50%']:>9}{row['95%']:>9}{float(row['Max Response Time']):>9.0f}"
              f"{float(row['Requests/s']):>8.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_host(args.host, args.allow_remote)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    problem = wait_ready(args.host, args.ready_timeout)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    Path(args.csv_prefix).parent.mkdir(parents=True, exist_ok=True)
    Path(args.html).parent.mkdir(parents=True, exist_ok=True)
    cmd = locust_command(args)
    print(f"Load test: {args.users} users (+{args.spawn_rate}/s) for {args.run_time} against {args.host}",
          flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rc = subprocess.call(cmd, cwd=ROOT, env=env)

    stats_csv = Path(f"{args.csv_prefix}_stats.csv")
    print_summary(stats_csv)
    print(f"\nStats:  {stats_csv}\nReport: {args.html}")
    if rc != 0:
        print(f"locust exited with {rc} (non-zero when any request failed; see {args.csv_prefix}_failures.csv)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
