"""Voice matching (issue 13) end to end over HTTP, app "s3" of the session service (Kokoro served,
VoiceMatcher deployment with the tiny budgets of conftest): registration as a job with progress
and held-out numbers, cancellation by DELETE, on-the-fly references fitted once per clip."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.audio_fixtures import SR, speaker_clip
from tts_engine.audio.encoders import decode, encode
from tts_engine.speaker.matching import METHODS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service["base"], timeout=600) as c:
        yield c


@pytest.fixture(scope="module")
def deep_wav() -> bytes:
    return encode(np.concatenate([speaker_clip("deep", 2), speaker_clip("deep", 3)]), SR, "wav")


def poll(http, voice_id: str, timeout: float = 540) -> tuple[dict, list[dict]]:
    """The final record and every processing snapshot seen on the way."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        body = http.get(f"/v1/voices/{voice_id}").json()
        if body["status"] != "processing":
            return body, seen
        seen.append(body)
        time.sleep(0.5)
    raise AssertionError(f"{voice_id} still processing after {timeout} s: {seen[-1:]}")


@pytest.fixture(scope="module")
def matched(http, deep_wav):
    resp = http.post("/v1/voices", data={"name": "deep", "language": "en"}, files={"audio": ("d.wav", deep_wav)})
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "processing"
    final, seen = poll(http, resp.json()["voice_id"])
    assert final["status"] == "ready", final
    return final, seen


def test_registration_is_a_job_with_progress_and_honest_numbers(matched):
    final, seen = matched
    for snapshot in seen:
        assert 0.0 <= snapshot["progress"] < 1.0 and snapshot["step"] >= 0
    assert final["progress"] == 1.0
    report = final["matching"]
    assert report["method"] in METHODS and final["method"] == METHODS[report["method"]]
    assert "not identity cloning" in final["method"]
    ceiling, chosen, start = (report[k] for k in ("same_speaker_ceiling", "heldout_similarity",
                                                  "start_voice_similarity"))
    for scores in (ceiling, chosen, start):
        assert set(scores) == {"ge2e", "dvector"} and all(-1 <= v <= 1 for v in scores.values())
    assert final["similarity"] == chosen["ge2e"] and final["similarity_unadapted"] == start["ge2e"]
    assert {"start", "kokoro-style", "kokoro-style+dsp", "dsp", "piper"} <= set(report["candidates"])
    assert report["fit"]["steps"] <= 1 and report["fit"]["stopped"] in ("steps", "seconds", "guard")
    assert report["split_s"][0] > 1.0 and report["split_s"][1] > 1.0


def test_matched_voice_speaks_in_every_route_and_language(http, matched):
    final, _ = matched
    vid = final["id"]
    english = http.post("/v1/tts", json={"text": "A matched voice.", "voice": vid, "response": "binary",
                                         "format": "wav"})
    assert english.status_code == 200, english.text
    assert decode(english.content)[0].size > 0
    if final["matching"]["method"].startswith("kokoro"):
        assert final["base_voice"].startswith("kokoro/") and final["languages"] == ["en", "zh", "ja"]
        mandarin = http.post("/v1/tts", json={"text": "你好，很高兴认识你。", "voice": vid, "response": "url"})
        assert mandarin.status_code == 200, mandarin.text
        assert mandarin.json()["voice"] == final["base_voice"]
    stream = http.post("/v1/tts/stream", json={"text": "Streaming the matched voice.", "voice": vid})
    assert stream.status_code == 200 and len(stream.content) > 44 + 2400


def test_delete_cancels_a_running_job(http, deep_wav):
    resp = http.post("/v1/voices", data={"name": "cancel me"}, files={"audio": ("d.wav", deep_wav)})
    vid = resp.json()["voice_id"]
    assert http.delete(f"/v1/voices/{vid}").status_code == 204
    # The job stops at its next step and never brings the record back.
    for _ in range(10):
        assert http.get(f"/v1/voices/{vid}").status_code == 404
        time.sleep(1)
    assert vid not in [v["id"] for v in http.get("/v1/voices").json()["voices"]]


def test_register_rejects_a_language_no_voice_speaks(http, deep_wav):
    resp = http.post("/v1/voices", data={"name": "x", "language": "ko"}, files={"audio": ("d.wav", deep_wav)})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "language"


def test_on_the_fly_reference_is_fitted_once_per_clip(http, deep_wav):
    # A clip no earlier test sent (its own content hash), so the first request must fit it.
    clip = encode(np.concatenate([speaker_clip("deep", 4), speaker_clip("deep", 2)]), SR, "wav")
    assert clip != deep_wav
    fields = {"text": "On the fly voice matching.", "voice": "kokoro/jf_alpha", "response": "url", "cache": "false"}
    before = http.get("/v1/stats").json()["speaker_cache"]
    t0 = time.perf_counter()
    first = http.post("/v1/tts", data=fields, files={"reference_audio": ("r.wav", clip)})
    first_s = time.perf_counter() - t0
    assert first.status_code == 200, first.text
    t0 = time.perf_counter()
    second = http.post("/v1/tts", data={**fields, "text": "The same clip again."},
                       files={"reference_audio": ("r.wav", clip)})
    second_s = time.perf_counter() - t0
    assert second.status_code == 200, second.text
    after = http.get("/v1/stats").json()["speaker_cache"]
    assert after["miss"] >= before["miss"] + 1 and after["hit"] >= before["hit"] + 1, (before, after)
    assert second_s < first_s  # no second fit
    assert first.json()["voice"].startswith("kokoro/")


def test_on_the_fly_reference_with_a_piper_voice_stays_dsp(http, deep_wav):
    resp = http.post("/v1/tts", data={"text": "Piper with a reference.", "voice": "en_US-joe-medium",
                                      "response": "url"}, files={"reference_audio": ("r.wav", deep_wav)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["voice"] == "en_US-joe-medium"


def test_too_short_reference_for_a_kokoro_voice_is_422(http):
    short = encode(speaker_clip("deep", 0)[: SR * 2], SR, "wav")
    resp = http.post("/v1/tts", data={"text": "Hi.", "voice": "kokoro/jf_alpha"},
                     files={"reference_audio": ("r.wav", short)})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "reference_audio"
