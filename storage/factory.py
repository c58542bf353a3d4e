"""open_store: the store settings.store names (s3:// or a local directory)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from storage.base import (
    BUCKET_RE,
    AudioStore,
    validate_key,
)
from storage.local import LocalStore
from storage.s3 import S3Store
from tts_engine.errors import InvalidInput
from tts_engine.settings import Settings

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
    if not BUCKET_RE.fullmatch(bucket) or ".." in bucket:
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


def open_store(settings: Settings, create: bool = False) -> AudioStore:
    """The store ``settings.store`` names: ``s3://`` -> S3Store; ``file:`` or a path -> LocalStore.
    ``create`` makes a missing local directory: only at application start-up (see LocalStore)."""
    spec = settings.store.strip()
    if not spec:
        raise ValueError(f"settings.store is empty; {_STORE_FORMS}")
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        bucket, prefix = _s3_location(parts, spec)
        return S3Store(settings, bucket, prefix)
    if scheme == "file":
        return LocalStore(settings, _file_root(parts, spec), create=create)
    if scheme == "":
        return LocalStore(settings, Path(spec), create=create)
    raise ValueError(f"unsupported store URL scheme {parts.scheme!r} in {_redacted(spec)!r}; {_STORE_FORMS}")


def create_store(settings: Settings) -> str:
    """Application start-up: make a local store's directory and return the store spec every replica
    should open (a local path made absolute, so replicas with another working directory agree)."""
    store = open_store(settings, create=True)
    if isinstance(store, LocalStore):
        store.url("probe")  # the URL signing key is made now, not by the first request
        return f"file://{store.root}"
    return settings.store
