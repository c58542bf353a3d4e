"""Text front end: validated request text -> per-sentence phoneme ids for a Piper voice.

validate -> resolve language -> normalize (English only) -> split into
sentences no longer than the voice model handles well -> espeak-ng phonemes
-> ids from the voice's phoneme_id_map.

Phonemes follow Piper's own conventions (clause punctuation kept, NFD code
points, BOS/pad/EOS ids) so the ids match what Piper voices were trained on.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tts_engine.errors import EmptyText, InvalidInput, TextTooLong, UnsupportedLanguage
from tts_engine.text.en_normalize import clean_text, normalize_english

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
# Validation
# ---------------------------------------------------------------------------

# Unicode category Cc minus tab, newline and carriage return.
_CONTROL_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Lone surrogates can arrive through JSON "\ud800" escapes and cannot be encoded
# for espeak, so they are refused up front rather than failing deep inside it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def validate_text(text: str, max_chars: int) -> str:
    """The request text stripped of surrounding whitespace, or a typed error saying why not."""
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", field="text")
    stripped = text.strip()
    if not stripped:
        raise EmptyText("text is empty or only whitespace", field="text")
    if len(stripped) > max_chars:
        raise TextTooLong(
            f"text is {len(stripped)} characters long; the limit is {max_chars} characters",
            field="text",
        )
    for pattern, kind in ((_CONTROL_CHAR, "control character"), (_SURROGATE, "unpaired surrogate")):
        found = pattern.search(text)
        if found:
            raise InvalidInput(
                f"text contains {kind} U+{ord(found[0]):04X} at position {found.start()}",
                field="text",
            )
    return stripped


# ---------------------------------------------------------------------------
# Language
# ---------------------------------------------------------------------------


def _script_of(ch: str) -> str | None:
    cp = ord(ch)
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F:
        return "kana"
    if (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3134F
    ):
        return "han"
    if (
        0xAC00 <= cp <= 0xD7AF
        or 0x1100 <= cp <= 0x11FF
        or 0x3130 <= cp <= 0x318F
        or 0xA960 <= cp <= 0xA97F
        or 0xD7B0 <= cp <= 0xD7FF
        or 0xFFA0 <= cp <= 0xFFDC
    ):
        return "hangul"
    if not ch.isalpha():
        return None
    if ch.isascii() or 0x00C0 <= cp <= 0x024F or 0x1E00 <= cp <= 0x1EFF or 0xFF21 <= cp <= 0xFF5A:
        return "latin"
    return "other"


def detect_language(text: str) -> str:
    """Language by the script most letters are written in.

    Han counts as Japanese once any kana is present (Japanese mixes both).
    Text with no letters at all (digits, symbols) is "en": the English
    normalizer is what reads numbers and symbols.
    """
    counts = {"han": 0, "kana": 0, "hangul": 0, "latin": 0, "other": 0}
    for ch in text:
        script = _script_of(ch)
        if script:
            counts[script] += 1
    if not any(counts.values()):
        return "en"
    votes = {
        "zh": 0 if counts["kana"] else counts["han"],
        "ja": counts["kana"] + counts["han"] if counts["kana"] else 0,
        "ko": counts["hangul"],
        "en": counts["latin"],
        "other": counts["other"],
    }
    # max() keeps the first of equal counts, so ties resolve in this fixed order.
    return max(votes, key=lambda lang: votes[lang])


def cjk_language(text: str) -> str | None:
    """The CJK language written anywhere in ``text`` ("ja" if any kana, "zh" if any Han, "ko" if
    any Hangul), or None. A mixed text needs a voice that can read its CJK part; English words
    inside Chinese or Japanese are the CJK reader's business, not the other way round."""
    scripts = {_script_of(ch) for ch in text}
    if "kana" in scripts:
        return "ja"
    if "han" in scripts:
        return "zh"
    if "hangul" in scripts:
        return "ko"
    return None


_ISO_639_1 = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv
    cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht
    hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la
    lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj
    om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv
    sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu""".split()
)
# Three-letter codes, mostly espeak-ng voice names, that have no two-letter form
# or that name one of the languages we treat specially.
_THREE_LETTER = {
    "eng": "en", "cmn": "zh", "yue": "zh", "hak": "zh", "nan": "zh", "wuu": "zh", "zho": "zh",
    "jpn": "ja", "kor": "ko",
}
_OTHER_THREE_LETTER = frozenset(
    """ast bpy chr ckb crh fil grc haw hyw jbo kaa kok lfn ltg mto nci nog pap piqd qdb quc qya rup
    shn sjn smj xex""".split()
)
_SPECIAL_LANGUAGES = frozenset({"en", "zh", "ja", "ko"})


def _language_code(language: str) -> str:
    """"en-US", "en_us", "EN" -> "en"; "de" -> "other"; nonsense raises."""
    base = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    if base == "other":
        return "other"
    if base in _THREE_LETTER:
        return _THREE_LETTER[base]
    if base in _ISO_639_1 or base in _OTHER_THREE_LETTER:
        return base if base in _SPECIAL_LANGUAGES else "other"
    raise UnsupportedLanguage(
        f"unknown language {language!r}; use 'auto' or a language code such as 'en' or 'en-US'",
        field="language",
    )


def resolve_language(language: str | None, text: str) -> str:
    """The language to process ``text`` as: detected for "auto", else the code's base language."""
    if language is None:
        return detect_language(text)
    if not isinstance(language, str):
        raise UnsupportedLanguage("language must be a string", field="language")
    if language.strip().lower() in ("", "auto"):
        return detect_language(text)
    return _language_code(language)


