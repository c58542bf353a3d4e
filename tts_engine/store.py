"""AudioStore: where finished audio lives, behind one interface with two backends.

``S3Store`` talks to any S3-compatible service through boto3; ``LocalStore`` keeps
files under a directory and serves them through signed ``/media`` URLs. Pick one
with :func:`open_store` from ``settings.store``.

Guarantees both backends keep:

* A key is never visible half-written: readers see the whole object or nothing
  (S3: single PUT or CompleteMultipartUpload; local: fsync + rename).
* Every storage failure surfaces as :class:`StorageUnavailable` (503) after a
  bounded number of retries; a missing key is :class:`NotFound` (404); a bad key
  is :class:`InvalidInput` with ``field="key"``. No raw boto3/OS error escapes
  the public methods except programming errors.
* Keys are the same portable shape on both backends (``[A-Za-z0-9._/-]``,
  relative, no empty/dot segments) so an app that works on one works on the other.

Endpoints and credentials for S3 come from boto3's own chain (``AWS_ENDPOINT_URL_S3``,
``AWS_ACCESS_KEY_ID``, instance roles, ...); this module never reads them itself
and never logs them.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

from tts_engine.errors import Forbidden, InvalidInput, NotFound, StorageUnavailable
from tts_engine.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Keys are content-addressed, so an object never changes once written.
CACHE_CONTROL = "public, max-age=31536000, immutable"
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_KEY_RE = re.compile(r"[A-Za-z0-9._/-]+")
_MAX_KEY_LEN = 1024  # S3's limit, applied to both backends so keys stay portable
# Leaves room for the ".{name}.tmp-{32 hex}" temp name within a 255-byte file name.
_MAX_SEGMENT_LEN = 200
_SIDECAR_SUFFIX = ".meta.json"
_META_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_MAX_METADATA_BYTES = 2048  # S3's limit on user metadata
# Internal marker put_if_absent uses to recognise its own write after a retry.
_WRITER_TOKEN_KEY = "voxserve-writer-token"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative key; raise InvalidInput otherwise."""
    if not isinstance(key, str) or not key:
        raise InvalidInput("key must be a non-empty string", field="key")
    if "\x00" in key or "\\" in key:
        raise InvalidInput("key must not contain NUL or backslashes", field="key")
    if key.startswith("/"):
        raise InvalidInput("key must be relative, not absolute", field="key")
    if len(key) > _MAX_KEY_LEN:
        raise InvalidInput(f"key is longer than {_MAX_KEY_LEN} characters", field="key")
    if not _KEY_RE.fullmatch(key):
        raise InvalidInput("key may contain only A-Z a-z 0-9 . _ / -", field="key")
    for segment in key.split("/"):
        _check_key_segment(segment)
    # The sidecar of "x" is "x.meta.json"; a key of that shape would collide with it.
    if key.endswith(_SIDECAR_SUFFIX):
        raise InvalidInput(f"key must not end with {_SIDECAR_SUFFIX!r} (reserved)", field="key")
    return key


def _check_key_segment(segment: str) -> None:
    if segment == "":
        raise InvalidInput("key must not contain empty path segments", field="key")
    if segment in (".", ".."):
        raise InvalidInput("key must not contain '.' or '..' segments", field="key")
    # Dot-files hold temp data, sidecars' temps, locks and the signing key.
    if segment.startswith("."):
        raise InvalidInput("key segments must not start with '.' (reserved)", field="key")
    if len(segment) > _MAX_SEGMENT_LEN:
        raise InvalidInput(f"key segments must be at most {_MAX_SEGMENT_LEN} characters", field="key")


def _validated_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key-shaped string that may end in '/' or mid-segment."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _validated_content_type(content_type: str) -> str:
    if (
        not isinstance(content_type, str)
        or not content_type
        or len(content_type) > 255
        or any(not (32 <= ord(c) < 127) for c in content_type)
    ):
        raise InvalidInput("content_type must be 1-255 printable ASCII characters", field="content_type")
    return content_type


