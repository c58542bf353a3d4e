"""LocalStore: files under a directory, served through HMAC-signed /media URLs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tts_engine.errors import Forbidden, InvalidInput, NotFound, StorageUnavailable
from tts_engine.settings import Settings
from storage.base import (
    AudioStore,
    DEFAULT_CONTENT_TYPE,
    PROBE_PREFIX,
    StoredObject,
    Upload,
    _SIDECAR_SUFFIX,
    _checked_put,
    _normalized_metadata,
    _validated_content_type,
    _validated_prefix,
    logger,
    validate_key,
)


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


def _make_dirs_below(root: Path, directory: Path) -> None:
    """mkdir ``directory`` and its parents up to, not including, ``root``: if the store's own
    directory is gone this fails instead of silently creating a new, empty store."""
    for part in reversed([directory, *directory.parents]):
        if part == root or not part.is_relative_to(root):
            continue
        part.mkdir(exist_ok=True)  # no parents=True: a missing root raises FileNotFoundError


def _write_durable_temp(path: Path, data: bytes, root: Path) -> Path:
    """Write ``data`` to a fresh temp file beside ``path``, fsynced; return the temp path."""
    _make_dirs_below(root, path.parent)
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

    def __init__(self, settings: Settings, root: Path, create: bool = True) -> None:
        """``create``: make the directory if missing (application start-up only; replicas opened
        later pass False, so a store directory that disappears is an outage, not a new empty store)."""
        self._settings = settings
        root = Path(root).expanduser()
        if create:
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

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(f"local storage unavailable: the store directory {self.root} is missing")

    def _path(self, key: str) -> Path:
        key = validate_key(key)
        self._require_root()
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
        sidecar_tmp = _write_durable_temp(_sidecar_path(path), sidecar, self.root)
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
            tmp = _write_durable_temp(path, data, self.root)
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
        try:
            with self._key_lock(key):
                path.unlink(missing_ok=True)  # data first: the key disappears atomically
                _sidecar_path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"local storage unavailable: {type(exc).__name__}: {exc.strerror}") from exc

    def list_keys(self, prefix: str) -> list[str]:
        prefix = _validated_prefix(prefix)
        self._require_root()
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
        """Write, fsync and delete a probe file: permission bits say nothing to root, and nothing
        about a read-only mount or a full disk."""
        self._require_root()
        probe = self.root / f"{PROBE_PREFIX}-{uuid.uuid4().hex}"
        try:
            with open(probe, "xb") as f:
                f.write(b"probe")
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
        except OSError as exc:
            with contextlib.suppress(OSError):   # on a read-only mount even this unlink fails
                probe.unlink(missing_ok=True)
            raise StorageUnavailable(
                f"local storage unavailable: {self.root} does not take writes ({type(exc).__name__}: {exc.strerror})"
            ) from exc

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
            try:
                self._create_signing_key(path)
            except OSError as exc:
                raise StorageUnavailable(f"local storage unavailable: cannot create the URL signing key "
                                         f"({type(exc).__name__}: {exc.strerror})") from exc
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
            _make_dirs_below(store.root, path.parent)
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
