"""``make serve``: start Ray locally and run the app on 127.0.0.1:8000 with embedded defaults.

Everything we can point at an address listens on 127.0.0.1: the node IP, Serve's HTTP proxy,
the dashboard (off). Ray's own gRPC servers (GCS, raylet, workers) listen on every interface in
this Ray version whatever the node IP, so the Makefile runs Ray with ``RAY_AUTH_MODE=token``:
those ports then refuse anyone without the cluster's token. After start this checks every socket
the Ray processes listen on, prints the ones beyond loopback, and refuses to keep running with
such sockets and Ray's token auth off (unless ``allow_insecure: true``).

Auth is off here unless configured (``VOXSERVE_AUTH=required``), so the README's curl lines
work; Settings refuse ``auth: none`` on any host but loopback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import ray
from ray import serve

from tts_engine.settings import Settings

from . import netcheck
from .app import build_app

APP_NAME = "voxserve"
LOOPBACK = "127.0.0.1"


def local_overrides(settings: Settings) -> dict:
    """``make serve`` defaults: auth off unless the environment or config file set it."""
    return {} if "auth" in settings.model_fields_set else {"auth": "none"}


def ray_exposure_problem(exposed: list[netcheck.Listener], ray_auth_mode: str, allow_insecure: bool) -> str | None:
    """Why this Ray must not keep running, or None."""
    if not exposed or ray_auth_mode == "token" or allow_insecure:
        return None
    where = ", ".join(f"{item.process} {item.address}:{item.port}" for item in exposed[:8])
    return (f"Ray listens beyond loopback ({where}) with RAY_AUTH_MODE={ray_auth_mode or 'unset'}: anyone who "
            "reaches this host could run code on it. Run with RAY_AUTH_MODE=token (make serve does).")


# Ray's own log files rotate (its defaults keep up to 512 MB x 5 per file); the processes that
# ray.init starts read these from the environment.
LOG_ROTATION = {"RAY_ROTATION_MAX_BYTES": str(16 * 2**20), "RAY_ROTATION_BACKUP_COUNT": "4"}


def main() -> None:
    overrides = local_overrides(Settings())
    settings = Settings(**overrides)  # refuses auth: none off loopback
    for name, value in LOG_ROTATION.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", "serve_app.edge:proxy_middlewares")
    ray.init(_node_ip_address=LOOPBACK, include_dashboard=False, dashboard_host=LOOPBACK, configure_logging=False)
    serve.start(http_options={"host": settings.host, "port": settings.port, "keep_alive_timeout_s": 5,
                              "request_timeout_s": 300})
    serve.run(build_app(overrides), name=APP_NAME, route_prefix="/", blocking=False)
    exposed = netcheck.exposed(os.getpid())
    problem = ray_exposure_problem(exposed, os.environ.get("RAY_AUTH_MODE", ""), settings.allow_insecure)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        serve.shutdown()
        ray.shutdown()
        sys.exit(2)
    print_banner(settings, exposed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()


def print_banner(settings: Settings, exposed: list[netcheck.Listener]) -> None:
    base = f"http://{settings.host}:{settings.port}"
    if settings.auth == "none":
        auth = (f"auth is OFF (auth: none): anyone who can reach {settings.host} may use it, which is why it is "
                "bound to loopback only. Set VOXSERVE_AUTH=required to need tokens / API keys.")
    else:
        auth = "auth is ON: create a client with `voxserve clients create --name me` and use its token or API key."
    ray_ports = ("every Ray port listens on loopback only" if not exposed else
                 f"{len(exposed)} Ray gRPC/agent port(s) listen beyond loopback (Ray cannot bind them to "
                 f"127.0.0.1); RAY_AUTH_MODE={os.environ.get('RAY_AUTH_MODE')} guards them")
    print(f"""
VoxServe is up on {base}  (OpenAPI: {base}/docs; store: {settings.store})
{auth}
Network: HTTP on {settings.host} only; {ray_ports}.

  curl -s {base}/v1/tts -H 'Content-Type: application/json' \\
       -d '{{"text": "Hello from VoxServe.", "format": "mp3"}}'
  curl -s {base}/v1/tts -H 'Content-Type: application/json' \\
       -d '{{"text": "Hello from VoxServe.", "response": "binary"}}' -o hello.wav

Ctrl-C stops it.""", flush=True)


if __name__ == "__main__":
    main()
