"""S3Connection: one bucket, reached through a per-process boto3 client with bounded retries.

The base of :class:`~storage.s3.S3Store`. Everything about *calling* S3 lives here: building the
client (fork-safe, never pickled), the retry loop that turns every failure into
StorageUnavailable, making sure the bucket exists, and the few object primitives that both
plain writes and multipart uploads use. The store operations themselves are in ``s3.py``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from storage.base import CACHE_CONTROL, T, logger
from storage.s3_errors import describe, error_code, http_status, is_transient, matches
from tts_engine.errors import StorageUnavailable
from tts_engine.settings import Settings

MAX_BACKOFF_S = 5.0  # caps one sleep, so retries=10 cannot stall a request for minutes


class S3Connection:
    """Objects in ``s3://bucket/prefix``: the client, retries and bucket set-up for one bucket.

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
        return random.uniform(0.0, min(MAX_BACKOFF_S, self._settings.store_backoff_s * (2**attempt)))

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
        from botocore.exceptions import (
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        total = self._settings.store_retries + 1 if attempts is None else attempts
        last: Exception | None = None
        for attempt in range(total):
            try:
                return fn(self._client())
            except (NoCredentialsError, PartialCredentialsError):
                raise StorageUnavailable(f"object storage unavailable: {op}: no credentials configured") from None
            except ClientError as exc:
                if matches(exc, expected):
                    raise
                if error_code(exc) == "NoSuchBucket":
                    self._bucket_ready = False  # re-check (and maybe re-create) on the next call
                    raise StorageUnavailable(
                        f"object storage unavailable: bucket {self.bucket!r} does not exist"
                    ) from exc
                if not is_transient(exc):
                    raise StorageUnavailable(
                        f"object storage rejected {op}: {describe(exc)}"
                    ) from exc
                last = exc
            except Exception as exc:
                if not is_transient(exc):
                    raise
                last = exc
            logger.warning("storage %s attempt %d/%d failed: %s", op, attempt + 1, total, describe(last))
            if attempt + 1 < total:
                time.sleep(self._backoff_delay(attempt))
        raise StorageUnavailable(
            f"object storage unavailable: {op} failed after {total} attempt(s) ({describe(last)})"
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
                if http_status(exc) == 403 or error_code(exc) == "AccessDenied":
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
            if error_code(exc) == "BucketAlreadyOwnedByYou":
                return  # another replica (or our own lost-response retry) made it
            # Some servers say "AlreadyExists" for our own bucket too: usable means fine.
            try:
                self._call("head_bucket", lambda c: c.head_bucket(Bucket=self.bucket), attempts=attempts)
            except StorageUnavailable:
                raise StorageUnavailable(
                    f"object storage unavailable: bucket name {self.bucket!r} is taken by another owner"
                ) from exc

    # --- object primitives (plain writes and multipart uploads) --------------------------

    def _full_key(self, key: str) -> str:
        return self.prefix + key

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
