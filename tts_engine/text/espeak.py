"""espeak-ng, the phonemizer Piper voices were trained on, behind one process-wide lock.

espeak-ng keeps global state (one initialization, one current voice), so every call goes
through ``espeak_clauses``: the Piper frontend reads phonemes with it and Kokoro's English G2P
(``kokoro_en.py``) rewrites its IPA. ``phonemize`` returns the phonemes in Piper's own
conventions (clause punctuation kept, NFD code points), as Piper voices expect them.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path

__all__ = ["CLAUSE_TERMINATORS", "espeak_clauses", "phonemize", "strip_language_flags"]

# espeak-ng keeps global state: one initialization per process, and one caller
# at a time between choosing a voice and reading phonemes with it.
_ESPEAK_LOCK = threading.Lock()
_espeak_ready = False

_LANGUAGE_SWITCH = re.compile(r"\([^)]+\)")
# Terminators that end a clause but not a sentence; Piper follows them with a space.
CLAUSE_TERMINATORS: tuple[str, ...] = (",", ":", ";")


def espeak_clauses(text: str, espeak_voice: str) -> list[tuple[str, str, bool]]:
    """espeak-ng's reading of ``text``: (phonemes, terminator, ends a sentence) per clause."""
    global _espeak_ready
    import piper
    from piper import espeakbridge

    with _ESPEAK_LOCK:
        if not _espeak_ready:
            espeakbridge.initialize(str(Path(piper.__file__).parent / "espeak-ng-data"))
            _espeak_ready = True
        # Set on every call (about 0.1 ms): other code may have switched voices.
        try:
            espeakbridge.set_voice(espeak_voice)
        except RuntimeError as exc:
            raise RuntimeError(f"espeak-ng has no voice {espeak_voice!r}") from exc
        return espeakbridge.get_phonemes(text)


def strip_language_flags(phonemes: str) -> str:
    """espeak's phonemes without its "(en)" style flags: they mark foreign words, not sounds."""
    return _LANGUAGE_SWITCH.sub("", phonemes)


def _clause_phonemes(phonemes: str, terminator: str) -> list[str]:
    phonemes = strip_language_flags(phonemes) + terminator
    if terminator in CLAUSE_TERMINATORS:
        phonemes += " "
    # NFD splits accented symbols into base + combining mark, as Piper's maps expect.
    return list(unicodedata.normalize("NFD", phonemes))


def phonemize(text: str, espeak_voice: str) -> list[list[str]]:
    """espeak-ng phonemes for ``text``, one list per sentence espeak finds; empty ones left out."""
    if not text.strip():
        return []
    sentences: list[list[str]] = []
    current: list[str] = []
    for phonemes, terminator, end_of_sentence in espeak_clauses(text, espeak_voice):
        current.extend(_clause_phonemes(phonemes, terminator))
        if end_of_sentence:
            sentences.append(current)
            current = []
    sentences.append(current)
    return [s for s in sentences if s]
