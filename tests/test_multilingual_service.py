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


def test_kokoro_stream_sends_its_first_clause_before_the_rest_is_rendered(client):
    """Kokoro decodes a piece whole: the stream cuts its first sentence after a clause, so audio
    leaves before the rest of the sentence is rendered (its words come after the first audio)."""
    import base64
    import json

    text = "When the storm finally passed, the villagers walked down to the river."
    body = {"text": text, "voice": "kokoro/jf_alpha", "timestamps": True, "format": "pcm", "cache": False, "seed": 3}
    with client.stream("POST", "/v1/tts/stream", json=body) as resp:
        assert resp.status_code == 200
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    words = [e["word"] for e in events if e["type"] == "speech.word"]
    assert words == "When the storm finally passed the villagers walked down to the river".split()
    first_audio = kinds.index("speech.audio.delta")
    villagers = next(i for i, e in enumerate(events) if e.get("word") == "villagers")
    assert first_audio < villagers
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    streamed_s = len(pcm) / 2 / 24000
    sync = client.post("/v1/tts", json={**body, "timestamps": False}).json()
    # the cut's edge silence is trimmed to a clause's pause: about as long as the whole sentence
    assert abs(streamed_s - sync["duration_s"]) < 0.6, (streamed_s, sync["duration_s"])
    assert events[-1]["audio_url"] != sync["audio_url"]   # other audio, stored under its own key


def test_japanese_with_a_chinese_only_kanji_is_spoken_not_a_500(client):
    # pyopenjtalk-plus wanted a Sudachi dictionary we do not install for 你: it was a 500.
    resp = client.post("/v1/tts", json={"text": "こんにちは你好", "response": "binary", "format": "wav", "cache": False})
    assert resp.status_code == 200, resp.text
    audio, rate = decode(resp.content)
    assert len(audio) / rate > 0.5
