"""Mandarin, Japanese and mixed text over real HTTP: every route picks the language's default voice."""

from __future__ import annotations

import httpx
import pytest

from tts_engine.audio.encoders import decode

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service["base"], timeout=180) as c:
        yield c


def test_mandarin_without_voice_just_works(client):
    resp = client.post("/v1/tts", json={"text": "欢迎使用语音合成系统。", "response": "binary", "format": "wav"})
    assert resp.status_code == 200, resp.text
    audio, rate = decode(resp.content)
    assert rate == 24000 and 1.0 < len(audio) / rate < 6.0


def test_mixed_seed_example_gets_the_mandarin_voice(client):
    body = client.post("/v1/tts", json={"text": "Hello，你好世界", "cache": False}).json()
    assert body["voice"] == "kokoro/jf_gongitsune" and body["sample_rate"] == 24000


def test_japanese_stream(client):
    with client.stream("POST", "/v1/tts/stream", json={"text": "今日はいい天気ですね。", "format": "wav"}) as r:
        assert r.status_code == 200
        data = b"".join(r.iter_bytes())
    audio, rate = decode(data)
    assert rate == 24000 and len(audio) / rate > 0.5


def test_openai_route_with_chinese_input_uses_the_mandarin_default(client):
    resp = client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "你好，世界。",
                                                 "response_format": "wav"})
    assert resp.status_code == 200, resp.text
    assert decode(resp.content)[1] == 24000


def test_voices_list_both_families(client):
    voices = {v["id"]: v for v in client.get("/v1/voices").json()["voices"]}
    assert voices["kokoro/jf_alpha"]["languages"] == ["en", "zh", "ja"]
    assert voices["en_US-joe-medium"]["family"] == "piper"
