"""AudioStore: S3 backend against a local moto server, local backend on tmp dirs."""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.config import Config
from botocore.exceptions import ClientError

from tts_engine.errors import Forbidden, InvalidInput, NotFound, StorageUnavailable
from tts_engine.settings import Settings
from tests.s3util import TcpProxy, moto_server
from storage import (
    CACHE_CONTROL,
    LocalStore,
    S3Store,
    StoredObject,
    open_store,
)

MiB = 1024 * 1024
SECRET = "voxtest-secret-do-not-log"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "VOXSERVE_CONFIG"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield endpoint


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    # moto keeps one in-process state across tests: a fresh bucket isolates each test.
    return f"voxtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def raw_s3(moto_endpoint: str) -> Any:
    """A plain boto3 client, to check what the store wrote from the outside."""
    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}))


def s3_settings(bucket: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        store=f"s3://{bucket}/audio",
        store_retries=2,
        store_backoff_s=0.01,
        store_timeout_s=1.0,
        s3_addressing_style="path",
        s3_multipart_threshold_bytes=5 * MiB,
        presign_expiry_s=600,
        cdn_base_url=None,
        create_bucket=True,
    )
    values.update(overrides)
    return Settings(**values)


def s3_store(bucket: str, **overrides: Any) -> S3Store:
    store = open_store(s3_settings(bucket, **overrides))
    assert isinstance(store, S3Store)
    return store


def local_store(root: Path, **overrides: Any) -> LocalStore:
    values: dict[str, Any] = dict(
        store=f"file://{root}", public_base_url="http://media.test:8000", presign_expiry_s=600, url_signing_key=None
    )
    values.update(overrides)
    store = open_store(Settings(**values), create=True)
    assert isinstance(store, LocalStore)
    return store


