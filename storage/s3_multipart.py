"""Multipart writes to S3: objects larger than one part, and streaming uploads.

S3 takes one PUT of at most a few GiB, and a stream's size is unknown until it ends, so both a
large ``put`` and every ``open_upload`` go through CreateMultipartUpload / UploadPart /
CompleteMultipartUpload. Nothing is visible under the key until the upload completes, and a
failed upload is aborted. Part size is ``settings.s3_multipart_threshold_bytes``.
"""

from __future__ import annotations

from typing import Any

from storage.base import Upload, logger
from storage.s3_connection import S3Connection
from storage.s3_errors import describe
from tts_engine.errors import StorageUnavailable


class S3Multipart(S3Connection):
    """The multipart-upload calls, on top of the connection; the base of S3Store."""

    def _part_size(self) -> int:
        return self._settings.s3_multipart_threshold_bytes

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
            self._ensure_bucket()
            found = self._head_response(key)
            if found is None or int(found.get("ContentLength", 0)) != size:
                raise StorageUnavailable(
                    f"object storage rejected complete_multipart_upload: {describe(exc)}"
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
            logger.warning("could not abort multipart upload for %s: %s", key, describe(exc))

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


class S3Upload(Upload):
    """Buffers up to one part; becomes a multipart upload only once more than a part arrives."""

    def __init__(self, store: S3Multipart, key: str, content_type: str, metadata: dict[str, str]) -> None:
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

    def _finish(self) -> None:
        try:
            if self._upload_id is None:
                self._store._ensure_bucket()
                self._store._put_single(self.key, bytes(self._buffer), self.content_type, self.metadata)
            else:
                self._send_part(bytes(self._buffer))
                self._store._complete_multipart(self.key, self._upload_id, self._parts, self.size)
        finally:
            self._buffer = bytearray()

    def _discard(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            self._store._abort_multipart(self.key, self._upload_id)
            self._upload_id = None
