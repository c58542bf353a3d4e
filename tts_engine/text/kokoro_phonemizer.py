"""The one entry point from text to Kokoro-82M (v1.0) phoneme ids.

    ph = KokoroPhonemizer(vocab)                      # vocab: symbol -> id (114 symbols)
    for sentence in ph.split(text, "zh", max_chars=80):
        out = ph.phonemize(sentence, "zh")            # PhonemizedText
        tokens = [0, *out.ids, 0]

Languages: "zh" (Mandarin, with English words inside), "ja", "en" (US).
A symbol the vocabulary lacks is left out and listed in ``dropped``; a
phoneme string longer than Kokoro's 510-symbol context is cut at the last
word boundary that fits and ``truncated`` says so. ``words`` gives each
word's (or Chinese word's) span in ``phonemes`` for word timestamps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tts_engine.errors import InvalidInput, UnsupportedLanguage
from tts_engine.text.ja_g2p import JapaneseG2P
from tts_engine.text.kokoro_en import EnglishG2P, PhToken, join_tokens
from tts_engine.text.pronounce import Pronunciation, kokoro_symbols, leading_punct, split_marked
from tts_engine.text.sentences import pack_clauses, split_sentences
from tts_engine.text.zh_g2p import ChineseG2P

__all__ = ["KokoroPhonemizer", "PhonemizedText", "MAX_PHONEMES", "LANGUAGES"]

log = logging.getLogger(__name__)

MAX_PHONEMES = 510  # Kokoro's context is 512 tokens, two of them the boundary pads
LANGUAGES = ("zh", "ja", "en")
_ALIASES = {"zh": "zh", "cmn": "zh", "zho": "zh", "ja": "ja", "jpn": "ja", "en": "en", "eng": "en"}


@dataclass
class PhonemizedText:
    phonemes: str  # Kokoro phoneme string, every symbol in the vocabulary
    ids: list[int]  # one id per symbol of ``phonemes`` (no boundary pads)
    dropped: list[str]  # symbols or characters left out, each once, in order of appearance
    words: list[tuple[str, int, int]]  # (word, start, end): phonemes[start:end] is the word
    truncated: bool = field(default=False)  # phonemes were cut to MAX_PHONEMES
    # Like ``words``, but a Chinese word split into its characters: what word timestamps time.
    units: list[tuple[str, int, int]] = field(default_factory=list)


def _language(language: str) -> str:
    if not isinstance(language, str):
        raise UnsupportedLanguage("language must be a string", field="language")
    base = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    if base not in _ALIASES:
        raise UnsupportedLanguage(
            f"Kokoro phonemizer supports {', '.join(LANGUAGES)}; got {language!r}", field="language"
        )
    return _ALIASES[base]


# Sentence ends for Chinese and Japanese; an ASCII full stop only before a space
# or the end, so 3.5 stays whole.
_CJK_SENTENCE = re.compile(r"(?:[。！？；!?;]|\.(?=\s|$)|…+|\n)+[」』”’）)\"']*")
_CJK_CLAUSE = re.compile(r"[，、,：:]")
_SPEAKABLE = re.compile(r"[\w\ue000-\uf8ff]")  # a pronunciation placeholder is speakable
_PLACEHOLDER = re.compile(r"[\ue000-\uf8ff]")


def _hard_wrap(text: str, max_chars: int) -> list[str]:
    """Cut at max_chars, but never inside a run of Latin letters or digits."""
    pieces: list[str] = []
    while len(text) > max_chars:
        cut = max_chars
        while cut > 0 and text[cut - 1].isascii() and text[cut - 1].isalnum() and text[cut].isascii() and text[cut].isalnum():
            cut -= 1
        if cut == 0:
            cut = max_chars
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    pieces.append(text)
    return [p for p in pieces if p]


def _fit(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    clauses, start = [], 0
    for m in _CJK_CLAUSE.finditer(sentence):
        clauses.append(sentence[start : m.end()])
        start = m.end()
    clauses.append(sentence[start:])
    return pack_clauses(clauses, max_chars, _hard_wrap)


def split_cjk(text: str, max_chars: int) -> list[str]:
    """Sentences at 。！？；!?; (and newlines), long ones cut at ，、,：: then hard-wrapped."""
    pieces, start = [], 0
    for m in _CJK_SENTENCE.finditer(text):
        pieces.append(text[start : m.end()])
        start = m.end()
    pieces.append(text[start:])
    out: list[str] = []
    for piece in pieces:
        piece = re.sub(r"\s+", " ", piece).strip()
        if piece:
            out.extend(_fit(piece, max_chars))
    return [p for p in out if _SPEAKABLE.search(p)]


def _units(tokens: list[PhToken], words: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``words`` with each word that reads character by character split into its characters.
    ``words`` has one entry per spoken (non-punctuation, non-empty) token, in order."""
    spoken = [t for t in tokens if not t.punct and t.phonemes]
    units: list[tuple[str, int, int]] = []
    for tok, (word, start, end) in zip(spoken, words):
        if tok.parts and sum(len(ps) for _c, ps in tok.parts) == end - start:
            for chars, ps in tok.parts:
                units.append((chars, start, start + len(ps)))
                start += len(ps)
        else:
            units.append((word, start, end))
    return units