def _normalized_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Lower-cased, ASCII-only metadata: the subset S3 round-trips unchanged."""
    if not metadata:
        return {}
    out: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidInput("metadata keys and values must be strings", field="metadata")
        lowered = name.lower()
        if not _META_KEY_RE.fullmatch(lowered):
            raise InvalidInput(f"metadata key {name!r} must match [a-z0-9][a-z0-9_-]*", field="metadata")
        if lowered == _WRITER_TOKEN_KEY:
            raise InvalidInput(f"metadata key {name!r} is reserved", field="metadata")
        if any(not (32 <= ord(c) < 127) for c in value):
            raise InvalidInput(f"metadata value for {name!r} must be printable ASCII", field="metadata")
        if lowered in out:
            raise InvalidInput(f"metadata key {name!r} repeats case-insensitively", field="metadata")
        out[lowered] = value
    if sum(len(k) + len(v) for k, v in out.items()) > _MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata exceeds {_MAX_METADATA_BYTES} bytes", field="metadata")
    return out


def _checked_put(
    key: str, data: bytes, content_type: str, metadata: dict[str, str] | None
) -> tuple[str, bytes, str, dict[str, str]]:
    """The arguments of a write, validated and normalized (both backends, every write path)."""
    return validate_key(key), _as_bytes(data), _validated_content_type(content_type), _normalized_metadata(metadata)


def _as_bytes(data: bytes) -> bytes:
    # botocore rejects memoryview bodies; bytearray is fine but copying keeps one code path.
    return data if isinstance(data, bytes) else bytes(data)


# --------------------------------------------------------------------------- interface


class Upload(ABC):
    """A streaming write to one key. Nothing is visible under the key until complete().

    Use as a context manager: a clean exit completes, an exception aborts. Not
    thread-safe: one writer per Upload.
    """

    def __init__(self, key: str, content_type: str, metadata: dict[str, str]) -> None:
        self.key = key
        self.content_type = content_type
        self.metadata = metadata
        self.size = 0
        self.closed = False

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def complete(self) -> StoredObject: ...

    @abstractmethod
    def abort(self) -> None: ...

    def _ensure_open(self) -> None:
        if self.closed:
            raise ValueError(f"upload of {self.key!r} is already completed or aborted")

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.closed:
            return
        if exc_type is None:
            self.complete()
        else:
            self.abort()


class AudioStore(ABC):
    """Where finished audio is kept and how clients fetch it."""

    @abstractmethod
    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> StoredObject: ...

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; NotFound if there is none."""

    @abstractmethod
    def head(self, key: str) -> StoredObject | None: ...

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the key; deleting a missing key is not an error."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (a plain string prefix), sorted."""

    @abstractmethod
    def url(self, key: str) -> str:
        """A URL a client can GET the object from (signed or CDN)."""

    @abstractmethod
    def open_upload(
        self, key: str, content_type: str, metadata: dict[str, str] | None = None
    ) -> Upload: ...

    @abstractmethod
    def check(self) -> None:
        """Raise StorageUnavailable unless the store is reachable and usable (for /readyz)."""

    @abstractmethod
    def put_if_absent(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> bool:
        """Create the key only if it does not exist; True if this call created it."""


# --------------------------------------------------------------------------- S3


_TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequestsException",
    "ConditionalRequestConflict",  # AWS asks callers to retry concurrent conditional writes
})
_MAX_BACKOFF_S = 5.0  # caps one sleep, so retries=10 cannot stall a request for minutes


def _response_of(exc: BaseException) -> dict[str, Any]:
    # Connection-level botocore errors carry response=None, or no response at all.
    response = getattr(exc, "response", None)
    return response if isinstance(response, dict) else {}


def _error_code(exc: BaseException) -> str:
    return str(_response_of(exc).get("Error", {}).get("Code", ""))


