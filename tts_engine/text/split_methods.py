"""Ways to cut normalized text into the pieces that are synthesized one by one.

Each piece is rendered on its own and pieces are joined with a pause, so where the
text is cut decides where the listener hears breaks. ``"sentence"`` is our default;
the others are the text-split methods GPT-SoVITS clients choose with
``text_split_method`` (cut0 to cut5), written here from their description:

    none            cut0  do not cut at sentence ends
    four_sentences  cut1  four sentences per piece
    fifty_chars     cut2  sentences and clauses gathered until a piece passes 50 characters
    cjk_period      cut3  at the CJK full stop only
    period          cut4  at the Latin full stop only (not a decimal point)
    punctuation     cut5  at every punctuation mark (clauses)

One more cut is ours alone, not a client's choice: ``FIRST_CLAUSE`` is ``"sentence"`` with the
first sentence cut after a clause (``first_clause_apart``), for streams of a model that must
render a whole piece before any of its audio (Kokoro: its decoder normalizes over the piece).

Whatever the method, no piece is longer than the voice model handles well
(``max_chars``): a longer piece is cut at its sentence ends, then at clause ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tts_engine.text.sentences import clauses, split_sentences

SPLIT_METHODS = ("sentence", "none", "four_sentences", "fifty_chars", "cjk_period", "period", "punctuation")
FIRST_CLAUSE = "first_clause"
# A first sentence is cut only where both sides keep this many spoken units (a CJK character or a
# Latin word each, ~0.2-0.4 s): a shorter first piece gains little and sounds clipped.
MIN_CLAUSE_UNITS = 5
_SPOKEN_UNIT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")

FIFTY_CHARS = 50
# Full stops (a run of them, "...", is one mark) that are not a decimal point ("3.5" stays whole).
_LATIN_PERIOD = re.compile(r"(?:(?<!\d)\.|\.(?!\d))+")
# Clause and sentence punctuation, Latin and CJK; a '.' between digits is a decimal point.
_ANY_PUNCTUATION = re.compile(r"(?:[,;:?!\u2026\u3001\uff0c\u3002\uff1f\uff01\uff1b\uff1a]|(?<!\d)\.|\.(?!\d))+")


def split_text(text: str, method: str, max_chars: int) -> list[str]:
    """The pieces of ``text`` under ``method``, each at most ``max_chars`` (unless one word is longer)."""
    if method not in _METHODS and method != FIRST_CLAUSE:
        raise ValueError(f"unknown split method {method!r}; known: {SPLIT_METHODS}")
    if method == "sentence":
        return split_sentences(text, max_chars)
    if method == FIRST_CLAUSE:
        return first_clause_apart(split_sentences(text, max_chars))
    pieces: list[str] = []
    for piece in _METHODS[method](text):
        pieces.extend(_capped(piece, max_chars))
    return pieces


def first_clause_apart(pieces: list[str], min_units: int = MIN_CLAUSE_UNITS) -> list[str]:
    """``pieces`` with the first one cut after its earliest clause mark that leaves at least
    ``min_units`` spoken units on both sides; unchanged where there is no such mark."""
    if not pieces:
        return pieces
    parts = clauses(pieces[0])
    head = ""
    for i, part in enumerate(parts[:-1]):
        head += part
        rest = "".join(parts[i + 1:])
        if spoken_units(head) >= min_units and spoken_units(rest) >= min_units:
            return [head.strip(), rest.strip(), *pieces[1:]]
    return pieces


def spoken_units(text: str) -> int:
    """CJK characters plus other words: a rough count of syllable groups, comparable across scripts."""
    return len(_SPOKEN_UNIT.findall(text))


def _capped(piece: str, max_chars: int) -> list[str]:
    piece = re.sub(r"\s+", " ", piece).strip()
    if not any(ch.isalnum() for ch in piece):
        return []  # bare punctuation: espeak would read the mark's name aloud
    if len(piece) <= max_chars:
        return [piece]
    return _packed(split_sentences(piece, max_chars), max_chars)


def _packed(parts: list[str], max_chars: int) -> list[str]:
    """Consecutive parts run together while the result stays within ``max_chars``."""
    packed: list[str] = []
    for part in parts:
        if packed and len(packed[-1]) + 1 + len(part) <= max_chars:
            packed[-1] = f"{packed[-1]} {part}"
        else:
            packed.append(part)
    return packed


def _cut_after(pattern: re.Pattern[str], text: str) -> list[str]:
    """``text`` cut after each match, each piece keeping its mark."""
    pieces, start = [], 0
    for match in pattern.finditer(text):
        pieces.append(text[start:match.end()])
        start = match.end()
    pieces.append(text[start:])
    return pieces


def _none(text: str) -> list[str]:
    return [text]


def _four_sentences(text: str) -> list[str]:
    # Sentences found without a length cap; _capped applies the model's cap per group.
    sentences = split_sentences(text, max(1, len(text)))
    return [" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4)]


def _fifty_chars(text: str) -> list[str]:
    groups: list[str] = []
    current = ""
    for clause in _cut_after(_ANY_PUNCTUATION, text):
        current += clause
        if len(current.strip()) > FIFTY_CHARS:
            groups.append(current)
            current = ""
    if current.strip():
        # A short tail joins the piece before it rather than standing alone.
        if groups and len(current.strip()) < FIFTY_CHARS:
            groups[-1] += current
        else:
            groups.append(current)
    return groups


def _cjk_period(text: str) -> list[str]:
    return _cut_after(re.compile("\u3002"), text)


def _period(text: str) -> list[str]:
    return _cut_after(_LATIN_PERIOD, text)


def _punctuation(text: str) -> list[str]:
    return _cut_after(_ANY_PUNCTUATION, text)


_METHODS: dict[str, Callable[[str], list[str]]] = {
    "sentence": _none,  # handled by split_sentences above; listed so the name is known
    "none": _none,
    "four_sentences": _four_sentences,
    "fifty_chars": _fifty_chars,
    "cjk_period": _cjk_period,
    "period": _period,
    "punctuation": _punctuation,
}
