"""Voice registration and on-the-fly references, end to end over HTTP (app "local" of the session service)."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
import numpy as np
import pytest

from tests.audio_fixtures import SR, speaker_clip
from tts_engine.audio.encoders import decode, encode

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service["base"] + "/local", timeout=180) as c:
        yield c


@pytest.fixture(scope="module")
def child_wav() -> bytes:
    clip = np.concatenate([speaker_clip("child", 2), speaker_clip("child", 3)])
    return encode(clip, SR, "wav")


def wait_ready(http, voice_id: str, timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = http.get(f"/v1/voices/{voice_id}").json()
        if body["status"] != "processing":
            return body
        time.sleep(1)
    raise AssertionError(f"{voice_id} still processing after {timeout} s")


def upload(http, audio: bytes, name="child", filename="ref.wav", **fields):
    return http.post("/v1/voices", data={"name": name, **fields}, files={"audio": (filename, audio)})


@pytest.fixture(scope="module")
def registered(http, child_wav):
    resp = upload(http, child_wav, transcript="two sentences")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "processing" and body["voice_id"].startswith("vx_")
    ready = wait_ready(http, body["voice_id"])
    assert ready["status"] == "ready", ready
    return ready


def test_registered_voice_reports_method_and_similarity(http, registered):
    assert "not identity cloning" in registered["method"]
    assert 0 < registered["similarity"] <= 1 and registered["similarity_unadapted"] is not None
    ids = [v["id"] for v in http.get("/v1/voices").json()["voices"]]
    assert registered["voice_id"] in ids and "en_US-joe-medium" in ids


def test_registered_voice_works_in_every_route(http, registered):
    vid = registered["voice_id"]
    plain = http.post("/v1/tts", json={"text": "Adapted voice check.", "response": "binary", "seed": 1}).content
    adapted = http.post("/v1/tts", json={"text": "Adapted voice check.", "voice": vid, "response": "binary",
                                         "seed": 1})
    assert adapted.status_code == 200, adapted.text
    a, _ = decode(adapted.content)
    p, _ = decode(plain)
    assert len(a) == len(p) and not np.allclose(a, p, atol=1e-3)  # same duration, different voice
    stream = http.post("/v1/tts/stream", json={"text": "Streaming adapted.", "voice": vid})
    assert stream.status_code == 200 and len(stream.content) > 44 + 22050
    speech = http.post("/v1/audio/speech", json={"input": "OpenAI adapted.", "voice": vid, "response_format": "wav"})
    assert speech.status_code == 200 and decode(speech.content)[0].size > 0


def test_on_the_fly_reference_is_analysed_once(http, child_wav):
    before = http.get("/v1/stats").json()["speaker_cache"]
    fields = {"text": "On the fly reference.", "response": "binary", "format": "wav"}
    first = http.post("/v1/tts", data=fields, files={"reference_audio": ("r.wav", child_wav)})
    assert first.status_code == 200, first.text
    second = http.post("/v1/tts", data={**fields, "text": "Another sentence."},
                       files={"reference_audio": ("r.wav", child_wav)})
    assert second.status_code == 200
    after = http.get("/v1/stats").json()["speaker_cache"]
    assert after["hit"] >= before["hit"] + 1
    stream = http.post("/v1/tts/stream", data={"text": "Streamed with a reference."},
                       files={"reference_audio": ("r.wav", child_wav)})
    assert stream.status_code == 200 and len(stream.content) > 44


def test_delete_voice_never_breaks_a_running_request(service, http, child_wav):
    vid = upload(http, child_wav, name="temp").json()["voice_id"]
    assert wait_ready(http, vid)["status"] == "ready"

    async def race():
        async with httpx.AsyncClient(base_url=service["base"] + "/local", timeout=180) as c:
            running = asyncio.create_task(c.post("/v1/tts", json={
                "text": "A long enough request to still be running. It has two sentences.", "voice": vid,
                "cache": False}))
            await asyncio.sleep(0.3)
            deleted = await c.delete(f"/v1/voices/{vid}")
            return await running, deleted

    running, deleted = asyncio.run(race())
    assert deleted.status_code == 204
    assert running.status_code in (200, 404)  # 404 only if the delete won before the request started
    assert http.get(f"/v1/voices/{vid}").status_code == 404
    assert http.post("/v1/tts", json={"text": "gone", "voice": vid}).status_code == 404


def test_voice_survives_an_application_restart(service, registered):
    from ray import serve

    from serve_app.app import build_app

    serve.delete("local")
    serve.run(build_app(service["local_args"]), name="local", route_prefix="/local")
    with httpx.Client(base_url=service["base"] + "/local", timeout=180) as c:
        body = c.get(f"/v1/voices/{registered['voice_id']}").json()
        assert body["status"] == "ready" and body["similarity"] == registered["similarity"]
        assert c.post("/v1/tts", json={"text": "Back again.", "voice": registered["voice_id"]}).status_code == 200


# ---------------------------------------------------------------------- validation


def sine(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


@pytest.mark.parametrize("audio,needle", [
    (lambda: encode(sine(1.0), SR, "wav"), "between 3 and 60"),
    (lambda: encode(sine(61.0), SR, "flac"), "between 3 and 60"),
    (lambda: encode(np.zeros(SR * 4, dtype=np.float32), SR, "wav"), "too quiet"),
    (lambda: encode(np.clip(sine(4.0, 3.0), -1, 1), SR, "wav"), "clipped"),
])
def test_bad_reference_audio_is_422(http, audio, needle):
    resp = upload(http, audio())
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == "audio" and needle in resp.json()["error"]["message"]


def test_reference_formats_and_stereo_accepted(http):
    clip = np.concatenate([speaker_clip("deep", 1), speaker_clip("deep", 2)])
    stereo = np.stack([clip, clip], axis=1)
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, stereo, 44100, format="WAV")  # any rate, two channels
    for data, name in ((buf.getvalue(), "s.wav"), (encode(clip, SR, "mp3"), "r.mp3"),
                       (encode(clip, SR, "opus"), "r.ogg")):
        resp = upload(http, data, filename=name)
        assert resp.status_code == 202, (name, resp.text)
        http.delete(f"/v1/voices/{resp.json()['voice_id']}")


def test_upload_errors(http, child_wav):
    assert upload(http, b"this is not audio at all" * 100).status_code in (415, 422)
    assert http.post("/v1/voices", data={"name": "x"}).json()["error"]["field"] in ("audio", "content-type")
    missing_name = http.post("/v1/voices", files={"audio": ("r.wav", child_wav)})
    assert missing_name.status_code == 422 and missing_name.json()["error"]["field"] == "name"
    too_big = http.post("/v1/voices", data={"name": "big"}, files={"audio": ("big.wav", b"\0" * (11 * 1024 * 1024))})
    assert too_big.status_code == 413
    assert http.get("/v1/voices/vx_doesnotexist").status_code == 404
    assert http.delete("/v1/voices/vx_doesnotexist").status_code == 404
    assert http.post("/v1/tts", json={"text": "hi", "voice": "vx_doesnotexist"}).status_code == 404


def test_ref_audio_path_never_reaches_server_files(http):
    resp = http.post("/v1/tts", data={"text": "hi", "ref_audio_path": "../../etc/passwd"})
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "ref_audio_path"
