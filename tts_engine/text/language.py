"""Which language a text is processed as: a requested code resolved, or "auto" detected by script.

The frontends, SSML, voice matching and the engine's voice choice all need the same answer
("en", "zh", "ja", "ko" or "other"), so the script table, the detection and the code lists live
here once. ``script_of`` is public because the sentence splitter and the Piper frontend ask the
same question of single characters (is it Han, kana, Hangul?).
"""

from __future__ import annotations

import re

from tts_engine.errors import UnsupportedLanguage

__all__ = ["cjk_language", "detect_language", "resolve_language", "script_of"]


def script_of(ch: str) -> str | None:
    """The script of one character: "kana", "han", "hangul", "latin", "other" (other letters),
    or None for a character that is not a letter (digits, punctuation, spaces)."""
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
        script = script_of(ch)
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
    scripts = {script_of(ch) for ch in text}
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
