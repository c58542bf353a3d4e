"""End to end over real HTTP against a real local Ray Serve app (Ray started once per session)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import numpy as np
import pytest

from tts_engine.audio.encoders import decode

pytestmark = pytest.mark.e2e

LONG_TEXT = (
    "Streaming lets a listener hear the start of an answer early. "
    "The first sentence is vocoded in small chunks so that bytes leave at once. "
    "Meanwhile the later sentences are synthesized on the replicas that are free. "
    "They are then sent in order with a short pause between them. "
    "This last sentence makes the whole text long enough to measure."
)


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service["base"], timeout=120) as c:
        yield c


def tts(client, path="/v1/tts", **body):
    return client.post(path, json=body)


def assert_error(resp, status, field):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["field"] == field and err["code"] and err["message"]
    return err


def stats(client, prefix=""):
    return client.get(f"{prefix}/v1/stats").json()


# ---------------------------------------------------------------------- health, voices


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_voices(client):
    voices = client.get("/v1/voices").json()["voices"]
    joe = next(v for v in voices if v["id"] == "en_US-joe-medium")
    assert joe["sample_rate"] == 22050 and "en" in joe["languages"]
    assert client.get("/v1/voices/en_US-joe-medium").json()["id"] == "en_US-joe-medium"
    assert_error(client.get("/v1/voices/nobody"), 404, "voice")


def test_openapi_docs(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/tts" in spec["paths"] and "/v1/audio/speech" in spec["paths"]
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------------- sync


def test_sync_url_is_a_presigned_s3_url_with_the_audio(client):
    resp = tts(client, text="Hello from the storage test.", format="mp3", cache=False)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["format"] == "mp3" and body["cached"] is False and body["voice"] == "en_US-joe-medium"
    assert set(body["timings"]) == {"frontend_ms", "synthesis_ms", "storage_ms"}
    assert body["key"].startswith("tts/") and "X-Amz-Signature" in body["audio_url"]
    fetched = httpx.get(body["audio_url"])
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "audio/mpeg"
    audio, rate = decode(fetched.content)
    assert abs(len(audio) / rate - body["duration_s"]) < 0.1
    assert body["request_id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize("fmt,ctype", [("wav", "audio/wav"), ("flac", "audio/flac"), ("opus", "audio/ogg")])
def test_sync_binary_formats(client, fmt, ctype):
    resp = tts(client, text="Binary answer.", format=fmt, response="binary")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(ctype)
    audio, rate = decode(resp.content)
    assert len(audio) / rate > 0.4 and np.abs(audio).max() > 0.05


def test_sync_base64_and_sample_rate(client):
    resp = tts(client, text="Base sixty four.", format="wav", sample_rate=16000, response="base64")
    body = resp.json()
    assert body["sample_rate"] == 16000
    audio, rate = decode(base64.b64decode(body["audio_base64"]))
    assert rate == 16000 and abs(len(audio) / rate - body["duration_s"]) < 0.05


def test_request_id_is_echoed(client):
    resp = client.post("/v1/tts", json={"text": "Trace me."}, headers={"X-Request-ID": "trace-123"})
    assert resp.headers["x-request-id"] == "trace-123"
    assert resp.json()["request_id"] == "trace-123"


def test_seed_gives_the_same_audio_to_within_rounding(client):
    """A seed fixes the sampling noise. The float arithmetic is not bit-for-bit the same when a render
    gets a different number of torch threads (the pool hands out 1 or all cores by load): in
    float32 a sample may round to the neighbouring 16-bit value, with the bf16 vocoder it moves up to
    ~32 steps (measured: 63 dB SNR between 1 and 2 threads). Another seed is another take (~-3 dB)."""
    def samples(seed):
        wav = tts(client, text="Seeded speech.", seed=seed, response="binary", cache=False).content
        return decode(wav)[0].astype(np.float64)

    def snr_db(a, b):
        n = min(len(a), len(b))
        return 20 * np.log10(np.sqrt(np.mean(a[:n] ** 2)) / max(np.sqrt(np.mean((a[:n] - b[:n]) ** 2)), 1e-12))

    a, b, other = samples(5), samples(5), samples(6)
    assert len(a) == len(b) and snr_db(a, b) > 40
    assert snr_db(a, other) < 10


# ---------------------------------------------------------------------- phrase cache


def test_phrase_cache_hit_does_no_synthesis(client):
    text = f"Cache me if you can {time.time_ns()}."
    first = tts(client, text=text).json()
    before = stats(client)["ingress"]["syntheses"]
    second = tts(client, text=text).json()
    assert first["cached"] is False and second["cached"] is True
    assert second["key"] == first["key"]
    assert stats(client)["ingress"]["syntheses"] == before
    forced = tts(client, text=text, cache=False).json()
    assert forced["cached"] is False
    assert stats(client)["ingress"]["syntheses"] == before + 1


def test_concurrent_identical_requests_synthesize_once(service):
    text = f"Everyone asks for this at once {time.time_ns()}."

    async def burst():
        async with httpx.AsyncClient(base_url=service["base"], timeout=120) as c:
            return await asyncio.gather(*[c.post("/v1/tts", json={"text": text}) for _ in range(5)])

    with httpx.Client(base_url=service["base"]) as c:
        before = stats(c)["ingress"]["syntheses"]
        answers = asyncio.run(burst())
        assert {a.status_code for a in answers} == {200}
        assert len({a.json()["key"] for a in answers}) == 1
        assert sum(not a.json()["cached"] for a in answers) == 1
        assert stats(c)["ingress"]["syntheses"] == before + 1


# ---------------------------------------------------------------------- batching


def test_concurrent_requests_render_side_by_side(service):
    """On CPU the Synthesizer renders concurrent sentences in parallel, one core each (padded
    batches lose there; tts_engine/parallel.py)."""
    from tts_engine.parallel import available_cores

    if available_cores() < 2:
        pytest.skip("one core: nothing to render side by side")
    texts = [f"Batch member number {i} says hello." for i in range(8)]

    async def burst():
        async with httpx.AsyncClient(base_url=service["base"], timeout=120) as c:
            return await asyncio.gather(*[c.post("/v1/tts", json={"text": t, "cache": False}) for t in texts])

    assert {r.status_code for r in asyncio.run(burst())} == {200}
    with httpx.Client(base_url=service["base"]) as c:
        parallel = stats(c)["synthesizers"]["piper"]["parallel"]
    assert parallel["max_running"] > 1, parallel
    assert 1 in {int(k) for k in parallel["threads_per_job"]}, parallel  # a core each when several run


# ---------------------------------------------------------------------- streaming


def test_stream_is_incremental_and_stored(client):
    received = bytearray()
    stored_when_audio_began = None
    with client.stream("POST", "/v1/tts/stream", json={"text": LONG_TEXT, "cache": False}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "audio/wav"
        url = resp.headers["x-audio-url"]
        for chunk in resp.iter_bytes():
            received += chunk
            if stored_when_audio_began is None and len(received) > 44:
                stored_when_audio_began = httpx.get(url).status_code
    assert received[:4] == b"RIFF" and received[4:8] == b"\xff\xff\xff\xff"
    # Audio arrived before the whole text was synthesized: a WAV stream's stored copy is written
    # once the last sentence is done, and it did not exist yet (no timing involved).
    assert stored_when_audio_began == 404
    pcm = np.frombuffer(bytes(received[44:]), dtype="<i2")
    assert len(pcm) / 22050 > 8
    stored = httpx.get(url)
    assert stored.status_code == 200
    audio, rate = decode(stored.content)
    assert abs(len(audio) - len(pcm)) <= 1


@pytest.mark.parametrize("fmt", ["mp3", "opus", "pcm"])
def test_stream_other_formats(client, fmt):
    with client.stream("POST", "/v1/tts/stream", json={"text": "Two sentences here. And another.",
                                                      "format": fmt, "cache": False}) as resp:
        assert resp.status_code == 200
        pieces = [c for c in resp.iter_bytes() if c]
    data = b"".join(pieces)
    if fmt == "pcm":
        assert len(data) / 2 / 22050 > 1.0
    else:
        audio, rate = decode(data)
        assert len(audio) / rate > 1.0


def test_stream_cached_replay(client):
    text = f"Replay from the cache {time.time_ns()}."
    first = client.post("/v1/tts/stream", json={"text": text})
    second = client.post("/v1/tts/stream", json={"text": text})
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert decode(second.content)[0].shape[0] == len(first.content[44:]) // 2


# ---------------------------------------------------------------------- OpenAI compatibility


def test_openai_client(service):
    from openai import OpenAI

    client = OpenAI(base_url=service["base"] + "/v1", api_key="not-needed")
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the OpenAI client.",
                                        response_format="wav")
    audio, rate = decode(speech.content)
    assert rate == 22050 and len(audio) / rate > 1.0
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input="Streaming through the official client.", response_format="mp3"
    ) as response:
        data = b"".join(response.iter_bytes(chunk_size=1024))
    audio, rate = decode(data)
    assert len(audio) / rate > 1.0


def test_openai_pcm_is_24khz_and_sse(client):
    pcm = client.post("/v1/audio/speech", json={"input": "Raw samples.", "voice": "echo", "response_format": "pcm"})
    assert pcm.status_code == 200 and len(pcm.content) % 2 == 0
    sse = client.post("/v1/audio/speech", json={"input": "Raw samples.", "voice": "echo", "response_format": "pcm",
                                                "stream_format": "sse"})
    events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done"
    joined = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert abs(len(joined) - len(pcm.content)) < 4800  # same text, 24 kHz either way (seeds differ)


def test_openai_aac_one_shot_and_streamed(service):
    """OpenAI's ``aac`` is ADTS AAC; the official client's streaming reader gets it as it is encoded."""
    from openai import OpenAI

    client = OpenAI(base_url=service["base"] + "/v1", api_key="not-needed")
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Advanced audio coding.",
                                        response_format="aac")
    assert speech.response.headers["content-type"] == "audio/aac"
    audio, rate = decode(speech.content)
    assert rate == 22050 and len(audio) / rate > 1.0 and np.abs(audio).max() > 0.05
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input="Streamed A A C. It has two sentences.", response_format="aac"
    ) as response:
        chunks = list(response.iter_bytes())
    data = b"".join(chunks)
    assert data[:2] == b"\xff\xf1"  # ADTS sync word, MPEG-4, no CRC
    audio, rate = decode(data)
    assert len(audio) / rate > 1.5


def test_openai_errors(client):
    assert_error(client.post("/v1/audio/speech", json={"input": "x", "voice": "alloy", "response_format": "aiff"}),
                 422, "response_format")
    assert_error(client.post("/v1/audio/speech", json={"voice": "alloy"}), 422, "input")
    assert_error(client.post("/v1/audio/speech", json={"input": "x", "speed": 4.0}), 422, "speed")


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "body,status,field",
    [
        ({"text": ""}, 422, "text"),
        ({"text": "   \n\t "}, 422, "text"),
        ({"text": "x" * 5001}, 413, "text"),
        ({"text": "bell\x07here"}, 422, "text"),
        ({"text": "hello", "language": "klingon"}, 422, "language"),
        ({"text": "안녕하세요"}, 422, "language"),
        ({"text": "你好世界", "voice": "en_US-joe-medium"}, 422, "language"),
        ({"text": "hello", "voice": "nobody"}, 404, "voice"),
        ({"text": "hello", "speed": 0.1}, 422, "speed"),
        ({"text": "hello", "format": "aiff"}, 422, "format"),
        ({"text": "hello", "sample_rate": 96000}, 422, "sample_rate"),
        ({"text": "hello", "speed": "fast"}, 422, "speed"),
        ({"text": "hello", "response": "fax"}, 422, "response"),
        ({}, 422, "text"),
    ],
)
def test_bad_input_is_a_clear_4xx(client, body, status, field):
    err = assert_error(client.post("/v1/tts", json=body), status, field)
    if status == 413:
        assert "5000" in err["message"]


def test_unsupported_language_names_capable_voices(client):
    err = assert_error(client.post("/v1/tts", json={"text": "你好世界", "voice": "en_US-joe-medium"}),
                       422, "language")
    assert "zh" in err["message"] and "kokoro/jf_gongitsune" in err["message"]
    err = assert_error(client.post("/v1/tts", json={"text": "안녕하세요"}), 422, "language")
    assert "en, ja, zh" in err["message"]


def test_malformed_json_and_wrong_content_type(client):
    bad = client.post("/v1/tts", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    wrong = client.post("/v1/tts", content=b"text=hi", headers={"content-type": "text/plain"})
    assert_error(wrong, 415, "content-type")
    assert_error(client.post("/v1/tts/stream", json={"text": ""}), 422, "text")


# ---------------------------------------------------------------------- storage outage


def test_storage_outage_gives_503_then_recovers(service, client):
    from tests.s3util import TcpProxy

    proxy = service["proxy"]
    proxy.stop()
    try:
        down = tts(client, text=f"During the outage {time.time_ns()}.")
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] and down.json()["error"]["code"] == "storage_unavailable"
        assert client.get("/readyz").status_code == 503
    finally:
        service["proxy"] = TcpProxy(int(service["moto"].rsplit(":", 1)[1]), port=proxy.port)
    up = tts(client, text=f"After the outage {time.time_ns()}.")
    assert up.status_code == 200, up.text
    assert httpx.get(up.json()["audio_url"]).status_code == 200


# ---------------------------------------------------------------------- local store: signed /media URLs


def test_local_media_urls_are_signed(service):
    with httpx.Client(base_url=service["base"], timeout=120) as c:
        body = c.post("/local/v1/tts", json={"text": "Served from the local store."}).json()
        url = body["audio_url"]
        assert "/local/media/" in url and "sig=" in url
        ok = httpx.get(url)
        assert ok.status_code == 200 and ok.headers["content-type"] == "audio/wav"
        assert decode(ok.content)[0].size > 0
        tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
        assert httpx.get(tampered).status_code == 403
        expired = url.split("?")[0] + "?expires=1&sig=" + url.split("sig=")[1]
        assert httpx.get(expired).status_code == 403
        other_key = url.replace(body["key"], body["key"].replace("tts/", "tts/x"))
        assert httpx.get(other_key).status_code == 403
        assert c.get("/local/media/../../etc/passwd?expires=9999999999&sig=00").status_code in (400, 403, 404)
        traversal = c.get("/local/media/tts/..%2F..%2Fsecret?expires=9999999999&sig=00")
        assert traversal.status_code in (400, 403, 404)


# ---------------------------------------------------------------------- overload


def test_overload_is_503_with_retry_after(service):
    """An ingress with one slot and a one-request queue: concurrent requests beyond that get 503 + Retry-After
    from Serve's proxy instead of waiting into a timeout."""
    from ray import serve

    from deployments.speaker_cache import SpeakerEmbeddingCache
    from deployments.synthesizer import Synthesizer
    from deployments.text_frontend import TextFrontend
    from serve_app.app import Ingress

    args = {"store": f"file://{service['local_dir']}/tight", "model_families": ["piper"], "auth": "none"}
    (service["local_dir"] / "tight").mkdir(exist_ok=True)  # what build_app does at start-up
    tight = Ingress.options(max_ongoing_requests=1, max_queued_requests=1,
                            autoscaling_config={"min_replicas": 1, "max_replicas": 1})
    synthesizers = {"piper": Synthesizer.options(name="Synthesizer-piper").bind(args, "piper")}
    serve.run(tight.bind(TextFrontend.bind(args), synthesizers, SpeakerEmbeddingCache.bind(args),
                         settings=args), name="tight", route_prefix="/tight")
    try:
        async def burst():
            async with httpx.AsyncClient(base_url=service["base"], timeout=120) as c:
                texts = [f"Overload request {i} with a couple of sentences. Second one." for i in range(6)]
                return await asyncio.gather(*[c.post("/tight/v1/tts", json={"text": t, "cache": False})
                                              for t in texts])

        answers = asyncio.run(burst())
        codes = sorted(a.status_code for a in answers)
        assert 200 in codes and 503 in codes, codes
        rejected = next(a for a in answers if a.status_code == 503)
        assert rejected.headers.get("retry-after")
    finally:
        serve.delete("tight")
