"""The filesystem steps LocalStore's visibility order is built from.

Durable temp files beside their target, atomic publication (rename, or a hard link that refuses
to overwrite), fsync of the directory entry, striped per-key ``flock`` locks, and the one way an
OSError becomes StorageUnavailable. Kept apart so ``local.py`` reads as the protocol (sidecar
first, data last); ``media_urls.py`` names its signing key's temp file the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.base import SIDECAR_SUFFIX
from tts_engine.errors import StorageUnavailable

LOCK_STRIPES = 64  # bounded lock-file count; unrelated keys rarely share a stripe


def unavailable(exc: OSError) -> StorageUnavailable:
    """The StorageUnavailable for a failed filesystem call (raise it ``from exc``)."""
    return StorageUnavailable(f"local storage unavailable: {type(exc).__name__}: {exc.strerror}")


def fsync_dir(path: Path) -> None:
    """Make a rename durable: the directory entry is data too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """A fresh dot-named temp file name beside ``path`` (list_keys skips dot-names)."""
    # Same directory as the target, so the final os.replace is an atomic rename.
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")


def sidecar_path(path: Path) -> Path:
    """Where the content type and metadata of the object at ``path`` are kept."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def make_dirs_below(root: Path, directory: Path) -> None:
    """mkdir ``directory`` and its parents up to, not including, ``root``: if the store's own
    directory is gone this fails instead of silently creating a new, empty store."""
    for part in reversed([directory, *directory.parents]):
        if part == root or not part.is_relative_to(root):
            continue
        part.mkdir(exist_ok=True)  # no parents=True: a missing root raises FileNotFoundError


def write_durable_temp(path: Path, data: bytes, root: Path) -> Path:
    """Write ``data`` to a fresh temp file beside ``path``, fsynced; return the temp path."""
    make_dirs_below(root, path.parent)
    tmp = temp_path(path)
    with open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def link_exclusive(tmp: Path, path: Path) -> bool:
    """Publish ``tmp`` as ``path`` unless ``path`` exists; True if published.

    Call under the key's lock: on a filesystem without hard links this falls back to a rename,
    which only the lock keeps from overwriting a racing writer."""
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


@contextmanager
def key_lock(root: Path, key: str) -> Iterator[None]:
    """Exclusive lock for writers of ``key``: one of LOCK_STRIPES ``flock`` files in ``root/.locks``."""
    lock_dir = root / ".locks"
    lock_dir.mkdir(exist_ok=True)
    stripe = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_STRIPES
    # Each acquisition opens its own file description, so flock excludes threads as well as processes.
    fd = os.open(lock_dir / f"{stripe:02d}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
