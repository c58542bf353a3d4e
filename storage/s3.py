"""S3Store: objects in s3://bucket/prefix on any S3-compatible service (boto3).

The AudioStore operations only; how S3 is called (client, retries, bucket) is in
``s3_connection.py``, multipart writes and streaming uploads in ``s3_multipart.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

from storage.base import (
    DEFAULT_CONTENT_TYPE,
    PROBE_PREFIX,
    WRITER_TOKEN_KEY,
    AudioStore,
    StoredObject,
    Upload,
    checked_put,
    logger,
    normalized_metadata,
    validate_key,
    validated_content_type,
    validated_prefix,
)
from storage.s3_errors import describe, error_code, http_status
from storage.s3_multipart import S3Multipart, S3Upload
from tts_engine.errors import NotFound, StorageUnavailable


class S3Store(S3Multipart, AudioStore):
    """Objects in ``s3://bucket/prefix`` on any S3-compatible service.

    Pickles without its boto3 client (see S3Connection), so it ships to Ray Serve
    replicas as a plain object.
    """

    def _reset_process_state(self) -> None:
        super()._reset_process_state()
        self._conditional_put_supported = True

    def _stored_from_head(self, key: str, response: dict[str, Any]) -> StoredObject:
        metadata = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}
        metadata.pop(WRITER_TOKEN_KEY, None)
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
        key, data, content_type, meta = checked_put(key, data, content_type, metadata)
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

    def delete(self, key: str) -> None:
        key = validate_key(key)
        self._ensure_bucket()
        self._call("delete", lambda c: c.delete_object(Bucket=self.bucket, Key=self._full_key(key)))

    def list_keys(self, prefix: str) -> list[str]:
        prefix = validated_prefix(prefix)
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
        return S3Upload(
            self, validate_key(key), validated_content_type(content_type), normalized_metadata(metadata)
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

        key, data, content_type, meta = checked_put(key, data, content_type, metadata)
        self._ensure_bucket()
        if not self._conditional_put_supported:
            return self._put_if_absent_racy(key, data, content_type, meta)
        token = uuid.uuid4().hex
        args = self._object_args(key, content_type, {**meta, WRITER_TOKEN_KEY: token})
        try:
            self._call(
                "put_if_absent",
                lambda c: c.put_object(Body=data, IfNoneMatch="*", **args),
                expected=("PreconditionFailed", "412", "NotImplemented", "501", "InvalidArgument", "InvalidRequest"),
            )
            return True
        except ClientError as exc:
            if error_code(exc) == "PreconditionFailed" or http_status(exc) == 412:
                # If an earlier attempt landed but its reply was lost, the object is ours.
                return self._written_by(key, token)
            logger.warning(
                "storage rejected conditional PUT (%s); falling back to HEAD+PUT, which is racy",
                describe(exc),
            )
            self._conditional_put_supported = False
            return self._put_if_absent_racy(key, data, content_type, meta)

    def _written_by(self, key: str, token: str) -> bool:
        response = self._head_response(key)
        return response is not None and (response.get("Metadata") or {}).get(WRITER_TOKEN_KEY) == token

    def _put_if_absent_racy(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> bool:
        # Only for servers without If-None-Match: two writers can both win the gap.
        if self.head(key) is not None:
            return False
        self._put_single(key, data, content_type, metadata)
        return True

