"""S3Store: objects in s3://bucket/prefix on any S3-compatible service (boto3)."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

from tts_engine.errors import NotFound, StorageUnavailable
from tts_engine.settings import Settings
from storage.base import (
    AudioStore,
    CACHE_CONTROL,
    PROBE_PREFIX,
    DEFAULT_CONTENT_TYPE,
    StoredObject,
    T,
    Upload,
    _WRITER_TOKEN_KEY,
    _checked_put,
    _normalized_metadata,
    _validated_content_type,
    _validated_prefix,
    logger,
    validate_key,
)


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
                    # A shared cache must not keep the object past the URL's own expiry.
                    Params={"Bucket": self.bucket, "Key": self._full_key(key),
                            "ResponseCacheControl": f"private, max-age={self._settings.presign_expiry_s}"},
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
        # Reachable is not writable (a read-only policy, a full quota): write and delete a probe.
        probe = self._full_key(f"{PROBE_PREFIX}/{uuid.uuid4().hex}")
        self._call("probe put", lambda c: c.put_object(Bucket=self.bucket, Key=probe, Body=b"probe"), attempts=1)
        self._call("probe delete", lambda c: c.delete_object(Bucket=self.bucket, Key=probe), attempts=1)

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
