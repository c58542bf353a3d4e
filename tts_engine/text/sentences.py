"""Normalized text cut into sentences short enough for the voice model, at the ends a reader hears.

A full stop ends a sentence unless it belongs to an abbreviation ("Dr.", "e.g."), an initial
("J. R. R.") or a number sign ("No. 5"); an ellipsis ends one only before a capital; CJK stops
always do. A sentence over ``max_chars`` is cut at clause marks, then at spaces (or between CJK
characters). Every split method (``split_methods.py``) and both model families build on this;
``sentence_spans`` is public because the streaming buffer (``incremental.py``) decides sentence
ends the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from tts_engine.text.language import script_of

__all__ = ["clauses", "ends_with_clause_mark", "pack_clauses", "sentence_spans", "split_sentences"]

# Words whose trailing full stop is part of the abbreviation, not a sentence end.
_NON_FINAL_ABBREVIATIONS = frozenset(
    """Dr Mr Mrs Ms Prof St Mt Jr Sr Rev Gen Capt Lt Sgt Col Gov Sen Rep vs e.g i.e approx cf
    Fig fig Vol vol pp Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec""".split()
)
_CLOSING = "\"')]}\u00bb\u201d\u2019\u300d\u300f\uff09"
_LATIN_END = re.compile(rf"(?:\.\.\.|[.!?]+)[{re.escape(_CLOSING)}]*(?=\s|$)")
_CJK_END = re.compile(rf"[\u3002\uff01\uff1f]+[{re.escape(_CLOSING)}]*")
# Clause ends where a long sentence may be cut. Latin punctuation needs a
# following space so "1,234" and "3:30" stay whole.
_CLAUSE_END = re.compile(r"[,;:](?=\s)|[\u2014\u2013]|[\uff0c\u3001\uff1b\uff1a]")
_TRAILING_WORD = re.compile(r"(\S+)$")


def _is_cjk(ch: str) -> bool:
    return script_of(ch) in ("han", "kana", "hangul") or 0x3000 <= ord(ch) <= 0x303F


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether a Latin terminator really ends a sentence (not "Dr.", "J.", "e.g.")."""
    mark = match[0].rstrip(_CLOSING)
    following = text[match.end():].lstrip()
    if mark == "...":
        # An ellipsis mid-sentence ("wait... what") is a pause, not an end.
        return not following or not following[0].islower()
    if mark != ".":
        return True
    # Abbreviations are short; a bounded window keeps long texts linear.
    word_match = _TRAILING_WORD.search(text[max(0, match.start() - 40) : match.start()])
    word = word_match[1].lstrip("\"'([{") if word_match else ""
    if word in _NON_FINAL_ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. R. R. Tolkien"
    if word in ("No", "no") and following[:1].isdigit():
        return False
    if word == "etc" and following[:1].islower():
        return False
    return True


def sentence_spans(text: str) -> Iterator[str]:
    """``text`` cut after each real sentence end, whitespace kept; the last span is what follows
    the last end (possibly empty), so the spans join back to ``text``."""
    start = 0
    ends = sorted(
        [m for m in _LATIN_END.finditer(text) if _ends_sentence(text, m)] + list(_CJK_END.finditer(text)),
        key=lambda m: m.end(),
    )
    for end in ends:
        if end.end() > start:
            yield text[start : end.end()]
            start = end.end()
    yield text[start:]


def _break_before(text: str, limit: int) -> tuple[int, int] | None:
    """(cut, resume) of the last place at or before ``limit`` a line may break, if any."""
    for i in range(min(limit, len(text) - 1), 0, -1):
        if text[i] == " ":
            return i, i + 1
        # CJK is written without spaces; between two such characters is a word edge.
        if _is_cjk(text[i - 1]) and _is_cjk(text[i]):
            return i, i
    return None


def _wrapped(text: str, max_chars: int) -> list[str]:
    """Cut at spaces (or between CJK characters); a single over-long word stays whole."""
    pieces: list[str] = []
    while len(text) > max_chars:
        found = _break_before(text, max_chars)
        if found is None:
            next_space = text.find(" ", max_chars)
            if next_space == -1:
                break
            found = (next_space, next_space + 1)
        cut, resume = found
        pieces.append(text[:cut].strip())
        text = text[resume:].strip()
    pieces.append(text)
    return [p for p in pieces if p]


def clauses(sentence: str) -> list[str]:
    """The sentence cut after each clause mark, each piece keeping its mark."""
    pieces, start = [], 0
    for mark in _CLAUSE_END.finditer(sentence):
        pieces.append(sentence[start : mark.end()])
        start = mark.end()
    pieces.append(sentence[start:])
    return [p for p in pieces if p.strip()]


def ends_with_clause_mark(piece: str) -> bool:
    """Whether ``piece`` ends at a clause mark (the rest of its sentence follows), not a sentence end."""
    stripped = piece.rstrip()
    # Every clause mark is one character; a Latin one counts only before a space, hence the " ".
    return bool(stripped) and _CLAUSE_END.match(stripped[-1] + " ") is not None


def _fitted(sentence: str, max_chars: int) -> list[str]:
    """A sentence as chunks of at most ``max_chars``, preferring clause boundaries."""
    if len(sentence) <= max_chars:
        return [sentence]
    return pack_clauses(clauses(sentence), max_chars, _wrapped)


def pack_clauses(clauses: list[str], max_chars: int, wrap: Callable[[str, int], list[str]]) -> list[str]:
    """Consecutive clauses gathered into chunks of at most ``max_chars``; a clause longer than that
    is cut by ``wrap`` (at spaces for alphabetic text, anywhere for CJK)."""
    chunks: list[str] = []
    current = ""
    for clause in clauses:
        if len((current + clause).strip()) <= max_chars:
            current += clause
            continue
        if current.strip():
            chunks.append(current.strip())
        if len(clause.strip()) <= max_chars:
            current = clause
        else:
            *whole, current = wrap(clause.strip(), max_chars)
            chunks.extend(whole)
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _has_words(text: str) -> bool:
    # A pronunciation placeholder (Private Use Area, see pronounce.py) is a word too.
    return any(ch.isalnum() or "\ue000" <= ch <= "\uf8ff" for ch in text)


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Sentences of ``text``, each at most ``max_chars`` long unless one word is longer.

    Pieces with no letters or digits ("?!", "...") are left out: espeak would
    read the punctuation's name aloud.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    chunks: list[str] = []
    for span in sentence_spans(text):
        sentence = re.sub(r"\s+", " ", span).strip()
        if sentence:
            chunks.extend(_fitted(sentence, max_chars))
    return [c for c in chunks if _has_words(c)]