def _http_status(exc: BaseException) -> int:
    return int(_response_of(exc).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_transient(exc: Exception) -> bool:
    from botocore.exceptions import (
        ClientError,
        ConnectionError as BotoConnectionError,
        HTTPClientError,
        ResponseStreamingError,
    )

    # EndpointConnectionError and ConnectTimeoutError are ConnectionErrors;
    # ReadTimeoutError and ConnectionClosedError are HTTPClientErrors.
    if isinstance(exc, (BotoConnectionError, HTTPClientError, ResponseStreamingError)):
        return True
    if isinstance(exc, ClientError):
        status = _http_status(exc)
        # 501 means "not supported", which no amount of retrying fixes.
        return (status >= 500 and status != 501) or status == 429 or _error_code(exc) in _TRANSIENT_CODES
    return False


def _describe(exc: BaseException | None) -> str:
    """Short failure summary for messages: status and code or class, never request details."""
    if exc is None:
        return "unknown error"
    code = _error_code(exc)
    if code:
        return f"HTTP {_http_status(exc)} {code}"
    return type(exc).__name__


def _matches(exc: Exception, expected: Collection[str]) -> bool:
    return _error_code(exc) in expected or str(_http_status(exc)) in expected


class S3Store(AudioStore):
    """Objects in ``s3://bucket/prefix`` on any S3-compatible service.

    The boto3 client is made on first use in each process and never pickled, so
    the store can be shipped to Ray Serve replicas as a plain object.
    """

    def __init__(self, settings: Settings, bucket: str, prefix: str = "") -> None:
        self._settings = settings
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._reset_process_state()

    # --- process-local state ------------------------------------------------------

    def _reset_process_state(self) -> None:
        self._client_lock = threading.Lock()
        self._bucket_lock = threading.Lock()
        self._client_obj: Any = None
        self._client_pid: int | None = None
        self._bucket_ready = False
        self._conditional_put_supported = True

    def __getstate__(self) -> dict[str, Any]:
        return {"_settings": self._settings, "bucket": self.bucket, "prefix": self.prefix}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def _client(self) -> Any:
        # A client made before a fork shares its connection pool with the parent: remake it.
        with self._client_lock:
            if self._client_obj is None or self._client_pid != os.getpid():
                self._client_obj = self._new_client()
                self._client_pid = os.getpid()
                self._bucket_ready = False
            return self._client_obj

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": self._settings.s3_addressing_style},
            # botocore still presigns with SigV2 in some regions; v4 is what every S3-compatible
            # service and every current AWS region accepts.
            signature_version="s3v4",
            # One attempt per botocore call: _call owns retries, so the budget is ours to bound.
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=self._settings.store_timeout_s,
            read_timeout=self._settings.store_timeout_s,
            max_pool_connections=32,
            # botocore >= 1.36 adds CRC checksums by default, which several
            # S3-compatible servers reject; only send them where the API requires.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A private Session: the default one is not thread-safe to build clients from.
        return boto3.session.Session().client("s3", config=config)

    # --- retry loop ------------------------------------------------------------------

    def _backoff_delay(self, attempt: int) -> float:
        # Full jitter spreads replicas that failed together so they do not retry together.
        return random.uniform(0.0, min(_MAX_BACKOFF_S, self._settings.store_backoff_s * (2**attempt)))

    def _call(
        self,
        op: str,
        fn: Callable[[Any], T],
        *,
        expected: Collection[str] = (),
        attempts: int | None = None,
    ) -> T:
        """Run ``fn(client)`` with bounded retries on transient failures.

        ClientErrors whose code or status is in ``expected`` are re-raised for the
        caller to interpret; every other failure becomes StorageUnavailable.
        """
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

        total = self._settings.store_retries + 1 if attempts is None else attempts
        last: Exception | None = None
        for attempt in range(total):
            try:
                return fn(self._client())
            except (NoCredentialsError, PartialCredentialsError):
                raise StorageUnavailable(f"object storage unavailable: {op}: no credentials configured") from None
            except ClientError as exc:
                if _matches(exc, expected):
                    raise
                if _error_code(exc) == "NoSuchBucket":
                    self._bucket_ready = False  # re-check (and maybe re-create) on the next call
                    raise StorageUnavailable(
                        f"object storage unavailable: bucket {self.bucket!r} does not exist"
                    ) from exc
                if not _is_transient(exc):
                    raise StorageUnavailable(
                        f"object storage rejected {op}: {_describe(exc)}"
                    ) from exc
                last = exc
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                last = exc
            logger.warning("storage %s attempt %d/%d failed: %s", op, attempt + 1, total, _describe(last))
            if attempt + 1 < total:
                time.sleep(self._backoff_delay(attempt))
        raise StorageUnavailable(
            f"object storage unavailable: {op} failed after {total} attempt(s) ({_describe(last)})"
        ) from last

    # --- bucket ----------------------------------------------------------------------

    def _ensure_bucket(self, *, force: bool = False, attempts: int | None = None) -> None:
        if self._bucket_ready and not force:
            return
        from botocore.exceptions import ClientError

        with self._bucket_lock:
            if self._bucket_ready and not force:
                return
            try:
                self._call(
                    "head_bucket",
                    lambda c: c.head_bucket(Bucket=self.bucket),
                    expected=("404", "NoSuchBucket", "NotFound", "403", "AccessDenied"),
                    attempts=attempts,
                )
            except ClientError as exc:
                if _http_status(exc) == 403 or _error_code(exc) == "AccessDenied":
                    # Credentials may allow object calls without s3:ListBucket; let those decide.
                    pass
                elif not self._settings.create_bucket:
                    raise StorageUnavailable(
                        f"object storage unavailable: bucket {self.bucket!r} does not exist "
                        "and create_bucket is off"
                    ) from exc
                else:
                    self._create_bucket(attempts)
            self._bucket_ready = True

    def _create_bucket(self, attempts: int | None) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self._client().meta.region_name
        if region and region not in ("us-east-1", "aws-global"):
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._call(
                "create_bucket",
                lambda c: c.create_bucket(**kwargs),
                expected=("BucketAlreadyOwnedByYou", "BucketAlreadyExists"),
                attempts=attempts,
            )
            logger.info("created bucket %s", self.bucket)
        except ClientError as exc:
            if _error_code(exc) == "BucketAlreadyOwnedByYou":
                return  # another replica (or our own lost-response retry) made it
            # Some servers say "AlreadyExists" for our own bucket too: usable means fine.
            try:
                self._call("head_bucket", lambda c: c.head_bucket(Bucket=self.bucket), attempts=attempts)
            except StorageUnavailable:
                raise StorageUnavailable(
                    f"object storage unavailable: bucket name {self.bucket!r} is taken by another owner"
                ) from exc

    # --- helpers -----------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        return self.prefix + key

    def _part_size(self) -> int:
        return self._settings.s3_multipart_threshold_bytes

    def _object_args(self, key: str, content_type: str, metadata: dict[str, str]) -> dict[str, Any]:
        return {
            "Bucket": self.bucket,
            "Key": self._full_key(key),
            "ContentType": content_type,
            "CacheControl": CACHE_CONTROL,
            "Metadata": metadata,
        }

    def _put_single(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        args = self._object_args(key, content_type, metadata)
        self._call("put", lambda c: c.put_object(Body=data, **args))

    def _create_multipart(self, key: str, content_type: str, metadata: dict[str, str]) -> str:
        args = self._object_args(key, content_type, metadata)
        response = self._call("create_multipart_upload", lambda c: c.create_multipart_upload(**args))
        return str(response["UploadId"])

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        response = self._call(
            "upload_part",
            lambda c: c.upload_part(
                Bucket=self.bucket, Key=self._full_key(key), UploadId=upload_id, PartNumber=number, Body=body
            ),
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _complete_multipart(self, key: str, upload_id: str, parts: list[dict[str, Any]], size: int) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call(
                "complete_multipart_upload",
                lambda c: c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self._full_key(key),
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
                expected=("NoSuchUpload",),
            )
        except ClientError as exc:
            # A retry after a lost 200 finds the upload gone: it is done if the object is there.
            found = self.head(key)
            if found is None or found.size != size:
                raise StorageUnavailable(
                    f"object storage rejected complete_multipart_upload: {_describe(exc)}"
                ) from exc

    def _abort_multipart(self, key: str, upload_id: str) -> None:
        """Best effort: a leftover upload is invisible and a lifecycle rule can expire it."""
        from botocore.exceptions import ClientError

        try:
            self._call(
                "abort_multipart_upload",
                lambda c: c.abort_multipart_upload(Bucket=self.bucket, Key=self._full_key(key), UploadId=upload_id),
                expected=("NoSuchUpload", "404"),
            )
        except (StorageUnavailable, ClientError) as exc:
            logger.warning("could not abort multipart upload for %s: %s", key, _describe(exc))

    def _put_multipart(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        upload_id = self._create_multipart(key, content_type, metadata)
        try:
            size = self._part_size()
            parts = [
                self._upload_part(key, upload_id, number, data[offset : offset + size])
                for number, offset in enumerate(range(0, len(data), size), start=1)
            ]
            self._complete_multipart(key, upload_id, parts, len(data))
        except BaseException:
            self._abort_multipart(key, upload_id)
            raise

    def _stored_from_head(self, key: str, response: dict[str, Any]) -> StoredObject:
        metadata = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}
        metadata.pop(_WRITER_TOKEN_KEY, None)
        return StoredObject(
            key=key,
            size=int(response.get("ContentLength", 0)),
            content_type=response.get("ContentType") or DEFAULT_CONTENT_TYPE,
            metadata=metadata,
        )

    # --- public API ----------------------------------------------------------------------

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> StoredObject:
        key, data, content_type, meta = _checked_put(key, data, content_type, metadata)
        self._ensure_bucket()
        if len(data) > self._part_size():
            self._put_multipart(key, data, content_type, meta)
        else:
            self._put_single(key, data, content_type, meta)
        return StoredObject(key, len(data), content_type, meta)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        key = validate_key(key)
        self._ensure_bucket()
        try:
            # Reading the body inside the retried call: a connection cut mid-body retries too.
            return self._call(
                "get",
                lambda c: c.get_object(Bucket=self.bucket, Key=self._full_key(key))["Body"].read(),
                expected=("NoSuchKey", "404"),
            )
        except ClientError:
            raise NotFound(f"no stored object for key {key!r}") from None

    def head(self, key: str) -> StoredObject | None:
        key = validate_key(key)
        self._ensure_bucket()
        response = self._head_response(key)
        return None if response is None else self._stored_from_head(key, response)

    def _head_response(self, key: str) -> dict[str, Any] | None:
        """HEAD of a validated key; None if it does not exist."""
        from botocore.exceptions import ClientError

        try:
            return self._call(
                "head",
                lambda c: c.head_object(Bucket=self.bucket, Key=self._full_key(key)),
                expected=("404", "NoSuchKey", "NotFound"),
            )
        except ClientError:
            return None

    def delete(self, key: str) -> None:
        key = validate_key(key)
        self._ensure_bucket()
        self._call("delete", lambda c: c.delete_object(Bucket=self.bucket, Key=self._full_key(key)))

    def list_keys(self, prefix: str) -> list[str]:
        prefix = _validated_prefix(prefix)
        self._ensure_bucket()
        full_prefix = self._full_key(prefix)

        def listing(client: Any) -> list[str]:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
            return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

        # A transient failure mid-listing restarts it: partial listings are never returned.
        keys = self._call("list", listing)
        return sorted(k[len(self.prefix) :] for k in keys)

    def url(self, key: str) -> str:
        key = validate_key(key)
        if self._settings.cdn_base_url:
            return self._settings.cdn_base_url.rstrip("/") + "/" + self._full_key(key)
        from botocore.exceptions import NoCredentialsError, PartialCredentialsError

        try:
            # Signing is local computation: no request, so no retries needed.
            return str(
                self._client().generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": self._full_key(key)},
                    ExpiresIn=self._settings.presign_expiry_s,
                )
            )
        except (NoCredentialsError, PartialCredentialsError):
            raise StorageUnavailable("object storage unavailable: no credentials to sign URLs") from None

    def open_upload(self, key: str, content_type: str, metadata: dict[str, str] | None = None) -> Upload:
        return _S3Upload(
            self, validate_key(key), _validated_content_type(content_type), _normalized_metadata(metadata)
        )

    def check(self) -> None:
        # One attempt: readiness probes are retried by their caller, and must answer fast.
        self._ensure_bucket(force=True, attempts=1)

    def put_if_absent(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> bool:
        from botocore.exceptions import ClientError

        key, data, content_type, meta = _checked_put(key, data, content_type, metadata)
        self._ensure_bucket()
        if not self._conditional_put_supported:
            return self._put_if_absent_racy(key, data, content_type, meta)
        token = uuid.uuid4().hex
        args = self._object_args(key, content_type, {**meta, _WRITER_TOKEN_KEY: token})
        try:
            self._call(
                "put_if_absent",
                lambda c: c.put_object(Body=data, IfNoneMatch="*", **args),
                expected=("PreconditionFailed", "412", "NotImplemented", "501", "InvalidArgument", "InvalidRequest"),
            )
            return True
        except ClientError as exc:
            if _error_code(exc) == "PreconditionFailed" or _http_status(exc) == 412:
                # If an earlier attempt landed but its reply was lost, the object is ours.
                return self._written_by(key, token)
            logger.warning(
                "storage rejected conditional PUT (%s); falling back to HEAD+PUT, which is racy",
                _describe(exc),
            )
            self._conditional_put_supported = False
            return self._put_if_absent_racy(key, data, content_type, meta)

    def _written_by(self, key: str, token: str) -> bool:
        response = self._head_response(key)
        return response is not None and (response.get("Metadata") or {}).get(_WRITER_TOKEN_KEY) == token

    def _put_if_absent_racy(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> bool:
        # Only for servers without If-None-Match: two writers can both win the gap.
        if self.head(key) is not None:
            return False
        self._put_single(key, data, content_type, metadata)
        return True


class _S3Upload(Upload):
    """Buffers up to one part; becomes a multipart upload only once more than a part arrives."""

    def __init__(self, store: S3Store, key: str, content_type: str, metadata: dict[str, str]) -> None:
        super().__init__(key, content_type, metadata)
        self._store = store
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self._ensure_open()
        self._buffer += data
        self.size += len(data)
        part_size = self._store._part_size()
        # Strictly more than a part: a total of exactly one part still goes as a single PUT,
        # and the final part is never empty.
        while len(self._buffer) > part_size:
            self._send_part(bytes(self._buffer[:part_size]))
            del self._buffer[:part_size]

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            self._store._ensure_bucket()
            self._upload_id = self._store._create_multipart(self.key, self.content_type, self.metadata)
        part = self._store._upload_part(self.key, self._upload_id, len(self._parts) + 1, body)
        self._parts.append(part)

    def complete(self) -> StoredObject:
        self._ensure_open()
        self.closed = True
        try:
            if self._upload_id is None:
                self._store._ensure_bucket()
                self._store._put_single(self.key, bytes(self._buffer), self.content_type, self.metadata)
            else:
                self._send_part(bytes(self._buffer))
                self._store._complete_multipart(self.key, self._upload_id, self._parts, self.size)
        except BaseException:
            self._abort_remote()
            raise
        finally:
            self._buffer = bytearray()
        return StoredObject(self.key, self.size, self.content_type, self.metadata)

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._buffer = bytearray()
        self._abort_remote()

    def _abort_remote(self) -> None:
        if self._upload_id is not None:
            self._store._abort_multipart(self.key, self._upload_id)
            self._upload_id = None


# --------------------------------------------------------------------------- local


_LOCK_STRIPES = 64  # bounded lock-file count; unrelated keys rarely share a stripe


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: the directory entry is data too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    # Same directory as the target, so the final os.replace is an atomic rename.
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + _SIDECAR_SUFFIX)


def _write_durable_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a fresh temp file beside ``path``, fsynced; return the temp path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    with open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


class LocalStore(AudioStore):
    """Files under a root directory, served via HMAC-signed ``/media/{key}`` URLs.

    Visibility order. A key is visible exactly when its data file exists. Writes
    first put the sidecar (``{key}.meta.json``, atomically) in place, then rename
    the fully written, fsynced data file over the key; deletes remove the data
    file first, then the sidecar. So whenever exists() is true the sidecar is
    complete. Writers of one key serialise on a striped ``flock`` under
    ``{root}/.locks`` so a conditional create never pairs one writer's data with
    another's sidecar. Readers take no lock. A crash can leave a sidecar without
    data (invisible, overwritten by the next write) or a dot-named temp file
    (ignored by list_keys).
    """

    def __init__(self, settings: Settings, root: Path) -> None:
        self._settings = settings
        root = Path(root).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        # Absolute once, here: Ray replicas may run with a different working directory.
        self.root = root.resolve()
        self._signing_key_cache: bytes | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The signing key is re-read from its file or settings; no secret in the pickle twice.
        return {"_settings": self._settings, "root": self.root, "_signing_key_cache": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # --- paths and locks ------------------------------------------------------------

    def _path(self, key: str) -> Path:
        key = validate_key(key)
        path = self.root / key
        # Belt and braces against symlinks inside root pointing out of it.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidInput("key resolves outside the store", field="key")
        return path

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(exist_ok=True)
        stripe = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % _LOCK_STRIPES
        # Each acquisition opens its own file description, so flock excludes threads as well as processes.
        fd = os.open(lock_dir / f"{stripe:02d}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _commit(
        self, key: str, tmp: Path, content_type: str, metadata: dict[str, str], *, exclusive: bool
    ) -> bool:
        """Move a finished temp file under ``key`` (sidecar first); False if exclusive and taken."""
        path = self._path(key)
        sidecar = json.dumps({"content_type": content_type, "metadata": metadata}, sort_keys=True).encode()
        sidecar_tmp = _write_durable_temp(_sidecar_path(path), sidecar)
        try:
            with self._key_lock(key):
                if exclusive and path.exists():
                    return False
                os.replace(sidecar_tmp, _sidecar_path(path))
                if exclusive:
                    if not self._link_exclusive(tmp, path):
                        return False
                else:
                    os.replace(tmp, path)
                _fsync_dir(path.parent)
                return True
        finally:
            sidecar_tmp.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _link_exclusive(tmp: Path, path: Path) -> bool:
        try:
            # link() fails if the target exists: the create is atomic even without our lock.
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            # Filesystem without hard links: the key lock already made the exists-check safe.
            os.replace(tmp, path)
            return True

    # --- public API ------------------------------------------------------------------

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> StoredObject:
        return self._write(key, data, content_type, metadata, exclusive=False)[0]

    def put_if_absent(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> bool:
        return self._write(key, data, content_type, metadata, exclusive=True)[1]

    def _write(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None, *, exclusive: bool
    ) -> tuple[StoredObject, bool]:
        key, data, content_type, meta = _checked_put(key, data, content_type, metadata)
        path = self._path(key)
        try:
            tmp = _write_durable_temp(path, data)
            created = self._commit(key, tmp, content_type, meta, exclusive=exclusive)
        except OSError as exc:
            raise StorageUnavailable(f"local storage unavailable: {type(exc).__name__}: {exc.strerror}") from exc
        return StoredObject(key, len(data), content_type, meta), created

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no stored object for key {key!r}") from None

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        # Sidecar before data: the reverse of delete's order, so a racing delete yields None.
        content_type, metadata = self._read_sidecar(path)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        return StoredObject(key, stat.st_size, content_type, metadata)

    def _read_sidecar(self, path: Path) -> tuple[str, dict[str, str]]:
        try:
            raw = json.loads(_sidecar_path(path).read_bytes())
            return str(raw["content_type"]), {str(k): str(v) for k, v in raw["metadata"].items()}
        except (FileNotFoundError, NotADirectoryError):
            return DEFAULT_CONTENT_TYPE, {}
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("unreadable sidecar for %s; using defaults", path.name)
            return DEFAULT_CONTENT_TYPE, {}

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._key_lock(key):
            path.unlink(missing_ok=True)  # data first: the key disappears atomically
            _sidecar_path(path).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> list[str]:
        prefix = _validated_prefix(prefix)
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .locks and the like
            base = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if name.startswith(".") or name.endswith(_SIDECAR_SUFFIX):
                    continue  # temp files, the signing key, sidecars
                key = (base / name).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def url(self, key: str) -> str:
        key = validate_key(key)
        expires = int(time.time()) + self._settings.presign_expiry_s
        base = self._settings.public_base_url.rstrip("/")
        return f"{base}/media/{key}?expires={expires}&sig={self._signature(key, expires)}"

    def open_upload(self, key: str, content_type: str, metadata: dict[str, str] | None = None) -> Upload:
        path = self._path(key)
        return _LocalUpload(self, key, path, _validated_content_type(content_type), _normalized_metadata(metadata))

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"local storage unavailable: {self.root} is not a writable directory")

    # --- signed media URLs -------------------------------------------------------------

    def media_path(self, key: str) -> Path:
        """The file to serve for ``/media/{key}``; InvalidInput on a bad key, NotFound if absent."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"no stored object for key {key!r}")
        return path

    def verify_media_signature(self, key: str, expires: str | int, sig: str, now: float | None = None) -> None:
        """Raise Forbidden unless ``sig`` is this store's signature of ``key`` and ``expires`` is in the future."""
        expires_at = self._parsed_expiry(expires)
        if not isinstance(sig, str) or not sig or not isinstance(key, str):
            raise Forbidden("missing or malformed URL signature")
        expected = self._signature(key, expires_at).encode()
        if not hmac.compare_digest(expected, sig.encode("utf-8", "backslashreplace")):
            raise Forbidden("invalid URL signature")
        if (time.time() if now is None else now) > expires_at:
            raise Forbidden("URL has expired")

    @staticmethod
    def _parsed_expiry(expires: str | int) -> int:
        # Only the canonical decimal form: the signature covers exactly what url() wrote.
        if isinstance(expires, int) and not isinstance(expires, bool):
            return expires
        if isinstance(expires, str) and expires.isascii() and expires.isdigit() and str(int(expires)) == expires:
            return int(expires)
        raise Forbidden("missing or malformed URL expiry")

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self._signing_key(), f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()

    def _signing_key(self) -> bytes:
        if self._settings.url_signing_key is not None:
            return self._settings.url_signing_key.get_secret_value().encode()
        if self._signing_key_cache is None:
            self._signing_key_cache = self._load_or_create_signing_key()
        return self._signing_key_cache

    def _load_or_create_signing_key(self) -> bytes:
        path = self.root / ".signing-key"
        if not path.exists():
            self._create_signing_key(path)
        # A fallback O_EXCL writer may still be filling the file; wait briefly for content.
        for _ in range(50):
            text = path.read_text().strip()
            if text:
                return text.encode()
            time.sleep(0.02)
        raise StorageUnavailable(f"local storage unavailable: signing key file {path} is empty")

    @staticmethod
    def _create_signing_key(path: Path) -> None:
        """Publish a new random key, unless another process got there first (then keep theirs)."""
        tmp = _temp_path(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() publishes the complete file atomically and fails if one exists.
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                try:
                    os.write(fd, secrets.token_hex(32).encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
        finally:
            tmp.unlink(missing_ok=True)


class _LocalUpload(Upload):
    """Streams into a dot-named temp file beside the key; complete() renames it into place."""

    def __init__(
        self, store: LocalStore, key: str, path: Path, content_type: str, metadata: dict[str, str]
    ) -> None:
        super().__init__(key, content_type, metadata)
        self._store = store
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = _temp_path(path)
            self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed in complete/abort
        except OSError as exc:
            raise StorageUnavailable(f"local storage unavailable: {type(exc).__name__}: {exc.strerror}") from exc

    def write(self, data: bytes) -> None:
        self._ensure_open()
        try:
            self._file.write(data)
        except OSError as exc:
            raise StorageUnavailable(f"local storage unavailable: {type(exc).__name__}: {exc.strerror}") from exc
        self.size += len(data)

    def complete(self) -> StoredObject:
        self._ensure_open()
        self.closed = True
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._store._commit(self.key, self._tmp, self.content_type, self.metadata, exclusive=False)
        except OSError as exc:
            self._discard()
            raise StorageUnavailable(f"local storage unavailable: {type(exc).__name__}: {exc.strerror}") from exc
        except BaseException:
            self._discard()
            raise
        return StoredObject(self.key, self.size, self.content_type, self.metadata)

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._discard()

    def _discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- factory


_STORE_FORMS = "expected s3://bucket/prefix, file:///abs/dir, file:relative/dir or a plain path"


def _redacted(spec: str) -> str:
    """The store URL for error messages, with any user:password@ part masked."""
    parts = urlsplit(spec)
    if "@" in parts.netloc:
        return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
    return spec


def _s3_location(parts: SplitResult, spec: str) -> tuple[str, str]:
    if "@" in parts.netloc:
        raise ValueError(
            f"store URL {_redacted(spec)!r} must not embed credentials; boto3 reads them from its environment"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"store URL {spec!r} must not have a query or fragment")
    bucket = parts.netloc
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"store URL {spec!r}: {bucket!r} is not a valid S3 bucket name")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except InvalidInput as exc:
            raise ValueError(f"store URL {spec!r}: bad key prefix: {exc.message}") from None
    return bucket, prefix


def _file_root(parts: SplitResult, spec: str) -> Path:
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"store URL {_redacted(spec)!r} names host {parts.netloc!r}; "
            "use file:///abs/dir for an absolute path or file:relative/dir for a relative one"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"store URL {spec!r} must not have a query or fragment")
    path = unquote(parts.path)
    if not path:
        raise ValueError(f"store URL {spec!r} has no directory; {_STORE_FORMS}")
    return Path(path)


def open_store(settings: Settings) -> AudioStore:
    """The store ``settings.store`` names: ``s3://`` -> S3Store; ``file:`` or a path -> LocalStore."""
    spec = settings.store.strip()
    if not spec:
        raise ValueError(f"settings.store is empty; {_STORE_FORMS}")
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        bucket, prefix = _s3_location(parts, spec)
        return S3Store(settings, bucket, prefix)
    if scheme == "file":
        return LocalStore(settings, _file_root(parts, spec))
    if scheme == "":
        return LocalStore(settings, Path(spec))
    raise ValueError(f"unsupported store URL scheme {parts.scheme!r} in {_redacted(spec)!r}; {_STORE_FORMS}")
