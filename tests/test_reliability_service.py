"""Reliability end to end (issue 9): a killed replica, overload, storage failing around streams and
claims, error shapes, logs. Real HTTP against the session's local Ray Serve (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import glob
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tts_engine.audio.encoders import decode

pytestmark = pytest.mark.e2e

TWO_SENTENCES = "Reliability means answering every request. Even when a replica goes away."


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service["base"], timeout=120) as c:
        yield c


def assert_json_error(resp, status, field=None, code=None):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    err = resp.json()["error"]
    assert err["message"]
    if field is not None:
        assert err["field"] == field, err
    if code is not None:
        assert err["code"] == code, err
    if status == 503:
        assert resp.headers.get("retry-after"), resp.headers
    return err


# ---------------------------------------------------------------------- items 1, 3: a killed replica, overload


def deploy_chaos(service, **synth_options) -> str:
    """An app with two Synthesizer replicas; re-running it with other queue limits updates it in place."""
    from ray import serve

    from deployments.speaker_cache import SpeakerEmbeddingCache
    from deployments.synthesizer import Synthesizer
    from deployments.text_frontend import TextFrontend
    from serve_app.app import Ingress

    store = service["local_dir"] / "chaos"
    store.mkdir(exist_ok=True)
    args = {"store": f"file://{store}", "public_base_url": f"{service['base']}/chaos", "auth": "none",
            "model_families": ["piper"]}
    two = {"min_replicas": 2, "max_replicas": 2, "target_ongoing_requests": 8}
    synth = Synthesizer.options(name="Synthesizer-piper", autoscaling_config=two, **synth_options)
    serve.run(Ingress.bind(TextFrontend.bind(args), {"piper": synth.bind(args, "piper")}, SpeakerEmbeddingCache.bind(args),
                           settings=args),
              name="chaos", route_prefix="/chaos")
    return f"{service['base']}/chaos"


@pytest.fixture(scope="module")
def chaos_app(service):
    from ray import serve

    yield deploy_chaos(service)
    serve.delete("chaos")


def synthesizer_actors(app: str) -> list[str]:
    import ray

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(f"SERVE_REPLICA::{app}#Synthesizer-piper#")]


def test_killed_synthesizer_replica_gives_no_500(chaos_app):
    """Four clients for ~12 s, one Synthesizer replica killed (ray.kill) after 3 s: every answer is a
    200 or a JSON 503 with Retry-After; none is a 500 (issue 9, item 1)."""
    import ray

    answers: list[httpx.Response] = []
    stop = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(base_url=chaos_app, timeout=60) as c:
            n = 0
            while not stop.is_set():
                text = f"Client {i} request {n} {uuid.uuid4().hex[:6]}. " + TWO_SENTENCES
                path = "/v1/tts/stream" if n % 3 == 2 else "/v1/tts"
                answers.append(c.post(path, json={"text": text, "cache": False}))
                n += 1

    # Warm: the ingress' handles learn their replicas (a cold handle queues every call; the short
    # queue of this app would turn that into 503s, which is the overload test's business).
    with httpx.Client(base_url=chaos_app, timeout=120) as c:
        assert c.post("/v1/tts", json={"text": "Warm up. " + TWO_SENTENCES}).status_code == 200
        assert c.post("/v1/tts/stream", json={"text": "Warm up the stream. " + TWO_SENTENCES}).status_code == 200
    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    victims = synthesizer_actors("chaos")
    assert len(victims) == 2, victims
    ray.kill(ray.get_actor(victims[0], namespace="serve"), no_restart=True)
    killed_at = len(answers)
    time.sleep(9)
    stop.set()
    for t in threads:
        t.join(timeout=90)
    codes = [a.status_code for a in answers]
    odd = [(a.status_code, dict(a.headers), a.text[:200]) for a in answers
           if a.status_code != 200 and not a.headers.get("content-type", "").startswith("application/json")]
    assert not odd, odd
    assert 500 not in codes, [a.text for a in answers if a.status_code == 500]
    for a in answers:
        if a.status_code != 200:
            assert_json_error(a, 503)
    assert len(answers) - killed_at >= 4, "load did not continue after the kill"
    errors = [a.json()["error"]["code"] + ": " + a.json()["error"]["message"][:80] for a in answers if a.status_code != 200]
    assert codes.count(200) >= 0.9 * len(codes), (codes, errors[:5])
    # Item 2: ready again (here: never out) within a minute of the crash.
    deadline = time.monotonic() + 60
    while httpx.get(chaos_app + "/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, httpx.get(chaos_app + "/readyz").text
        time.sleep(1)


def test_overload_inside_the_service_is_json(service, chaos_app):
    """More sentences than the Synthesizers' queues hold: the ingress answers JSON 503 + Retry-After
    (Ray's BackPressureError mapped), never Ray's plain-text 503 (issue 9, item 3)."""
    deploy_chaos(service, max_ongoing_requests=2, max_queued_requests=2)   # short queues, same replicas

    async def burst():
        async with httpx.AsyncClient(base_url=chaos_app, timeout=120) as c:
            texts = [f"Overload {i} {uuid.uuid4().hex[:6]}. Second sentence. Third one here. Fourth."
                     for i in range(24)]
            return await asyncio.gather(*[c.post("/v1/tts", json={"text": t, "cache": False}) for t in texts])

    answers = asyncio.run(burst())
    codes = [a.status_code for a in answers]
    assert 503 in codes, codes
    for a in answers:
        if a.status_code != 200:
            assert_json_error(a, 503, code="overloaded")


# ---------------------------------------------------------------------- item 4: streams and storage


@pytest.fixture
def read_only(service):
    """Makes the 'local' app's store directory read-only (a read-only bind mount: root too)."""
    root = Path(service["local_dir"])
    mounted: list[bool] = []

    def make() -> None:
        for i, cmd in enumerate((["mount", "--bind", str(root), str(root)],
                                 ["mount", "-o", "remount,ro,bind", str(root)])):
            done = subprocess.run(cmd, capture_output=True)
            if done.returncode != 0:
                restore()
                pytest.skip(f"cannot make a read-only mount here: {done.stderr.decode().strip()}")
            if i == 0:
                mounted.append(True)

    def restore() -> None:
        while mounted:
            subprocess.run(["umount", str(root)], check=False)
            mounted.pop()

    yield make, restore
    restore()


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_stream_answers_503_when_storage_is_known_down(service, http, read_only, fmt):
    make, restore = read_only
    make()
    resp = http.post("/local/v1/tts/stream", json={"text": f"Nowhere to keep this {uuid.uuid4().hex}.",
                                                   "format": fmt})
    assert_json_error(resp, 503, code="storage_unavailable")
    ready = http.get("/local/readyz")
    # Readiness names the failing part, not its path (that is in the log).
    assert ready.status_code == 503 and ready.json()["problems"] == ["storage: unavailable"]
    restore()
    assert http.get("/local/readyz").status_code == 200


def test_stream_that_loses_storage_midway_delivers_audio_and_says_so(service, http, read_only):
    make, restore = read_only
    text = " ".join(f"Sentence number {i} of a stream that outlives its storage." for i in range(6))
    received = bytearray()
    with http.stream("POST", "/local/v1/tts/stream", json={"text": text, "format": "wav"}) as resp:
        assert resp.status_code == 200
        url, status_path = resp.headers["x-audio-url"], resp.headers["x-audio-status"]
        for chunk in resp.iter_bytes():
            if not received:
                make()   # storage goes read-only after the first bytes
            received += chunk
    rate = 22050
    seconds = (len(received) - 44) / 2 / rate
    assert seconds > 10  # the client got all of its audio
    status = http.get("/local" + status_path)
    err = assert_json_error(status, 503, field="key", code="audio_not_stored_yet")
    assert "retrying" in err["message"]
    assert_json_error(httpx.get(url), 503, code="audio_not_stored_yet")   # the URL says why, not a bare 404
    restore()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and http.get("/local" + status_path).status_code != 200:
        time.sleep(0.5)
    assert http.get("/local" + status_path).json()["status"] == "stored"
    stored = httpx.get(url)
    assert stored.status_code == 200
    assert abs(len(decode(stored.content)[0]) / rate - seconds) < 0.05


# ---------------------------------------------------------------------- item 5: claims after a storage blip


def test_retry_after_a_storage_blip_is_not_blocked_by_the_failed_claim(service, http):
    from tests.s3util import TcpProxy

    text = f"A claim left behind by a failed request {uuid.uuid4().hex}. " + TWO_SENTENCES * 3

    async def first_attempt():
        async with httpx.AsyncClient(base_url=service["base"], timeout=120) as c:
            pending = asyncio.create_task(c.post("/v1/tts", json={"text": text}))
            await asyncio.sleep(1.0)   # claim taken, synthesis running
            service["proxy"].stop()    # storage goes away before the result can be put
            return await pending

    proxy = service["proxy"]
    try:
        failed = asyncio.run(first_attempt())
        assert_json_error(failed, 503)
    finally:
        service["proxy"] = TcpProxy(int(service["moto"].rsplit(":", 1)[1]), port=proxy.port)
    started = time.monotonic()
    retry = http.post("/v1/tts", json={"text": text}, timeout=60)
    assert retry.status_code == 200, retry.text
    assert time.monotonic() - started < 15, "the retry waited for the dead request's claim"


# ---------------------------------------------------------------------- items 10, 11, 12: errors and the spec


def test_error_fields_and_shapes(http):
    assert_json_error(http.get("/v1/voices/vx_%C3%A9"), 404, field="voice_id")
    bad_text = http.post("/v1/tts", files={"text": (None, b"\xff\xfe")})
    assert_json_error(bad_text, 422, field="text")
    broken = http.post("/v1/tts", content=b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n",
                       headers={"content-type": "multipart/form-data; boundary=x"})
    assert_json_error(broken, 400, field="body")
    not_audio = http.post("/v1/voices", files={"audio": ("a.wav", b"this is not audio" * 100)}, data={"name": "n"})
    assert_json_error(not_audio, 415, field="audio")
    # an 8-channel WAV crashed the ingress process in PyAV (a 500 from Serve's proxy); 1 s: too short
    from tests.test_encoders import _pcm_wav
    eight, _tone = _pcm_wav(8, seconds=1.0)
    assert_json_error(http.post("/v1/voices", files={"audio": ("a.wav", eight)}, data={"name": "n"}), 422, field="audio")
    assert_json_error(http.post("/v1/tts", files={"reference_audio": ("a.wav", eight)}, data={"text": "Hi."}), 422,
                      field="reference_audio")
    assert_json_error(http.post("/v1/tts", json={"text": "hi", "speaker": False}), 422, field="speaker")
    assert_json_error(http.post("/v1/tts", json={"text": "9" * 4000}), 413, field="text")
    wrong = http.put("/v1/voices/vx_0123456789abcdef")
    assert_json_error(wrong, 405, field="method")
    assert wrong.headers["allow"] == "DELETE, GET"


def test_openapi_declares_bodies_and_errors(http):
    paths = http.get("/openapi.json").json()["paths"]
    speech = paths["/v1/audio/speech"]["post"]
    assert "application/json" in speech["requestBody"]["content"]
    assert "multipart/form-data" in paths["/v1/voices"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in paths["/v1/tts"]["post"]["requestBody"]["content"]
    for path, method in (("/v1/tts", "post"), ("/v1/audio/speech", "post"), ("/v1/voices", "post")):
        responses = paths[path][method]["responses"]
        assert {"413", "415", "422", "503"} <= set(responses), (path, sorted(responses))
    assert "404" in paths["/v1/voices/{voice_id}"]["get"]["responses"]


# ---------------------------------------------------------------------- item 15: /media cache lifetime


def test_media_is_cacheable_only_while_its_url_lives(http):
    body = http.post("/local/v1/tts", json={"text": "Cache me for an hour, not a year."}).json()
    fetched = httpx.get(body["audio_url"])
    assert fetched.status_code == 200
    max_age = int(fetched.headers["cache-control"].rsplit("max-age=", 1)[1])
    assert 3500 <= max_age <= 3600 and "immutable" not in fetched.headers["cache-control"]


# ---------------------------------------------------------------------- item 13: logs


def replica_log_lines(request_id: str) -> list[str]:
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path()) / "serve"
    lines = []
    for path in glob.glob(str(logs / "replica_*.log")):   # the ingress and the deployments behind it
        text = Path(path).read_text(errors="replace")
        lines += [line for line in text.splitlines() if request_id in line]
    return lines


def test_client_errors_and_disconnects_are_not_logged_as_errors(service, http):
    bad_id, gone_id = f"log-bad-{uuid.uuid4().hex[:8]}", f"log-gone-{uuid.uuid4().hex[:8]}"
    refused_id = f"log-refused-{uuid.uuid4().hex[:8]}"
    http.post("/v1/tts", json={"text": ""}, headers={"X-Request-ID": bad_id})
    # Refused inside the TextFrontend replica (no voice speaks Korean): a 4xx, not a replica failure.
    refused = http.post("/v1/tts", json={"text": "안녕하세요 여러분", "cache": False},
                        headers={"X-Request-ID": refused_id})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "language", refused.text
    with http.stream("POST", "/v1/tts/stream", headers={"X-Request-ID": gone_id},
                     json={"text": " ".join(["A long stream the client abandons."] * 8), "cache": False}) as resp:
        next(resp.iter_bytes())   # first audio, then hang up
    time.sleep(4)  # replicas flush their logs
    for request_id in (bad_id, refused_id, gone_id):
        lines = replica_log_lines(request_id)
        assert lines, f"no log line for {request_id}"
        assert not [line for line in lines if " ERROR " in line or "Traceback" in line], lines


def _never_retrieved_count() -> int:
    """asyncio's 'exception was never retrieved' reports in every log of this Ray session."""
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    paths = glob.glob(str(logs / "serve" / "*.log")) + glob.glob(str(logs / "worker-*.err"))
    return sum(Path(p).read_text(errors="replace").count("exception was never retrieved") for p in paths)


def test_streams_left_by_their_clients_log_no_tracebacks(service):
    """Serve cancels a request whose client left; the disconnect listener's receive() then raised
    TaskCancelledError in the streaming response and asyncio logged a traceback for about one in
    four such streams (40 leaving clients: ~9 tracebacks before the fix)."""
    import asyncio

    before = _never_retrieved_count()

    async def leave(client: httpx.AsyncClient, i: int) -> None:
        body = {"text": f"A stream its client leaves, number {i}. It has a second sentence.", "format": "mp3",
                "cache": False}
        async with client.stream("POST", "/v1/tts/stream", json=body) as resp:
            async for _chunk in resp.aiter_bytes():
                break

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=service["base"], timeout=120) as client:
            for round_ in range(2):
                await asyncio.gather(*[leave(client, round_ * 100 + i) for i in range(20)])

    asyncio.run(burst())
    time.sleep(4)  # replicas flush their logs
    assert _never_retrieved_count() == before
