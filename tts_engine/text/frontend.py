"""Text front end: validated request text -> per-sentence phoneme ids for a Piper voice.

validate (``validation.py``) -> resolve language (``language.py``) -> normalize (English only,
``en_normalize.py``) -> split into pieces no longer than the voice model handles well
(``split_methods.py``, ``sentences.py``) -> espeak-ng phonemes (``espeak.py``) -> ids from the
voice's phoneme_id_map (here), with each written word's span over them (``word_align.py``).

Phonemes follow Piper's own conventions (clause punctuation kept, NFD code points, BOS/pad/EOS
ids) so the ids match what Piper voices were trained on. The names in ``__all__`` are the text
front end's public surface and stay importable from here, wherever they are defined.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tts_engine.errors import EmptyText
from tts_engine.text.en_normalize import clean_text, normalize_english
from tts_engine.text.espeak import (
    CLAUSE_TERMINATORS,
    espeak_clauses,
    phonemize,
    strip_language_flags,
)
from tts_engine.text.language import (
    cjk_language,
    detect_language,
    resolve_language,
    script_of,
)
from tts_engine.text.sentences import split_sentences
from tts_engine.text.split_methods import split_text
from tts_engine.text.validation import validate_text

__all__ = [
    "Sentence",
    "FrontendResult",
    "TextFrontend",
    "validate_text",
    "detect_language",
    "cjk_language",
    "resolve_language",
    "normalize_english",
    "split_sentences",
    "phonemize",
    "phoneme_ids",
]


@dataclass(frozen=True)
class Sentence:
    text: str  # normalized text of this sentence/clause chunk
    phonemes: list[str]  # phoneme symbols (NFD code points) as produced by espeak
    ids: list[int]  # phoneme ids for the voice, with BOS/pad/EOS
    dropped: list[str]  # phoneme symbols the voice's id map lacks (dropped, reported)
    # (word, start, end): ids[start:end] speak the word (Chinese: one entry per character);
    # word timestamps time these spans.
    words: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class FrontendResult:
    language: str  # "en", "zh", "ja", "ko" or "other"
    normalized_text: str
    sentences: list[Sentence]


# ---------------------------------------------------------------------------
# Phoneme ids
# ---------------------------------------------------------------------------

_BOS, _EOS, _PAD = "^", "$", "_"


def phoneme_ids(
    phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]]
) -> tuple[list[int], list[str]]:
    """(ids, dropped): Piper's BOS, pad-after-each, EOS layout; unknown symbols skipped and reported."""
    missing = [s for s in (_BOS, _EOS, _PAD) if s not in id_map]
    if missing:
        raise ValueError(f"phoneme id map lacks the special symbols {missing}")
    pad = list(id_map[_PAD])
    ids = list(id_map[_BOS]) + pad
    dropped: list[str] = []
    for phoneme in phonemes:
        if phoneme in id_map:
            ids.extend(id_map[phoneme])
            ids.extend(pad)
        elif phoneme not in dropped:
            dropped.append(phoneme)
    ids.extend(id_map[_EOS])
    return ids, dropped


# Symbols that carry no sound of their own: a sentence of only these is silence.
_SILENT_PHONEMES = frozenset(" .,;:!?\"'()-\u2014\u2013\u2026\u00bf\u00a1")


def _is_speakable(phonemes: Sequence[str]) -> bool:
    return any(p not in _SILENT_PHONEMES for p in phonemes)


def _joined(groups: list[list[str]]) -> list[str]:
    """espeak's sentences within one of ours, run together with a word gap between."""
    joined: list[str] = []
    for group in groups:
        if joined and joined[-1] != " ":
            joined.append(" ")
        joined.extend(group)
    return joined


def _without_cjk(text: str) -> tuple[str, list[str]]:
    """English voices cannot read Han, kana or Hangul (espeak says "Chinese letter"): drop and report."""
    unreadable = [ch for ch in text if script_of(ch) in ("han", "kana", "hangul")]
    if not unreadable:
        return text, []
    kept = "".join(" " if script_of(ch) in ("han", "kana", "hangul") else ch for ch in text)
    return re.sub(r"\s+", " ", kept).strip(), list(dict.fromkeys(unreadable))