class _RawBody:
    """The minimal raw-response shape AWSResponse reads its content from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@contextmanager
def injected_errors(
    store: S3Store, operation: str, failures: int, status: int = 503, code: str = "SlowDown"
) -> Iterator[dict[str, int]]:
    """Answer the first ``failures`` calls of ``operation`` with an S3 error, never reaching the server."""
    calls = {"n": 0}

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        calls["n"] += 1
        if calls["n"] > failures:
            return None
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        headers = HeadersDict({"Content-Type": "application/xml"})
        return AWSResponse(request.url, status, headers, _RawBody(body))

    events = store._client().meta.events
    unique_id = f"inject-{uuid.uuid4().hex}"
    events.register(f"before-send.s3.{operation}", before_send, unique_id=unique_id)
    try:
        yield calls
    finally:
        events.unregister(f"before-send.s3.{operation}", unique_id=unique_id)


# --------------------------------------------------------------------------- S3


def test_s3_put_get_head_exists_delete_list(bucket: str, raw_s3: Any) -> None:
    store = s3_store(bucket)
    stored = store.put("ab/cd.wav", b"RIFF-audio", "audio/wav", {"Voice": "joe", "format": "wav"})
    assert stored == StoredObject("ab/cd.wav", 10, "audio/wav", {"voice": "joe", "format": "wav"})
    store.put("ab/ef.mp3", b"mp3", "audio/mpeg")
    store.put("zz/other.mp3", b"x", "audio/mpeg")

    assert store.get("ab/cd.wav") == b"RIFF-audio"
    assert store.exists("ab/cd.wav")
    assert store.head("ab/cd.wav") == stored
    assert store.list_keys("ab/") == ["ab/cd.wav", "ab/ef.mp3"]
    assert store.list_keys("") == ["ab/cd.wav", "ab/ef.mp3", "zz/other.mp3"]
    # The store prefix is applied on the server and stripped in listings.
    listed = raw_s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["audio/ab/cd.wav", "audio/ab/ef.mp3", "audio/zz/other.mp3"]

    store.delete("ab/cd.wav")
    store.delete("ab/cd.wav")  # idempotent
    assert not store.exists("ab/cd.wav")
    assert store.head("ab/cd.wav") is None
    with pytest.raises(NotFound):
        store.get("ab/cd.wav")
    with pytest.raises(InvalidInput):
        store.get("../etc/passwd")


def test_s3_object_carries_content_type_cache_control_metadata(bucket: str, raw_s3: Any) -> None:
    store = s3_store(bucket)
    store.put("k/one.ogg", b"ogg", "audio/ogg", {"voice": "en_US-joe-medium", "sample-rate": "22050"})
    head = raw_s3.head_object(Bucket=bucket, Key="audio/k/one.ogg")
    assert head["ContentType"] == "audio/ogg"
    assert head["CacheControl"] == CACHE_CONTROL == "public, max-age=31536000, immutable"
    assert head["Metadata"] == {"voice": "en_US-joe-medium", "sample-rate": "22050"}


def test_s3_bucket_created_on_first_use_and_check(bucket: str, raw_s3: Any) -> None:
    with pytest.raises(ClientError):
        raw_s3.head_bucket(Bucket=bucket)
    s3_store(bucket).check()
    raw_s3.head_bucket(Bucket=bucket)
    s3_store(bucket).check()  # already there: fine

    missing = f"{bucket}-missing"
    off = s3_store(missing, create_bucket=False)
    with pytest.raises(StorageUnavailable, match="create_bucket is off"):
        off.check()
    with pytest.raises(StorageUnavailable):
        off.put("a.wav", b"x", "audio/wav")


def test_s3_presigned_url_is_fetchable(bucket: str) -> None:
    store = s3_store(bucket)
    store.put("p/q.wav", b"presigned-bytes", "audio/wav")
    url = store.url("p/q.wav")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
    assert SECRET not in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"presigned-bytes"
    assert response.headers["content-type"] == "audio/wav"


def test_s3_cdn_url_includes_prefix(bucket: str) -> None:
    store = s3_store(bucket, cdn_base_url="https://cdn.example.com/vox/")
    assert store.url("ab/cd.mp3") == "https://cdn.example.com/vox/audio/ab/cd.mp3"
    bare = open_store(s3_settings(bucket, store=f"s3://{bucket}", cdn_base_url="https://cdn.example.com"))
    assert bare.url("ab/cd.mp3") == "https://cdn.example.com/ab/cd.mp3"


def test_s3_put_above_threshold_uses_multipart(bucket: str, raw_s3: Any) -> None:
    store = s3_store(bucket)
    data = os.urandom(11 * MiB)
    store.put("big/put.wav", data, "audio/wav", {"voice": "joe"})
    head = raw_s3.head_object(Bucket=bucket, Key="audio/big/put.wav")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB
    assert head["CacheControl"] == CACHE_CONTROL and head["Metadata"] == {"voice": "joe"}
    assert store.get("big/put.wav") == data


def test_s3_streaming_upload_multipart_and_single(bucket: str, raw_s3: Any) -> None:
    store = s3_store(bucket)
    data = os.urandom(11 * MiB + 123)
    with store.open_upload("big/stream.wav", "audio/wav", {"voice": "joe"}) as upload:
        for offset in range(0, len(data), 700 * 1024):
            upload.write(data[offset : offset + 700 * 1024])
        # Nothing is visible before completion.
        assert store.head("big/stream.wav") is None
    head = raw_s3.head_object(Bucket=bucket, Key="audio/big/stream.wav")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "audio/wav" and head["CacheControl"] == CACHE_CONTROL
    assert store.get("big/stream.wav") == data
    assert store.head("big/stream.wav") == StoredObject("big/stream.wav", len(data), "audio/wav", {"voice": "joe"})

    # A total of exactly one part still goes as a single PUT.
    upload = store.open_upload("small/one.wav", "audio/wav")
    upload.write(b"a" * (5 * MiB))
    stored = upload.complete()
    assert stored.size == 5 * MiB
    assert "-" not in raw_s3.head_object(Bucket=bucket, Key="audio/small/one.wav")["ETag"]
    assert raw_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_upload_abort_leaves_nothing(bucket: str, raw_s3: Any) -> None:
    store = s3_store(bucket)
    upload = store.open_upload("gone/abort.wav", "audio/wav")
    upload.write(os.urandom(6 * MiB))  # more than a part: a multipart upload is in progress
    assert raw_s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    upload.abort()
    assert store.head("gone/abort.wav") is None
    assert raw_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ValueError):
        upload.write(b"more")

    with pytest.raises(RuntimeError, match="synthesis failed"):
        with store.open_upload("gone/raised.wav", "audio/wav") as upload:
            upload.write(os.urandom(6 * MiB))
            raise RuntimeError("synthesis failed")
    assert store.head("gone/raised.wav") is None
    assert raw_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert store.list_keys("gone/") == []


def test_s3_put_if_absent(bucket: str) -> None:
    store = s3_store(bucket)
    assert store.put_if_absent("locks/abc", b"owner-1", "text/plain", {"owner": "1"}) is True
    assert store.put_if_absent("locks/abc", b"owner-2", "text/plain", {"owner": "2"}) is False
    assert store.get("locks/abc") == b"owner-1"
    # The internal writer token never shows through.
    assert store.head("locks/abc") == StoredObject("locks/abc", 7, "text/plain", {"owner": "1"})
    store.delete("locks/abc")
    assert store.put_if_absent("locks/abc", b"owner-3", "text/plain") is True


def test_s3_put_if_absent_recognises_its_own_lost_write(bucket: str) -> None:
    store = s3_store(bucket)
    store.check()
    calls = {"n": 0}

    # The first attempt really reaches the server, but its reply is "lost" (we answer 503).
    # The retry then meets 412; the store must still report that it created the key.
    def deliver_then_lose_reply(request: Any, **_: Any) -> AWSResponse | None:
        calls["n"] += 1
        if calls["n"] > 1:
            return None
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        sent = httpx.request(request.method, request.url, headers=headers, content=request.body)
        assert sent.status_code == 200
        body = b"<Error><Code>ServiceUnavailable</Code><Message>reply lost</Message></Error>"
        return AWSResponse(request.url, 503, HeadersDict({"Content-Type": "application/xml"}), _RawBody(body))

    events = store._client().meta.events
    unique_id = f"lose-{uuid.uuid4().hex}"
    events.register("before-send.s3.PutObject", deliver_then_lose_reply, unique_id=unique_id)
    try:
        assert store.put_if_absent("locks/lost", b"mine", "text/plain") is True
    finally:
        events.unregister("before-send.s3.PutObject", unique_id=unique_id)
    assert calls["n"] == 2
    assert store.put_if_absent("locks/lost", b"theirs", "text/plain") is False
    assert store.get("locks/lost") == b"mine"


def test_s3_transient_errors_are_retried(bucket: str) -> None:
    store = s3_store(bucket, store_retries=2)
    store.check()
    with injected_errors(store, "PutObject", failures=2) as calls:
        store.put("retry/ok.wav", b"eventually", "audio/wav")
    assert calls["n"] == 3
    assert store.get("retry/ok.wav") == b"eventually"

    with injected_errors(store, "PutObject", failures=3, status=500, code="InternalError") as calls:
        with pytest.raises(StorageUnavailable, match="after 3 attempt") as info:
            store.put("retry/never.wav", b"lost", "audio/wav")
    assert calls["n"] == 3
    assert SECRET not in str(info.value)
    assert store.head("retry/never.wav") is None


def test_s3_non_transient_errors_are_not_retried(bucket: str) -> None:
    store = s3_store(bucket, store_retries=3)
    store.check()
    with injected_errors(store, "PutObject", failures=5, status=403, code="AccessDenied") as calls:
        with pytest.raises(StorageUnavailable, match="AccessDenied"):
            store.put("deny/x.wav", b"x", "audio/wav")
    assert calls["n"] == 1
    with injected_errors(store, "GetObject", failures=0) as calls:
        with pytest.raises(NotFound):
            store.get("deny/missing.wav")
    assert calls["n"] == 1


def test_s3_storage_down_then_recovers(bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = TcpProxy(int(moto_endpoint.rsplit(":", 1)[1]))
    port = proxy.port
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    store = s3_store(bucket, store_retries=1, store_backoff_s=0.01, store_timeout_s=1.0)
    store.put("up/before.wav", b"before", "audio/wav")
    proxy.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="object storage unavailable") as info:
            store.put("up/during.wav", b"during", "audio/wav")
        with pytest.raises(StorageUnavailable):
            store.get("up/before.wav")
        with pytest.raises(StorageUnavailable):
            store.check()
        assert time.monotonic() - started < 10
        assert SECRET not in str(info.value)
    finally:
        proxy = TcpProxy(int(moto_endpoint.rsplit(":", 1)[1]), port=port)
    try:
        store.check()  # the same object, no re-creation
        assert store.get("up/before.wav") == b"before"
        store.put("up/after.wav", b"after", "audio/wav")
        assert store.list_keys("up/") == ["up/after.wav", "up/before.wav"]
    finally:
        proxy.stop()


def test_s3_unreachable_endpoint_fails_fast(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port}")
    store = s3_store(bucket, store_retries=2)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="EndpointConnectionError"):
        store.check()
    with pytest.raises(StorageUnavailable, match="after 3 attempt"):
        store.put("x/y.wav", b"x", "audio/wav")
    assert time.monotonic() - started < 5


def test_s3_store_pickles_without_client(bucket: str) -> None:
    store = s3_store(bucket)
    store.put("pk/a.wav", b"pickled", "audio/wav")
    state = store.__getstate__()
    assert "_client_obj" not in state
    clone = pickle.loads(pickle.dumps(store))
    assert clone._client_obj is None
    assert clone.get("pk/a.wav") == b"pickled"


# --------------------------------------------------------------------------- local


def _all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_local_put_is_atomic_with_sidecar(tmp_path: Path) -> None:
    store = local_store(tmp_path / "media")
    stored = store.put("ab/cd.wav", b"RIFF", "audio/wav", {"Voice": "joe"})
    assert stored == StoredObject("ab/cd.wav", 4, "audio/wav", {"voice": "joe"})
    store.put("ab/ef.mp3", b"mp3data", "audio/mpeg")
    store.url("ab/cd.wav")  # creates .signing-key
    root = tmp_path / "media"
    files = [f for f in _all_files(root) if not f.startswith(".locks/")]
    assert files == [".signing-key", "ab/cd.wav", "ab/cd.wav.meta.json", "ab/ef.mp3", "ab/ef.mp3.meta.json"]
    assert store.get("ab/cd.wav") == b"RIFF"
    assert store.head("ab/cd.wav") == stored
    assert store.head("ab/ef.mp3") == StoredObject("ab/ef.mp3", 7, "audio/mpeg", {})
    assert store.exists("ab/cd.wav") and not store.exists("ab/zz.wav")
    assert store.list_keys("") == ["ab/cd.wav", "ab/ef.mp3"]
    assert store.list_keys("ab/c") == ["ab/cd.wav"]
    assert store.list_keys("nope/") == []

    store.delete("ab/cd.wav")
    assert not (root / "ab/cd.wav").exists() and not (root / "ab/cd.wav.meta.json").exists()
    assert store.head("ab/cd.wav") is None
    with pytest.raises(NotFound):
        store.get("ab/cd.wav")
    store.check()


UNSAFE_KEYS = [
    "../x", "/etc/passwd", "a/../../b", "a\\b", "a/./b", "a//b", "", "a\x00b", ".hidden", "a/b.meta.json", "sp ace",
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_local_rejects_unsafe_keys(tmp_path: Path, key: str) -> None:
    store = local_store(tmp_path)
    for call in (
        lambda: store.put(key, b"x", "audio/wav"),
        lambda: store.get(key),
        lambda: store.media_path(key),
        lambda: store.open_upload(key, "audio/wav"),
        lambda: store.url(key),
    ):
        with pytest.raises(InvalidInput) as info:
            call()
        assert info.value.field == "key"
    assert _all_files(tmp_path) == []


def test_local_rejects_symlink_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"secret")
    root = tmp_path / "root"
    store = local_store(root)
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidInput):
        store.media_path("link/secret.wav")
    with pytest.raises(InvalidInput):
        store.put("link/new.wav", b"x", "audio/wav")
    assert not (outside / "new.wav").exists()


def test_local_signed_url_round_trip(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    store.put("ab/cd.wav", b"RIFF", "audio/wav")
    url = store.url("ab/cd.wav")
    parsed = httpx.URL(url)
    assert url.startswith("http://media.test:8000/media/ab/cd.wav?")
    key = parsed.path.removeprefix("/media/")
    expires, sig = parsed.params["expires"], parsed.params["sig"]
    assert abs(int(expires) - (time.time() + 600)) < 5
    store.verify_media_signature(key, expires, sig)
    assert store.media_path(key).read_bytes() == b"RIFF"

    tampered_sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    with pytest.raises(Forbidden):
        store.verify_media_signature(key, expires, tampered_sig)
    with pytest.raises(Forbidden):
        store.verify_media_signature("ab/other.wav", expires, sig)
    with pytest.raises(Forbidden):
        store.verify_media_signature(key, str(int(expires) + 1), sig)  # extending the expiry
    with pytest.raises(Forbidden, match="expired"):
        store.verify_media_signature(key, expires, sig, now=int(expires) + 1)
    for bad_expires, bad_sig in [("", sig), ("abc", sig), ("-1", sig), (expires, ""), (expires, "zz\u00e9")]:
        with pytest.raises(Forbidden):
            store.verify_media_signature(key, bad_expires, bad_sig)
    with pytest.raises(NotFound):
        store.media_path("ab/missing.wav")


def test_local_signing_key_persisted_and_shared(tmp_path: Path) -> None:
    first = local_store(tmp_path)
    second = local_store(tmp_path)
    url = first.url("k.wav")
    params = httpx.URL(url).params
    second.verify_media_signature("k.wav", params["expires"], params["sig"])
    key_text = (tmp_path / ".signing-key").read_text()
    assert len(key_text) == 64 and int(key_text, 16) >= 0
    assert (tmp_path / ".signing-key").stat().st_mode & 0o077 == 0
    # A restarted process (unpickled copy) still agrees.
    third = pickle.loads(pickle.dumps(first))
    third.verify_media_signature("k.wav", params["expires"], params["sig"])
    # A configured key wins over the file, so URLs from the file key no longer verify.
    configured = local_store(tmp_path, url_signing_key="configured-key")
    with pytest.raises(Forbidden):
        configured.verify_media_signature("k.wav", params["expires"], params["sig"])
    cparams = httpx.URL(configured.url("k.wav")).params
    configured.verify_media_signature("k.wav", cparams["expires"], cparams["sig"])


def test_local_upload_complete_abort_and_exception(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    with store.open_upload("s/stream.wav", "audio/wav", {"voice": "joe"}) as upload:
        upload.write(b"part1-")
        upload.write(b"part2")
        assert not store.exists("s/stream.wav")
        assert store.list_keys("") == []
    assert store.get("s/stream.wav") == b"part1-part2"
    assert store.head("s/stream.wav") == StoredObject("s/stream.wav", 11, "audio/wav", {"voice": "joe"})

    upload = store.open_upload("s/aborted.wav", "audio/wav")
    upload.write(b"half")
    upload.abort()
    with pytest.raises(RuntimeError):
        with store.open_upload("s/raised.wav", "audio/wav") as upload:
            upload.write(b"half")
            raise RuntimeError("boom")
    files = [f for f in _all_files(tmp_path) if not f.startswith(".locks/")]
    assert files == ["s/stream.wav", "s/stream.wav.meta.json"]


def test_local_put_if_absent(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    assert store.put_if_absent("locks/a", b"one", "text/plain", {"owner": "1"}) is True
    assert store.put_if_absent("locks/a", b"two", "text/plain", {"owner": "2"}) is False
    assert store.get("locks/a") == b"one"
    assert store.head("locks/a") == StoredObject("locks/a", 3, "text/plain", {"owner": "1"})

    results: list[bool] = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        results.append(store.put_if_absent("locks/race", str(i).encode(), "text/plain", {"owner": str(i)}))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    winner = store.get("locks/race").decode()
    assert store.head("locks/race").metadata == {"owner": winner}  # data and sidecar from one writer
    assert not [f for f in _all_files(tmp_path) if ".tmp-" in f]


def test_local_rejects_bad_metadata_and_content_type(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    with pytest.raises(InvalidInput) as info:
        store.put("a.wav", b"x", "audio/wav", {"bad key": "v"})
    assert info.value.field == "metadata"
    with pytest.raises(InvalidInput):
        store.put("a.wav", b"x", "audio/wav", {"k": "caf\u00e9"})
    with pytest.raises(InvalidInput) as info:
        store.put("a.wav", b"x", "audio/wav\r\nX-Evil: 1")
    assert info.value.field == "content_type"


# --------------------------------------------------------------------------- open_store


def test_open_store_parses_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = open_store(Settings(store="s3://voxtest/audio/v1/"))
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("voxtest", "audio/v1/")
    bare = open_store(Settings(store="s3://voxtest"))
    assert isinstance(bare, S3Store) and bare.prefix == ""

    absolute = open_store(Settings(store=f"file://{tmp_path}/abs"), create=True)
    assert isinstance(absolute, LocalStore) and absolute.root == (tmp_path / "abs").resolve()
    monkeypatch.chdir(tmp_path)
    relative = open_store(Settings(store="file:rel/dir"), create=True)
    assert isinstance(relative, LocalStore) and relative.root == (tmp_path / "rel/dir").resolve()
    plain = open_store(Settings(store=str(tmp_path / "plain")))
    assert not (tmp_path / "plain").exists()  # replicas open, only start-up creates
    assert isinstance(plain, LocalStore) and plain.root == (tmp_path / "plain").resolve()
    assert (tmp_path / "abs").is_dir() and (tmp_path / "rel/dir").is_dir()

    bad_urls = [
        "gs://bucket/x", "http://example.com/x", "s3://", "s3://Bad_Bucket/x", "file://somehost/dir", "s3://b/../x", "",
    ]
    for bad in bad_urls:
        with pytest.raises(ValueError):
            open_store(Settings(store=bad))
    with pytest.raises(ValueError) as info:
        open_store(Settings(store="s3://AKIA:hunter2@bucket/x"))
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError, match="unsupported store URL scheme"):
        open_store(Settings(store="ftp://x/y"))
