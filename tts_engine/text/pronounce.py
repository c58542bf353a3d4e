"""Pronunciation overrides: lexicon entries and SSML ``<phoneme>`` readings.

An override replaces the frontend's own reading of a word or phrase with given phonemes: IPA,
or (Chinese) pinyin with tone numbers. Where one applies, the text carries a placeholder, one
Private Use Area character (U+E000 + its index in the table), which the normalizers and
sentence splitters leave alone; the phonemizers read the placeholder's phonemes instead of
text (Piper: ``text/frontend.py``; Kokoro: ``text/kokoro_phonemizer.py``), and word
timestamps show the written word. Client text never carries placeholders: PUA characters in it
are removed first.

Lexicon matching (documented in the README):

* an entry matches whole words: not directly after or before a letter or digit; an entry that
  contains Chinese or Japanese characters matches anywhere (those scripts have no spaces);
* case-insensitive unless the entry says ``case_sensitive`` ("US" the country, not "us");
* the longest entry wins where several match at one place; matches never overlap;
* of several lexicons named in a request, the first that has an entry for a word wins.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tts_engine.errors import InvalidInput

ALPHABETS = ("ipa", "pinyin")
PLACEHOLDER_BASE = 0xE000
MAX_PLACEHOLDERS = 0xF8FF - PLACEHOLDER_BASE + 1   # the BMP's Private Use Area
_PUA = re.compile("[\ue000-\uf8ff]")
_PINYIN_SYLLABLE = re.compile(r"[a-zü:v]+r?[1-5]")
_IPA_MAX = 200


@dataclass(frozen=True)
class Pronunciation:
    """``text`` (as written; word timestamps show it) read as ``phonemes`` in ``alphabet``."""

    text: str
    alphabet: str
    phonemes: str


@dataclass(frozen=True)
class LexiconEntry:
    """A lexicon's word or phrase and how to say it."""

    grapheme: str
    alphabet: str
    phonemes: str
    case_sensitive: bool = False


def is_placeholder(ch: str) -> bool:
    return len(ch) == 1 and PLACEHOLDER_BASE <= ord(ch) < PLACEHOLDER_BASE + MAX_PLACEHOLDERS


def placeholder(index: int) -> str:
    return chr(PLACEHOLDER_BASE + index)


def strip_placeholders(text: str) -> str:
    """Client text without PUA characters (they would read as our placeholders)."""
    return _PUA.sub(" ", text)


def check_phonemes(alphabet: str, phonemes: str, field: str) -> str:
    """The phonemes, validated: a known alphabet; pinyin as numbered-tone syllables."""
    if alphabet not in ALPHABETS:
        raise InvalidInput(f"alphabet must be one of {', '.join(ALPHABETS)} (got {alphabet!r})", field=field)
    phonemes = unicodedata.normalize("NFC", (phonemes or "").strip())
    if not phonemes or len(phonemes) > _IPA_MAX:
        raise InvalidInput(f"phonemes must be 1 to {_IPA_MAX} characters", field=field)
    if _PUA.search(phonemes) or any(unicodedata.category(c) == "Cc" for c in phonemes):
        raise InvalidInput("phonemes contain control or private-use characters", field=field)
    if alphabet == "pinyin":
        bad = [s for s in phonemes.lower().split() if not _PINYIN_SYLLABLE.fullmatch(s)]
        if bad:
            raise InvalidInput(f"pinyin syllables need a tone number 1-5, e.g. 'zhong1 guo2' (bad: {bad[0]!r})",
                               field=field)
    return phonemes


