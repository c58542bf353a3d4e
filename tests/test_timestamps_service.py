"""Word timestamps and captions over real HTTP: /v1/tts (JSON words, SRT/VTT beside the audio)
and /v1/tts/stream as server-sent events."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest

from tts_engine.audio.encoders import decode

pytestmark = pytest.mark.e2e

TWO_SENTENCES = "Timestamps come with the audio. Captions are stored beside it."


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service["base"], timeout=120) as c:
        yield c


def assert_monotonic(words: list[dict], duration_s: float) -> None:
    assert words
    for w in words:
        assert 0 <= w["start_s"] < w["end_s"] <= duration_s + 1e-3, w
    for a, b in zip(words, words[1:]):
        assert a["end_s"] <= b["start_s"] + 1e-3


def test_tts_answers_words_and_stores_captions(client):
    body = {"text": TWO_SENTENCES, "timestamps": True, "captions": "vtt", "seed": 4, "format": "mp3"}
    first = client.post("/v1/tts", json=body)
    assert first.status_code == 200, first.text
    data = first.json()
    assert [w["word"] for w in data["words"]] == ("Timestamps come with the audio "
                                                  "Captions are stored beside it").split()
    assert_monotonic(data["words"], data["duration_s"])
    assert data["words"][-1]["end_s"] > data["duration_s"] - 0.5
    vtt = httpx.get(data["captions_url"])
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT\n\n1\n00:00:00.")
    assert "Timestamps come with the audio" in vtt.text
    assert data["key"].rsplit(".", 1)[0] in data["captions_url"]  # next to the audio
    again = client.post("/v1/tts", json=body).json()
    assert again["cached"] is True and again["words"] == data["words"]
    srt = client.post("/v1/tts", json={**body, "captions": "srt"}).json()
    assert srt["cached"] is True
    assert httpx.get(srt["captions_url"]).text.startswith("1\n00:00:00,")


def test_cached_audio_without_words_is_rendered_again_with_them(client):
    body = {"text": "First asked without timestamps.", "seed": 9}
    plain = client.post("/v1/tts", json=body).json()
    assert "words" not in plain
    timed = client.post("/v1/tts", json={**body, "timestamps": True}).json()
    assert timed["key"] == plain["key"] and timed["cached"] is False
    assert [w["word"] for w in timed["words"]] == ["First", "asked", "without", "timestamps"]
    assert client.post("/v1/tts", json={**body, "timestamps": True}).json()["cached"] is True


def test_bad_captions_value_names_the_field(client):
    resp = client.post("/v1/tts", json={"text": "Hi.", "captions": "ass"})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "captions"


def read_sse(resp) -> list[dict]:
    return [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]


def test_stream_with_timestamps_is_sse_with_word_events(client):
    body = {"text": TWO_SENTENCES, "timestamps": True, "format": "pcm", "cache": False}
    with client.stream("POST", "/v1/tts/stream", json=body) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        rate = int(resp.headers["x-sample-rate"])
        events = read_sse(resp)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "speech.word" and kinds[-1] == "speech.audio.done"
    words = [e for e in events if e["type"] == "speech.word"]
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    duration = len(pcm) / 2 / rate
    assert [w["word"] for w in words] == "Timestamps come with the audio Captions are stored beside it".split()
    assert_monotonic(words, duration)
    # Each sentence's words come before its audio: the second sentence's first word arrives after
    # some audio and before the last delta.
    second = kinds.index("speech.word", kinds.index("speech.audio.delta"))
    assert words[5]["word"] == "Captions" and events[second]["word"] == "Captions"
    assert "speech.audio.delta" in kinds[second:]
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    assert np.abs(audio).max() > 0.05
    assert events[-1]["audio_url"]


def test_cached_stream_replays_words_then_audio(client):
    body = {"text": "Replayed with its words.", "timestamps": True, "seed": 2}
    first = read_sse(client.post("/v1/tts/stream", json=body))
    second = read_sse(client.post("/v1/tts/stream", json=body))
    strip = lambda events: [e for e in events if e["type"] == "speech.word"]  # noqa: E731
    assert strip(first) == strip(second) and len(strip(first)) == 4
    wav = b"".join(base64.b64decode(e["audio"]) for e in second if e["type"] == "speech.audio.delta")
    audio, rate = decode(wav)
    assert abs(len(audio) / rate - strip(second)[-1]["end_s"]) < 1.0
