"""Reliability fixes that need no Ray: store outages, strict forms, voice lifecycle, work bounds."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from serve_app.forms import parse_multipart, parse_urlencoded
from storage import open_store
from storage.local import LocalStore
from storage.voices import VoiceRegistry, embedding_key
from tts_engine.errors import BadRequest, InvalidInput, LimitReached, NotFound, StorageUnavailable
from tts_engine.settings import Settings


def local(root: Path, create: bool = True) -> LocalStore:
    store = open_store(Settings(store=f"file://{root}", url_signing_key="k" * 32), create=create)
    assert isinstance(store, LocalStore)
    return store


# ---------------------------------------------------------------------- item 6: a vanished store is an outage


def test_vanished_store_directory_is_an_outage_and_not_recreated(tmp_path):
    root = tmp_path / "store"
    store = local(root)
    store.put("tts/ab/one.wav", b"RIFF", "audio/wav")
    shutil.rmtree(root)
    for op in (lambda: store.put("tts/ab/two.wav", b"x", "audio/wav"), lambda: store.get("tts/ab/one.wav"),
               lambda: store.head("tts/ab/one.wav"), store.check, lambda: store.delete("tts/ab/one.wav"),
               lambda: store.open_upload("tts/ab/three.mp3", "audio/mpeg")):
        with pytest.raises(StorageUnavailable, match="missing"):
            op()
    assert not root.exists()  # never silently re-created
    # A replica opened later does not create it either; only start-up does.
    with pytest.raises(StorageUnavailable):
        local(root, create=False).check()
    assert not root.exists()
    root.mkdir()
    store.check()
    store.put("tts/ab/two.wav", b"x", "audio/wav")
    assert store.get("tts/ab/two.wav") == b"x"


# ---------------------------------------------------------------------- item 7: readiness writes a probe


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a tiny tmpfs filled to the brim: root passes every permission check there,
    yet no write succeeds (the case an os.access() readiness check cannot see)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mount / "store").mkdir()
        with open(mount / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass  # full
        yield mount / "store"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_readiness_check_writes_a_probe(full_disk):
    import os

    store = local(full_disk)
    assert os.access(full_disk, os.W_OK | os.X_OK)  # what the old check looked at
    with pytest.raises(StorageUnavailable, match="does not take writes"):
        store.check()
    assert [p.name for p in full_disk.iterdir()] == []  # no probe left behind


def test_readiness_probe_leaves_nothing(tmp_path):
    store = local(tmp_path / "s")
    store.check()
    assert list((tmp_path / "s").iterdir()) == []


# ---------------------------------------------------------------------- item 11: strict forms


def multipart(*parts: tuple[str, bytes, str | None], boundary: str = "b0undary") -> tuple[bytes, str]:
    body = b""
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_multipart_text_fields_must_be_utf8():
    body, ctype = multipart(("text", "héllo".encode(), None), ("reference_audio", b"\xff\xfe\x00", "a.wav"))
    fields, files = parse_multipart(body, ctype)
    assert fields == {"text": "héllo"} and files == {"reference_audio": b"\xff\xfe\x00"}
    body, ctype = multipart(("voice", b"joe", None), ("text", b"\xff\xfe", None))
    with pytest.raises(InvalidInput) as err:
        parse_multipart(body, ctype)
    assert err.value.field == "text" and "UTF-8" in err.value.message


@pytest.mark.parametrize("body,ctype", [
    (b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    (b"garbage without any boundary", "multipart/form-data; boundary=x"),
    (b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n", "multipart/form-data"),
])
def test_malformed_multipart_is_400_naming_the_body(body, ctype):
    with pytest.raises(BadRequest) as err:
        parse_multipart(body, ctype)
    assert err.value.field == "body"


def test_urlencoded_is_strict_utf8():
    assert parse_urlencoded(b"text=h%C3%A9llo+there&format=mp3") == {"text": "héllo there", "format": "mp3"}
    with pytest.raises(InvalidInput) as err:
        parse_urlencoded(b"text=%FF%FE")
    assert err.value.field == "text"
    with pytest.raises(BadRequest):
        parse_urlencoded(b"text=\xff\xfe")


# ---------------------------------------------------------------------- items 10, 14: voices


def test_voice_ids_that_cannot_exist_are_404(tmp_path):
    registry = VoiceRegistry(local(tmp_path / "s"))
    for bad in ("vx_é", "vx_%C3%A9", "vx_../../x", "vx_0123456789abcdeg", "vx_"):
        with pytest.raises(NotFound) as err:
            registry.get(bad)
        assert err.value.status == 404 and err.value.field == "voice_id"


def test_delete_voice_removes_its_analysis_unless_shared(tmp_path):
    store = local(tmp_path / "s")
    registry = VoiceRegistry(store)
    a = registry.create("a", "en", None, b"clip-one", "joe")
    b = registry.create("b", "en", None, b"clip-one", "joe")   # same clip as a
    c = registry.create("c", "en", None, b"clip-two", "joe")
    for record in (a, c):
        store.put(embedding_key(record.reference_hash), b"{}", "application/json")
    registry.delete(a.voice_id)
    assert store.exists(embedding_key(a.reference_hash))  # b still uses that clip
    registry.delete(b.voice_id)
    assert not store.exists(embedding_key(a.reference_hash))
    registry.delete(c.voice_id)
    assert store.list_keys("") == []  # nothing of the three voices is left


def test_voices_per_tenant_are_capped(tmp_path):
    registry = VoiceRegistry(local(tmp_path / "s"), tenant="t1")
    for i in range(2):
        registry.create(f"v{i}", "en", None, b"clip", "joe", max_voices=2)
    with pytest.raises(LimitReached) as err:
        registry.create("v2", "en", None, b"clip", "joe", max_voices=2)
    assert err.value.status == 409 and "2" in err.value.message
    registry.for_tenant("t2").create("other", "en", None, b"clip", "joe", max_voices=2)  # another tenant's quota


# ---------------------------------------------------------------------- item 15: /media cache lifetime


def test_media_cache_lifetime_matches_the_url():
    from serve_app.routers.admin import cache_headers

    headers = cache_headers(int(time.time()) + 600)
    assert headers["Cache-Control"].startswith("public, max-age=")
    assert 595 <= int(headers["Cache-Control"].rsplit("=", 1)[1]) <= 600
    assert cache_headers(int(time.time()) - 5)["Cache-Control"] == "public, max-age=0"


# ---------------------------------------------------------------------- item 8: bounded work per request


ORDINARY = ("The committee met on Tuesday to discuss a comprehensive infrastructure programme. "
            "Mr. Smith paid $1,234.56 on 12/05/2023 at 3:45 pm for 17 kg of apples, 42% more than planned! ")


def test_digit_runs_are_read_in_groups_not_as_astronomical_numbers():
    from tts_engine.text.en_normalize import normalize_english

    spoken = normalize_english("Account 12345678901234567890 is open.")
    assert "quintillion" not in spoken and "illion" not in spoken
    assert "one two, three four five, six seven eight" in spoken
    assert "nine hundred ninety-nine trillion" in normalize_english("999999999999999")  # 15 digits: a number


def test_output_length_is_bounded_before_any_model_work():
    from tts_engine.engine import SynthesisOptions, TTSEngine
    from tts_engine.errors import TextTooLong

    engine = TTSEngine(Settings(device="cpu"))
    with pytest.raises(TextTooLong) as err:
        engine.prepare("9" * 4000, SynthesisOptions())
    assert err.value.status == 413 and err.value.field == "text" and "max_phonemes=40000" in err.value.message
    text = (ORDINARY * 30)[:5000]
    engine.prepare(text, SynthesisOptions(speed=0.5))  # any ordinary 5000 characters pass, even slowed down
    with pytest.raises(TextTooLong):
        TTSEngine(Settings(device="cpu", max_phonemes=1000)).prepare(text, SynthesisOptions())


# ---------------------------------------------------------------------- item 5: claims


def test_a_claim_whose_request_ended_is_taken_over_at_once(tmp_path):
    import asyncio

    from serve_app.claims import ClaimBook, claim_key

    store = local(tmp_path / "s")
    book = ClaimBook(store, ttl_s=120)
    key = "tts/ab/abc.wav"
    assert book.try_claim(key)
    other = ClaimBook(store, ttl_s=120)           # another replica: the claim is live
    assert not other.try_claim(key)

    async def failed_request():
        async with book.held(key):
            store.delete = _broken_delete   # storage blips as the request fails: release fails
            raise StorageUnavailable("blip")

    def _broken_delete(k):
        raise StorageUnavailable("blip")

    original_delete = LocalStore.delete.__get__(store)
    with pytest.raises(StorageUnavailable):
        asyncio.run(failed_request())
    store.delete = original_delete
    assert store.exists(claim_key(key))           # left behind
    started = time.monotonic()
    assert book.try_claim(key)                    # the retry on this replica does not wait 120 s
    assert time.monotonic() - started < 1


def test_a_claim_not_refreshed_expires_within_its_ttl(tmp_path):
    from serve_app.claims import ClaimBook

    store = local(tmp_path / "s")
    dead = ClaimBook(store, ttl_s=0.3)
    assert dead.try_claim("tts/ab/x.wav")
    alive = ClaimBook(store, ttl_s=0.3)
    assert not alive.try_claim("tts/ab/x.wav")
    time.sleep(0.4)
    assert alive.try_claim("tts/ab/x.wav")


def test_a_held_claim_is_refreshed(tmp_path):
    import asyncio
    import json

    from serve_app.claims import ClaimBook, claim_key

    store = local(tmp_path / "s")
    book = ClaimBook(store, ttl_s=0.3)

    async def long_work():
        assert book.try_claim("tts/ab/y.wav")
        async with book.held("tts/ab/y.wav"):
            await asyncio.sleep(0.7)
            stamp = json.loads(store.get(claim_key("tts/ab/y.wav")))["at"]
            assert time.time() - stamp < 0.3   # refreshed: another replica would not take it over
            assert not ClaimBook(store, ttl_s=0.3).try_claim("tts/ab/y.wav")

    asyncio.run(long_work())
    assert not store.exists(claim_key("tts/ab/y.wav"))


# ---------------------------------------------------------------------- item 1: replica loss


def _retriers():
    """The two retry policies: a plain call (one retry), a stream under way (patient)."""
    from serve_app.resilience import for_a_listener, once_more

    return {"once_more": lambda call: once_more(call, "synthesis"),
            "for_a_listener": lambda call: for_a_listener(call, "synthesis", patience_s=0.5)}


@pytest.mark.parametrize("policy", ["once_more", "for_a_listener"])
def test_a_replica_that_stays_lost_is_503_and_bad_input_is_not_retried(policy):
    import asyncio

    from ray.exceptions import ActorDiedError

    from tts_engine.errors import ServiceUnavailable

    retry = _retriers()[policy]

    async def always_dies():
        raise ActorDiedError()

    with pytest.raises(ServiceUnavailable) as err:
        asyncio.run(retry(always_dies))
    assert err.value.status == 503

    calls = []

    async def bad_input():
        calls.append(1)
        raise InvalidInput("no", field="text")

    with pytest.raises(InvalidInput):
        asyncio.run(retry(bad_input))
    assert len(calls) == 1   # only a lost replica (or a full queue, for a listener) is retried


def test_a_call_whose_replica_died_is_retried_once():
    import asyncio

    from ray.exceptions import ActorDiedError

    from serve_app.resilience import once_more
    from tts_engine.errors import ServiceUnavailable

    calls = []

    async def dies_then_works():
        calls.append(1)
        if len(calls) == 1:
            raise ActorDiedError()
        return "audio"

    assert asyncio.run(once_more(dies_then_works, "synthesis")) == "audio" and len(calls) == 2

    async def dies_twice():
        calls.append(1)
        raise ActorDiedError()

    calls.clear()
    with pytest.raises(ServiceUnavailable):
        asyncio.run(once_more(dies_twice, "synthesis"))
    assert len(calls) == 2   # one retry, not more


def test_a_stream_under_way_waits_out_lost_replicas_and_full_queues():
    import asyncio

    from ray.exceptions import ActorDiedError
    from ray.serve.exceptions import BackPressureError

    from serve_app.resilience import for_a_listener

    failures = [ActorDiedError(), ActorDiedError(), BackPressureError(num_queued_requests=4, max_queued_requests=4)]
    calls = []

    async def recovers():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "audio"

    # the router picked the dead replica twice, then the queue was full: the listener still gets audio
    assert asyncio.run(for_a_listener(recovers, "synthesis", patience_s=10)) == "audio" and len(calls) == 4


# ---------------------------------------------------------------------- item 13: log rotation


def test_log_rotation_is_configured():
    from serve_app.run import LOG_ROTATION

    assert int(LOG_ROTATION["RAY_ROTATION_MAX_BYTES"]) <= 64 * 2**20
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "RAY_ROTATION_MAX_BYTES" in makefile and "RAY_ROTATION_BACKUP_COUNT" in makefile
