"""LocalStore: files under a directory, served through HMAC-signed /media URLs.

The store operations and the order that keeps a half-written key invisible; the filesystem
steps are in ``local_files.py`` and URL signing in ``media_urls.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

from storage.base import (
    DEFAULT_CONTENT_TYPE,
    PROBE_PREFIX,
    SIDECAR_SUFFIX,
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
from storage.local_files import (
    fsync_dir,
    key_lock,
    link_exclusive,
    make_dirs_below,
    sidecar_path,
    temp_path,
    unavailable,
    write_durable_temp,
)
from storage.media_urls import MediaSigner
from tts_engine.errors import InvalidInput, NotFound, StorageUnavailable
from tts_engine.settings import Settings


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
        self._signer = MediaSigner(settings, self.root)

    # --- paths and commits ----------------------------------------------------------

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

    def _commit(
        self, key: str, tmp: Path, content_type: str, metadata: dict[str, str], *, exclusive: bool
    ) -> bool:
        """Move a finished temp file under ``key`` (sidecar first); False if exclusive and taken."""
        path = self._path(key)
        sidecar = json.dumps({"content_type": content_type, "metadata": metadata}, sort_keys=True).encode()
        sidecar_tmp = write_durable_temp(sidecar_path(path), sidecar, self.root)
        try:
            with key_lock(self.root, key):
                if exclusive and path.exists():
                    return False
                os.replace(sidecar_tmp, sidecar_path(path))
                if exclusive:
                    if not link_exclusive(tmp, path):
                        return False
                else:
                    os.replace(tmp, path)
                fsync_dir(path.parent)
                return True
        finally:
            sidecar_tmp.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)

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
        key, data, content_type, meta = checked_put(key, data, content_type, metadata)
        path = self._path(key)
        try:
            tmp = write_durable_temp(path, data, self.root)
            created = self._commit(key, tmp, content_type, meta, exclusive=exclusive)
        except OSError as exc:
            raise unavailable(exc) from exc
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
            raw = json.loads(sidecar_path(path).read_bytes())
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
            with key_lock(self.root, key):
                path.unlink(missing_ok=True)  # data first: the key disappears atomically
                sidecar_path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise unavailable(exc) from exc

    def list_keys(self, prefix: str) -> list[str]:
        prefix = validated_prefix(prefix)
        self._require_root()
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .locks and the like
            base = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if name.startswith(".") or name.endswith(SIDECAR_SUFFIX):
                    continue  # temp files, the signing key, sidecars
                key = (base / name).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def url(self, key: str) -> str:
        return self._signer.url(validate_key(key))

    def open_upload(self, key: str, content_type: str, metadata: dict[str, str] | None = None) -> Upload:
        path = self._path(key)
        return _LocalUpload(self, key, path, validated_content_type(content_type), normalized_metadata(metadata))

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

    # --- serving /media ----------------------------------------------------------------

    def media_path(self, key: str) -> Path:
        """The file to serve for ``/media/{key}``; InvalidInput on a bad key, NotFound if absent."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"no stored object for key {key!r}")
        return path

    def verify_media_signature(self, key: str, expires: str | int, sig: str, now: float | None = None) -> None:
        """Raise Forbidden unless ``sig`` is this store's signature of ``key`` and ``expires`` is in the future."""
        self._signer.verify(key, expires, sig, now)


class _LocalUpload(Upload):
    """Streams into a dot-named temp file beside the key; complete() renames it into place."""

    def __init__(
        self, store: LocalStore, key: str, path: Path, content_type: str, metadata: dict[str, str]
    ) -> None:
        super().__init__(key, content_type, metadata)
        self._store = store
        try:
            make_dirs_below(store.root, path.parent)
            self._tmp = temp_path(path)
            self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed in complete/abort
        except OSError as exc:
            raise unavailable(exc) from exc

    def write(self, data: bytes) -> None:
        self._ensure_open()
        try:
            self._file.write(data)
        except OSError as exc:
            raise unavailable(exc) from exc
        self.size += len(data)

    def _finish(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._store._commit(self.key, self._tmp, self.content_type, self.metadata, exclusive=False)
        except OSError as exc:
            raise unavailable(exc) from exc

    def _discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)