class KokoroPhonemizer:
    """Text -> Kokoro v1.0 phoneme strings and ids, for Mandarin, Japanese and English."""

    def __init__(self, vocab: Mapping[str, int], max_phonemes: int = MAX_PHONEMES) -> None:
        if not isinstance(vocab, Mapping) or not vocab:
            raise ValueError("vocab must be a non-empty mapping of phoneme symbol -> id")
        bad = [k for k, v in vocab.items() if not isinstance(k, str) or len(k) != 1 or not isinstance(v, int)]
        if bad:
            raise ValueError(f"vocab entries must be single characters mapped to ints; bad: {bad[:5]}")
        self.vocab = dict(vocab)
        self.max_phonemes = max_phonemes
        self._en = EnglishG2P()
        self._g2p = {"en": self._en, "zh": ChineseG2P(self._en), "ja": JapaneseG2P(self._en)}

    def split(self, text: str, language: str, max_chars: int) -> list[str]:
        """Sentences (or clauses of long ones) of at most ``max_chars`` characters, in order."""
        lang = _language(language)
        if not isinstance(text, str):
            raise InvalidInput("text must be a string", field="text")
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        if lang == "en":
            return split_sentences(text, max_chars)
        return split_cjk(text, max_chars)

    def tokens(self, text: str, language: str) -> list[PhToken]:
        """The language module's tokens before the vocabulary filter (for inspection)."""
        return self._g2p[_language(language)].tokens(text)

    def phonemize(self, text: str, language: str, pronunciations: Sequence[Pronunciation] = ()) -> PhonemizedText:
        """Phonemes and ids for one sentence or clause of ``text`` in ``language``; placeholders
        in it are read as their ``pronunciations`` (text/pronounce.py)."""
        lang = _language(language)
        if not isinstance(text, str):
            raise InvalidInput("text must be a string", field="text")
        text = text.replace("\r", " ").replace("\n", " ").strip()
        if not text:
            return PhonemizedText("", [], [], [])
        dropped: list[str] = []
        kept: list[PhToken] = []
        for tok in self._tokens(text, lang, pronunciations):
            # Group characters of one dropped sequence ("안녕") per code point, in order.
            good = []
            for ch in tok.phonemes:
                if ch in self.vocab:
                    good.append(ch)
                elif ch not in dropped:
                    dropped.append(ch)
            parts = tuple((chars, "".join(c for c in ps if c in self.vocab)) for chars, ps in tok.parts)
            kept.append(PhToken(tok.text, "".join(good), tok.punct, parts))
        phonemes, words = join_tokens(kept)
        truncated = False
        if len(phonemes) > self.max_phonemes:
            phonemes, words = self._truncate(phonemes, words)
            truncated = True
            log.warning("Kokoro phonemes cut to %d symbols for text starting %r", len(phonemes), text[:40])
        ids = [self.vocab[c] for c in phonemes]
        return PhonemizedText(phonemes, ids, dropped, words, truncated, _units(kept, words))

    def _tokens(self, text: str, lang: str, pronunciations: Sequence[Pronunciation]) -> list[PhToken]:
        """The G2P's tokens; with placeholders, each plain piece read on its own and each override
        as one word of its given phonemes."""
        if not _PLACEHOLDER.search(text):
            return self._g2p[lang].tokens(text)
        tokens: list[PhToken] = []
        for piece in split_marked(text, pronunciations):
            if isinstance(piece, str):
                punct, rest = leading_punct(piece) if tokens else ("", piece)
                tokens += [PhToken(mark, mark, punct=True) for mark in punct]
                if rest.strip():
                    tokens += self._g2p[lang].tokens(rest)
            else:
                tokens.append(PhToken(piece.text, kokoro_symbols(piece, lang)))
        return tokens

    def _truncate(self, phonemes: str, words: list[tuple[str, int, int]]) -> tuple[str, list[tuple[str, int, int]]]:
        limit = self.max_phonemes
        cut = max((end for _w, _s, end in words if end <= limit), default=0)
        # Prefer to end on punctuation that directly follows the last whole word.
        while cut < limit and cut < len(phonemes) and phonemes[cut] in ",.!?;:…—":
            cut += 1
        if cut == 0:
            cut = limit
        return phonemes[:cut].rstrip(), [w for w in words if w[2] <= cut]
