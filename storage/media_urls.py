"""MediaSigner: the HMAC-signed ``/media/{key}`` URLs through which LocalStore's files are served.

A local directory has no presigning service, so LocalStore signs its own URLs: ``expires`` and an
HMAC-SHA256 of ``{key}:{expires}``. The key comes from ``settings.url_signing_key`` or, when
unset, from ``{root}/.signing-key``, made once and shared by every process on that directory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Any

from storage.local_files import temp_path
from tts_engine.errors import Forbidden, StorageUnavailable
from tts_engine.settings import Settings


class MediaSigner:
    """Signs and verifies ``/media`` URLs for the store directory ``root``."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self._settings = settings
        self._root = root
        self._key_cache: bytes | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The signing key is re-read from its file or settings; no secret in the pickle twice.
        return {"_settings": self._settings, "_root": self._root, "_key_cache": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def url(self, key: str) -> str:
        """A URL for a validated ``key`` that stays good for ``settings.presign_expiry_s``."""
        expires = int(time.time()) + self._settings.presign_expiry_s
        base = self._settings.public_base_url.rstrip("/")
        return f"{base}/media/{key}?expires={expires}&sig={self._signature(key, expires)}"

    def verify(self, key: str, expires: str | int, sig: str, now: float | None = None) -> None:
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
        if self._key_cache is None:
            self._key_cache = self._load_or_create_signing_key()
        return self._key_cache

    def _load_or_create_signing_key(self) -> bytes:
        path = self._root / ".signing-key"
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
        tmp = temp_path(path)
        _write_new_key(tmp)
        try:
            # link() publishes the complete file atomically and fails if one exists.
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # no hard links here: create it in place, still only if absent
            try:
                _write_new_key(path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)


def _write_new_key(path: Path) -> None:
    """A fresh random key in a file that must not exist yet (FileExistsError otherwise), on disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