def _word_spans(text: str, phonemes: list[str], espeak_voice: str, id_map: dict[str, list[int]],
                table: Sequence = ()) -> tuple[tuple[str, int, int], ...]:
    """Each written word's span over the sentence's ids (see word_align.py; ~1 ms a sentence).
    A pronunciation placeholder is a word read as its override, shown as its written text."""
    from tts_engine.text.pronounce import PLACEHOLDER_BASE, ipa_symbols, is_placeholder
    from tts_engine.text.word_align import align_words, id_spans, text_words, word_phonemes

    def clauses(piece: str) -> list[str]:
        return [strip_language_flags(ph) for ph, _t, _e in espeak_clauses(piece, espeak_voice)]

    words = text_words(text)
    marked = {i: table[ord(w) - PLACEHOLDER_BASE] for i, w in enumerate(words)
              if is_placeholder(w) and ord(w) - PLACEHOLDER_BASE < len(table)}
    plain = [w for i, w in enumerate(words) if i not in marked]
    readings = iter(word_phonemes(plain, clauses))
    spoken = [ipa_symbols(marked[i]) if i in marked else next(readings) for i in range(len(words))]
    shown = [marked[i].text if i in marked else w for i, w in enumerate(words)]
    spans = align_words(phonemes, shown, spoken)
    return tuple(id_spans(phonemes, id_map, spans))


def _marked_phonemes(text: str, espeak_voice: str, table: Sequence) -> list[str]:
    """espeak's phonemes for the plain pieces of ``text``, the overrides' own between them."""
    from tts_engine.text.pronounce import ipa_symbols, leading_punct, split_marked

    out: list[str] = []
    for piece in split_marked(text, table):
        if isinstance(piece, str):
            punct, rest = leading_punct(piece) if out else ("", piece)
            out.extend(punct)
            symbols = _joined(phonemize(rest, espeak_voice))
            if punct and (symbols or punct[-1] in CLAUSE_TERMINATORS):
                out.append(" ")
        else:
            symbols = list(unicodedata.normalize("NFD", ipa_symbols(piece)))
        if not symbols:
            continue
        if out and out[-1] != " " and symbols[0] not in _SILENT_PHONEMES:
            out.append(" ")
        out.extend(symbols)
    return out


class TextFrontend:
    """Turns request text into per-sentence phoneme ids for one voice's id map."""

    def __init__(self, max_chars: int = 5000, max_sentence_chars: int = 400) -> None:
        self.max_chars = max_chars
        self.max_sentence_chars = max_sentence_chars

    def process(
        self,
        text: str,
        espeak_voice: str,
        id_map: dict[str, list[int]],
        language: str = "auto",
        split: str = "sentence",
        pronunciations: Sequence = (),
    ) -> FrontendResult:
        """``pronunciations``: the overrides the text's placeholders index (text/pronounce.py)."""
        text = validate_text(text, self.max_chars)
        resolved = resolve_language(language, text)
        normalized = normalize_english(text) if resolved == "en" else clean_text(text)
        sentences: list[Sentence] = []
        for chunk in split_text(normalized, split, self.max_sentence_chars):
            readable, unreadable = _without_cjk(chunk) if resolved == "en" else (chunk, [])
            # We already split; if espeak sees more sentences in a chunk, they stay one.
            if any("\ue000" <= ch <= "\uf8ff" for ch in readable):
                phonemes = _marked_phonemes(readable, espeak_voice, pronunciations)
            else:
                phonemes = _joined(phonemize(readable, espeak_voice))
            if not _is_speakable(phonemes):
                continue
            ids, dropped = phoneme_ids(phonemes, id_map)
            words = _word_spans(readable, phonemes, espeak_voice, id_map, pronunciations)
            sentences.append(Sentence(text=chunk, phonemes=phonemes, ids=ids, dropped=unreadable + dropped,
                                      words=words))
        if not sentences:
            raise EmptyText("no speakable text remains after normalization", field="text")
        return FrontendResult(language=resolved, normalized_text=normalized, sentences=sentences)
