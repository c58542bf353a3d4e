"""English text -> Kokoro v1.0 phonemes, through espeak-ng (en-us).

espeak-ng's IPA is rewritten into the symbol set Kokoro v1.0 was trained on,
the way misaki's espeak fallback does it (misaki 0.9, version 1.0 rules):
affricates become ʤ ʧ, diphthongs become the capital-letter symbols
A (eɪ) I (aɪ) O (oʊ) W (aʊ) Y (ɔɪ), r-coloured vowels are spelled əɹ / ɜɹ,
r becomes ɹ, the flap ɾ becomes T and the glottal stop t, length marks go,
stress marks stay.

Acronyms ("GPU", "API") are spelled with English letter names, as misaki
spells them; everything else is read by espeak in clause context.

Also home of the small token type the Chinese and Japanese modules share:
``PhToken`` and ``join_tokens`` (phonemes per word, joined with word spans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tts_engine.text.en_normalize import normalize_english
from tts_engine.text.espeak import espeak_clauses

__all__ = [
    "PhToken",
    "join_tokens",
    "espeak_to_kokoro",
    "spell_letters",
    "is_acronym",
    "EnglishG2P",
]

PUNCT = frozenset(';:,.!?—…"()“”')


@dataclass
class PhToken:
    text: str  # the written word, character group or punctuation mark
    phonemes: str  # Kokoro phonemes for it ("" if silent)
    punct: bool = False  # punctuation: glued to the word before it, a space after
    # (characters, their phonemes) in order, when a word's reading splits by character (Chinese
    # syllables): word timestamps then time each character.
    parts: tuple[tuple[str, str], ...] = ()


def join_tokens(tokens: list[PhToken]) -> tuple[str, list[tuple[str, int, int]]]:
    """The phoneme string (words space-separated, punctuation glued to the left)
    and (word, start, end) spans into it for every non-punctuation token."""
    out = ""
    words: list[tuple[str, int, int]] = []
    for tok in tokens:
        ps = tok.phonemes
        if not ps:
            continue
        if tok.punct:
            opening = ps in "(“\""
            if opening and out and not out.endswith(" "):
                out += " "
            elif not opening:
                out = out.rstrip(" ")
            out += ps
            if not opening:
                out += " "
            continue
        if out and not out.endswith(" ") and not out.endswith(("(", "“")):
            out += " "
        words.append((tok.text, len(out), len(out) + len(ps)))
        out += ps
    stripped = out.rstrip(" ")
    return stripped, words


# ---------------------------------------------------------------------------
# espeak IPA -> Kokoro symbols
# ---------------------------------------------------------------------------

# Longest first. piper's espeak bridge writes no tie bars, so the pairs that
# misaki's table ties (a^ɪ, d^ʒ, ...) appear here as plain letter pairs.
_E2K = sorted(
    {
        "ʔˌn\u0329": "tn",
        "ʔn\u0329": "tn",
        "aɪ": "I",
        "aʊ": "W",
        "dʒ": "ʤ",
        "eɪ": "A",
        "e": "A",
        "tʃ": "ʧ",
        "ɔɪ": "Y",
        "ʲo": "jo",
        "ʲə": "jə",
        "ʲ": "",
        "ɚ": "əɹ",
        "r": "ɹ",
        "x": "k",
        "ç": "k",
        "ɐ": "ə",
        "ɬ": "l",
        "\u0303": "",
        "ɜːɹ": "ɜɹ",
        "ɜː": "ɜɹ",
        "oʊ": "O",
    }.items(),
    key=lambda kv: -len(kv[0]),
)
_E2K_RE = re.compile("|".join(re.escape(k) for k, _ in _E2K))
_E2K_MAP = dict(_E2K)


def espeak_to_kokoro(ps: str) -> str:
    """espeak-ng en-us IPA -> Kokoro v1.0 (misaki) phoneme symbols."""
    ps = _E2K_RE.sub(lambda m: _E2K_MAP[m[0]], ps)
    ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace("\u0329", "")
    ps = ps.replace("ɪə", "iə").replace("ː", "")
    ps = ps.replace("o", "ɔ")  # a bare o (older espeak data): misaki's rule
    ps = ps.replace("ɾ", "T").replace("ʔ", "t")
    return ps


# ---------------------------------------------------------------------------
# Letters and acronyms
# ---------------------------------------------------------------------------

# English letter names in misaki's US gold lexicon spelling.
LETTER_NAMES = {
    "A": "ˈA", "B": "bˈi", "C": "sˈi", "D": "dˈi", "E": "ˈi", "F": "ˈɛf", "G": "ʤˈi",
    "H": "ˈAʧ", "I": "ˈI", "J": "ʤˈA", "K": "kˈA", "L": "ˈɛl", "M": "ˈɛm", "N": "ˈɛn",
    "O": "ˈO", "P": "pˈi", "Q": "kjˈu", "R": "ˈɑɹ", "S": "ˈɛs", "T": "tˈi", "U": "jˈu",
    "V": "vˈi", "W": "dˈʌbᵊlju", "X": "ˈɛks", "Y": "wˈI", "Z": "zˈi",
}
# All-capital words that are said as words, not letters.
_SAID_AS_WORDS = frozenset(
    "NASA NATO UNESCO UNICEF COVID OPEC FIFA IKEA ASCII JPEG LASER RADAR SCUBA "
    "AIDS SARS OK PIN".split()
)
_ACRONYM = re.compile(r"^(?:[A-Z]{2,}|[a-z][A-Z]{2,})s?$")


def is_acronym(word: str) -> bool:
    """'GPU', 'APIs', 'iOS' are spelled; 'NASA', 'Python', 'iPhone' are not."""
    return bool(_ACRONYM.match(word)) and word not in _SAID_AS_WORDS and word.rstrip("s") not in _SAID_AS_WORDS


def spell_letters(word: str) -> str:
    """Letter names run together, the last one carrying the primary stress: GPU -> ʤˌipˌijˈu."""
    plural = len(word) > 1 and word.endswith("s") and word[:-1].isupper()
    letters = [c for c in (word[:-1] if plural else word).upper() if c in LETTER_NAMES]
    if not letters:
        return ""
    names = [LETTER_NAMES[c] for c in letters]
    names = [n.replace("ˈ", "ˌ") for n in names[:-1]] + [names[-1]]
    ps = "".join(names)
    if plural:
        ps += "z"
    return ps


# ---------------------------------------------------------------------------
# English words and sentences
# ---------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z\u00C0-\u024F]+(?:['’][A-Za-z]+)*|[^\sA-Za-z\u00C0-\u024F]")
_NUMBERISH = re.compile(r"\d")
_DOTTED = re.compile(r"\b(?:[A-Za-z]\.){2,}(?![A-Za-z])")
_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F]")


class EnglishG2P:
    """English text (one sentence or clause) -> Kokoro tokens."""

    def __init__(self, voice: str = "en-us") -> None:
        self.voice = voice

    def _espeak(self, text: str) -> str:
        clauses = espeak_clauses(text, self.voice)
        ps = " ".join(re.sub(r"\([^)]*\)", "", c[0]).strip() for c in clauses)
        return espeak_to_kokoro(re.sub(r"\s+", " ", ps).strip())

    def word(self, word: str) -> str:
        """Phonemes for one word said on its own (acronyms spelled)."""
        if is_acronym(word):
            return spell_letters(word)
        if word in ("a", "A"):
            return "ˈA"
        return self._espeak(word).replace(" ", "")

    def _words(self, words: list[str]) -> list[str]:
        """Phonemes per word, read by espeak in context when it keeps one word per word."""
        plain = [w for w in words if not is_acronym(w)]
        in_context = self._espeak(" ".join(plain)).split(" ") if plain else []
        if len(in_context) != len(plain):
            # espeak split or joined words ("iPhone" -> two): read them one by one,
            # keeping the weak form of the article a plain word-by-word reading loses.
            in_context = [
                "ə" if w in ("a", "A") and i + 1 < len(plain) else self.word(w)
                for i, w in enumerate(plain)
            ]
        it = iter(in_context)
        out = [spell_letters(w) if is_acronym(w) else next(it) for w in words]
        # The pronoun I carries secondary stress in Kokoro's training transcriptions (misaki);
        # espeak leaves it unstressed and a sentence-initial "I" was lost by the listener.
        return ["ˌI" if w == "I" and ps == "I" else ps for w, ps in zip(words, out)]

    def tokens(self, text: str, normalize: bool = True) -> list[PhToken]:
        """Tokens for English text; numbers etc. spelled out by our English normalizer."""
        if normalize:
            text = normalize_english(text)
        # "U.S.A." is one acronym; its last dot ends the sentence only at the end of the text.
        text = _DOTTED.sub(lambda m: m[0].replace(".", "").upper() + ("." if m.end() == len(text) else ""), text)
        pieces = _WORD.findall(text.replace("’", "'"))
        out: list[PhToken] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                for w, ps in zip(run, self._words(run)):
                    out.append(PhToken(w, ps))
                run.clear()

        for piece in pieces:
            if _LATIN.match(piece):
                run.append(piece)
                continue
            flush()
            mark = _PUNCT_MAP.get(piece, piece)
            if mark in PUNCT:
                out.append(PhToken(piece, mark, punct=True))
            elif not mark:
                continue
            elif _NUMBERISH.match(piece):
                # A digit the normalizer left (should not happen): let espeak read it.
                out.append(PhToken(piece, self._espeak(piece)))
            else:
                # Anything else (symbols, other scripts): kept so it is reported as dropped.
                out.append(PhToken(piece, piece))
        flush()
        return out


_PUNCT_MAP = {"–": "—", "-": "", "\"": "", "‘": "", "'": "", "[": "(", "]": ")", "{": "(", "}": ")", "«": "“", "»": "”"}