# ---------------------------------------------------------------------------
# Sentence splitting
# ---------------------------------------------------------------------------

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
    return _script_of(ch) in ("han", "kana", "hangul") or 0x3000 <= ord(ch) <= 0x303F


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


def _sentence_spans(text: str) -> Iterator[str]:
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


def _clauses(sentence: str) -> list[str]:
    """The sentence cut after each clause mark, each piece keeping its mark."""
    pieces, start = [], 0
    for mark in _CLAUSE_END.finditer(sentence):
        pieces.append(sentence[start : mark.end()])
        start = mark.end()
    pieces.append(sentence[start:])
    return [p for p in pieces if p.strip()]


def _fitted(sentence: str, max_chars: int) -> list[str]:
    """A sentence as chunks of at most ``max_chars``, preferring clause boundaries."""
    if len(sentence) <= max_chars:
        return [sentence]
    chunks: list[str] = []
    current = ""
    for clause in _clauses(sentence):
        if len((current + clause).strip()) <= max_chars:
            current += clause
            continue
        if current.strip():
            chunks.append(current.strip())
        if len(clause.strip()) <= max_chars:
            current = clause
        else:
            *whole, current = _wrapped(clause.strip(), max_chars)
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
    for span in _sentence_spans(text):
        sentence = re.sub(r"\s+", " ", span).strip()
        if sentence:
            chunks.extend(_fitted(sentence, max_chars))
    return [c for c in chunks if _has_words(c)]


# ---------------------------------------------------------------------------
# Phonemes
# ---------------------------------------------------------------------------

# espeak-ng keeps global state: one initialization per process, and one caller
# at a time between choosing a voice and reading phonemes with it.
_ESPEAK_LOCK = threading.Lock()
_espeak_ready = False

_LANGUAGE_SWITCH = re.compile(r"\([^)]+\)")
# Terminators that end a clause but not a sentence; Piper follows them with a space.
_CLAUSE_TERMINATORS = (",", ":", ";")


def _espeak_clauses(text: str, espeak_voice: str) -> list[tuple[str, str, bool]]:
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


def _clause_phonemes(phonemes: str, terminator: str) -> list[str]:
    # "(en)" style flags mark foreign words; they are not sounds.
    phonemes = _LANGUAGE_SWITCH.sub("", phonemes) + terminator
    if terminator in _CLAUSE_TERMINATORS:
        phonemes += " "
    # NFD splits accented symbols into base + combining mark, as Piper's maps expect.
    return list(unicodedata.normalize("NFD", phonemes))


def phonemize(text: str, espeak_voice: str) -> list[list[str]]:
    """espeak-ng phonemes for ``text``, one list per sentence espeak finds; empty ones left out."""
    if not text.strip():
        return []
    sentences: list[list[str]] = []
    current: list[str] = []
    for phonemes, terminator, end_of_sentence in _espeak_clauses(text, espeak_voice):
        current.extend(_clause_phonemes(phonemes, terminator))
        if end_of_sentence:
            sentences.append(current)
            current = []
    sentences.append(current)
    return [s for s in sentences if s]


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
    unreadable = [ch for ch in text if _script_of(ch) in ("han", "kana", "hangul")]
    if not unreadable:
        return text, []
    kept = "".join(" " if _script_of(ch) in ("han", "kana", "hangul") else ch for ch in text)
    return re.sub(r"\s+", " ", kept).strip(), list(dict.fromkeys(unreadable))


def _word_spans(text: str, phonemes: list[str], espeak_voice: str, id_map: dict[str, list[int]],
                table: Sequence = ()) -> tuple[tuple[str, int, int], ...]:
    """Each written word's span over the sentence's ids (see word_align.py; ~1 ms a sentence).
    A pronunciation placeholder is a word read as its override, shown as its written text."""
    from tts_engine.text.pronounce import PLACEHOLDER_BASE, ipa_symbols, is_placeholder
    from tts_engine.text.word_align import align_words, id_spans, text_words, word_phonemes

    def clauses(piece: str) -> list[str]:
        return [_LANGUAGE_SWITCH.sub("", ph) for ph, _t, _e in _espeak_clauses(piece, espeak_voice)]

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
            if punct and (symbols or punct[-1] in _CLAUSE_TERMINATORS):
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
        # split_methods builds on this module's sentence splitter, so it is imported here.
        from tts_engine.text.split_methods import split_text

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
