"""``make serve``: start Ray locally and run the app on 127.0.0.1:8000 with embedded defaults."""

from __future__ import annotations

import os
import signal
import threading

import ray
from ray import serve

from tts_engine.settings import get_settings

from .app import build_app

APP_NAME = "voxserve"


# Ray's own log files rotate (its defaults keep up to 512 MB x 5 per file); the processes that
# ray.init starts read these from the environment.
LOG_ROTATION = {"RAY_ROTATION_MAX_BYTES": str(16 * 2**20), "RAY_ROTATION_BACKUP_COUNT": "4"}


def main() -> None:
    settings = get_settings()
    for name, value in LOG_ROTATION.items():
        os.environ.setdefault(name, value)
    ray.init(include_dashboard=False, configure_logging=False)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_app({}), name=APP_NAME, route_prefix="/", blocking=False)
    base = f"http://{settings.host}:{settings.port}"
    print(f"""
VoxServe is up on {base}  (OpenAPI: {base}/docs; store: {settings.store})

  curl -s {base}/v1/tts -H 'Content-Type: application/json' \\
       -d '{{"text": "Hello from VoxServe.", "format": "mp3"}}'
  curl -s {base}/v1/tts -H 'Content-Type: application/json' \\
       -d '{{"text": "Hello from VoxServe.", "response": "binary"}}' -o hello.wav

Ctrl-C stops it.""", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
