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

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tts_engine.errors import InvalidInput

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Keys are content-addressed, so an object never changes once written.
CACHE_CONTROL = "public, max-age=31536000, immutable"
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_KEY_RE = re.compile(r"[A-Za-z0-9._/-]+")
_MAX_KEY_LEN = 1024  # S3's limit, applied to both backends so keys stay portable
# Leaves room for the ".{name}.tmp-{32 hex}" temp name within a 255-byte file name.
_MAX_SEGMENT_LEN = 200
SIDECAR_SUFFIX = ".meta.json"
_META_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_MAX_METADATA_BYTES = 2048  # S3's limit on user metadata
# Internal marker put_if_absent uses to recognise its own write after a retry.
WRITER_TOKEN_KEY = "voxserve-writer-token"
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Readiness probes write here: a dot segment is never a valid key, so no object can collide.
PROBE_PREFIX = ".probe"


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
    if key.endswith(SIDECAR_SUFFIX):
        raise InvalidInput(f"key must not end with {SIDECAR_SUFFIX!r} (reserved)", field="key")
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


def validated_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key-shaped string that may end in '/' or mid-segment."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def validated_content_type(content_type: str) -> str:
    if (
        not isinstance(content_type, str)
        or not content_type
        or len(content_type) > 255
        or any(not (32 <= ord(c) < 127) for c in content_type)
    ):
        raise InvalidInput("content_type must be 1-255 printable ASCII characters", field="content_type")
    return content_type


def normalized_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
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
        if lowered == WRITER_TOKEN_KEY:
            raise InvalidInput(f"metadata key {name!r} is reserved", field="metadata")
        if any(not (32 <= ord(c) < 127) for c in value):
            raise InvalidInput(f"metadata value for {name!r} must be printable ASCII", field="metadata")
        if lowered in out:
            raise InvalidInput(f"metadata key {name!r} repeats case-insensitively", field="metadata")
        out[lowered] = value
    if sum(len(k) + len(v) for k, v in out.items()) > _MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata exceeds {_MAX_METADATA_BYTES} bytes", field="metadata")
    return out


def checked_put(
    key: str, data: bytes, content_type: str, metadata: dict[str, str] | None
) -> tuple[str, bytes, str, dict[str, str]]:
    """The arguments of a write, validated and normalized (both backends, every write path)."""
    return validate_key(key), _as_bytes(data), validated_content_type(content_type), normalized_metadata(metadata)


def _as_bytes(data: bytes) -> bytes:
    # botocore rejects memoryview bodies; bytearray is fine but copying keeps one code path.
    return data if isinstance(data, bytes) else bytes(data)


# --------------------------------------------------------------------------- interface


class Upload(ABC):
    """A streaming write to one key. Nothing is visible under the key until complete().

    Use as a context manager: a clean exit completes, an exception aborts. Not
    thread-safe: one writer per Upload. Backends implement write(), _finish() and
    _discard(); the complete/abort bookkeeping below is the same for all of them.
    """

    def __init__(self, key: str, content_type: str, metadata: dict[str, str]) -> None:
        self.key = key
        self.content_type = content_type
        self.metadata = metadata
        self.size = 0
        self.closed = False

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    def complete(self) -> StoredObject:
        """Make the object visible under the key. Any failure discards the upload, nothing shows."""
        self._ensure_open()
        self.closed = True
        try:
            self._finish()
        except BaseException:
            self._discard()
            raise
        return StoredObject(self.key, self.size, self.content_type, self.metadata)

    def abort(self) -> None:
        """Discard what was written; a no-op once completed or aborted."""
        if self.closed:
            return
        self.closed = True
        self._discard()

    @abstractmethod
    def _finish(self) -> None:
        """Backend part of complete(): publish everything written under the key."""

    @abstractmethod
    def _discard(self) -> None:
        """Backend part of abort() and of a failed complete(): drop what was written."""

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