def table_identity(table: Sequence[Pronunciation]) -> str:
    """What of the overrides applied changes the audio (part of the cache key); '' for none."""
    if not table:
        return ""
    data = json.dumps([[p.alphabet, p.phonemes] for p in table], ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- marking


def mark(text: str, inline: Sequence[Pronunciation] = (),
         lexicon: Sequence[LexiconEntry] = ()) -> tuple[str, tuple[Pronunciation, ...]]:
    """(text with placeholders, the table they index). ``text`` may already hold placeholders
    0..len(inline)-1 (SSML ``<phoneme>``); any other PUA character is removed, then lexicon
    entries are matched in what remains."""
    limit = len(inline)
    text = "".join(" " if _PUA.fullmatch(ch) and ord(ch) - PLACEHOLDER_BASE >= limit else ch for ch in text)
    table = list(inline)
    if not lexicon:
        return text, tuple(table)
    out: list[str] = []
    pos = 0
    for start, end, entry in _matches(text, lexicon):
        if len(table) >= MAX_PLACEHOLDERS:
            break
        out.append(text[pos:start])
        out.append(_spaced(text, start, end, placeholder(len(table))))
        table.append(Pronunciation(text[start:end], entry.alphabet, entry.phonemes))
        pos = end
    out.append(text[pos:])
    return "".join(out), tuple(table)


def _spaced(text: str, start: int, end: int, mark_char: str) -> str:
    """The placeholder, set off by spaces from Latin letters around it so it stays one word."""
    before = " " if start and text[start - 1].isalnum() and not _cjk(text[start - 1]) else ""
    after = " " if end < len(text) and text[end].isalnum() and not _cjk(text[end]) else ""
    return before + mark_char + after


def _matches(text: str, lexicon: Sequence[LexiconEntry]) -> list[tuple[int, int, LexiconEntry]]:
    """Non-overlapping (start, end, entry), left to right, longest first at each place."""
    pattern, entries = _compiled(tuple(lexicon))
    return [(m.start(), m.end(), entries[int(m.lastgroup[1:])]) for m in pattern.finditer(text)]


@lru_cache(maxsize=64)
def _compiled(lexicon: tuple[LexiconEntry, ...]) -> tuple[re.Pattern[str], list[LexiconEntry]]:
    """One alternation of all entries, longest first (compiled once per lexicon version); of
    entries for the same grapheme the first wins."""
    seen: set[tuple[str, bool]] = set()
    entries: list[LexiconEntry] = []
    for entry in lexicon:
        ident = (entry.grapheme if entry.case_sensitive else entry.grapheme.casefold(), entry.case_sensitive)
        if ident not in seen:
            seen.add(ident)
            entries.append(entry)
    order = sorted(range(len(entries)), key=lambda i: -len(entries[i].grapheme))
    return re.compile("|".join(_entry_pattern(entries[i], i) for i in order)), entries


def _entry_pattern(entry: LexiconEntry, index: int) -> str:
    body = r"\s+".join(re.escape(part) for part in entry.grapheme.split())
    if not entry.case_sensitive:
        body = f"(?i:{body})"
    if not any(_cjk(ch) for ch in entry.grapheme):
        body = rf"(?<![^\W_]){body}(?![^\W_])"
    return f"(?P<e{index}>{body})"


def _cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF


def split_marked(text: str, table: Sequence[Pronunciation]) -> list[str | Pronunciation]:
    """``text`` as its plain pieces and the overrides between them, in order."""
    out: list[str | Pronunciation] = []
    pos = 0
    for m in _PUA.finditer(text):
        index = ord(m[0]) - PLACEHOLDER_BASE
        if index >= len(table):
            continue
        if m.start() > pos:
            out.append(text[pos:m.start()])
        out.append(table[index])
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


_LEADING_PUNCT = re.compile(r"\s*([,;:.!?…]+)")


def leading_punct(piece: str) -> tuple[str, str]:
    """(punctuation, rest) of a plain piece that follows an override: G2Ps drop punctuation that
    starts a text ("…SQL, not" read as ", not"), so the phonemizers add it back themselves."""
    m = _LEADING_PUNCT.match(piece)
    return (m[1], piece[m.end():]) if m else ("", piece)


# ---------------------------------------------------------------------------------- readings


def pinyin_ipa(phonemes: str) -> str:
    """Numbered-tone pinyin -> Kokoro's Mandarin symbols (IPA with tone arrows)."""
    from tts_engine.text.zh_g2p import pinyin_to_kokoro

    return "".join(pinyin_to_kokoro(s) for s in phonemes.lower().replace("v", "ü").split())


def ipa_symbols(pron: Pronunciation) -> str:
    """The override as IPA, tone arrows dropped (for espeak-based Piper voices)."""
    if pron.alphabet == "pinyin":
        return re.sub("[→↗↓↘]", "", pinyin_ipa(pron.phonemes))
    return pron.phonemes.replace("\u0361", "").replace("\u035c", "")  # tie bars: Piper maps have none


def kokoro_symbols(pron: Pronunciation, language: str) -> str:
    """The override in Kokoro's symbols: pinyin through the Mandarin table; English IPA through
    the espeak->Kokoro mapping (diphthongs are single symbols there); other IPA as written."""
    if pron.alphabet == "pinyin":
        return pinyin_ipa(pron.phonemes)
    ipa = pron.phonemes.replace("\u0361", "").replace("\u035c", "")
    if language == "en":
        from tts_engine.text.kokoro_en import espeak_to_kokoro

        return espeak_to_kokoro(ipa)
    return ipa
