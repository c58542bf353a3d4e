"""SSML ``<say-as>``: a number, date, phone number or letters written out as words to say.

English uses our English normalizer's number words; Chinese its cn2an-based readers; Japanese
keeps digits, which its G2P (pyopenjtalk) reads itself, except where the digits must be read one
by one. The caller passes the language the text around is in (None reads as English).
"""

from __future__ import annotations

import re

INTERPRET_AS = ("characters", "spell-out", "cardinal", "number", "ordinal", "digits", "date", "telephone")
DATE_FORMATS = ("mdy", "dmy", "ymd", "md", "dm", "ym", "my", "y", "m", "d")
_DIGIT_WORDS_JA = "ゼロ いち に さん よん ご ろく なな はち きゅう".split()


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF


def _base(language: str | None) -> str:
    base = re.split(r"[-_]", (language or "en").strip().lower(), maxsplit=1)[0]
    return {"cmn": "zh", "zho": "zh", "jpn": "ja"}.get(base, base)


def render(text: str, interpret_as: str, fmt: str | None, language: str | None) -> str:
    """The words to say for ``text``; ValueError (with a message for the client) if it can't."""
    text = " ".join(text.split())
    lang = _base(language)
    if not text:
        raise ValueError("say-as has no text")
    if interpret_as in ("characters", "spell-out"):
        return characters(text, lang)
    if interpret_as in ("cardinal", "number"):
        return cardinal(text, lang)
    if interpret_as == "ordinal":
        return ordinal(text, lang)
    if interpret_as == "digits":
        return digits(text, lang)
    if interpret_as == "date":
        return date(text, fmt or "mdy", lang)
    if interpret_as == "telephone":
        return telephone(text, lang)
    raise ValueError(f"interpret-as must be one of {', '.join(INTERPRET_AS)} (got {interpret_as!r})")


def characters(text: str, lang: str) -> str:
    """Each letter or digit on its own: letters by name, digits as digits."""
    out = []
    for ch in text:
        if ch.isdigit():
            out.append(digits(ch, lang))
        elif ch.isalpha():
            out.append(ch.upper() if ch.isascii() else ch)
    return " ".join(out) if lang not in ("zh", "ja") else "".join(out)


def _integer(text: str) -> int:
    cleaned = text.replace(",", "").replace(" ", "")
    if not re.fullmatch(r"[+-]?\d{1,18}", cleaned):
        raise ValueError(f"{text!r} is not a whole number")
    return int(cleaned)


def cardinal(text: str, lang: str) -> str:
    cleaned = text.replace(",", "").replace(" ", "")
    if not re.fullmatch(r"[+-]?\d{1,18}(?:\.\d{1,12})?", cleaned):
        raise ValueError(f"{text!r} is not a number")
    if lang == "zh":
        from tts_engine.text.zh_normalize import read_number

        return read_number(cleaned)
    if lang == "ja":
        return cleaned
    from tts_engine.text.en_normalize import digits_to_words, number_to_words

    sign = "minus " if cleaned.startswith("-") else ""
    whole, _, fraction = cleaned.lstrip("+-").partition(".")
    words = number_to_words(int(whole))
    return sign + words + (f" point {digits_to_words(fraction)}" if fraction else "")


def ordinal(text: str, lang: str) -> str:
    n = _integer(re.sub(r"(st|nd|rd|th)$", "", text.strip()))
    if n < 0:
        raise ValueError("an ordinal must not be negative")
    if lang == "zh":
        from tts_engine.text.zh_normalize import read_integer

        return "第" + read_integer(str(n), liang=False)
    if lang == "ja":
        return f"{n}番目"
    from tts_engine.text.en_normalize import ordinal_to_words

    return ordinal_to_words(n)


def digits(text: str, lang: str) -> str:
    found = re.sub(r"\D", "", text)
    if not found:
        raise ValueError(f"{text!r} has no digits")
    if lang == "zh":
        from tts_engine.text.zh_normalize import read_digits

        return read_digits(found)
    if lang == "ja":
        return " ".join(_DIGIT_WORDS_JA[int(d)] for d in found)
    from tts_engine.text.en_normalize import digits_to_words

    return digits_to_words(found)


def telephone(text: str, lang: str) -> str:
    """Digit groups read one by one, a pause between groups ("+1 555-0100")."""
    groups = re.findall(r"\d+", text)
    if not groups:
        raise ValueError(f"{text!r} has no digits")
    if lang == "zh":
        from tts_engine.text.zh_normalize import read_digits

        return "，".join(read_digits(g, phone=True) for g in groups)
    sep = "、" if lang == "ja" else ", "
    return sep.join(digits(g, lang) for g in groups)


def date(text: str, fmt: str, lang: str) -> str:
    """A date written with numbers in the order ``fmt`` says (mdy, dmy, ymd, ...)."""
    if fmt not in DATE_FORMATS:
        raise ValueError(f"date format must be one of {', '.join(DATE_FORMATS)} (got {fmt!r})")
    numbers = re.findall(r"\d+", text)
    if len(numbers) != len(fmt):
        raise ValueError(f"date {text!r} does not have the {len(fmt)} numbers format {fmt!r} expects")
    parts = dict(zip(fmt, (int(n) for n in numbers)))
    year, month, day = parts.get("y"), parts.get("m"), parts.get("d")
    if month is not None and not 1 <= month <= 12 or day is not None and not 1 <= day <= 31:
        raise ValueError(f"date {text!r} has no such month or day")
    if lang == "zh":
        from tts_engine.text.zh_normalize import read_digits, read_integer

        return ((read_digits(str(year)) + "年" if year is not None else "")
                + (read_integer(str(month), liang=False) + "月" if month else "")
                + (read_integer(str(day), liang=False) + "日" if day else ""))
    if lang == "ja":
        return ((f"{year}年" if year is not None else "") + (f"{month}月" if month else "")
                + (f"{day}日" if day else ""))
    from tts_engine.text.en_datetime import MONTHS as _MONTHS
    from tts_engine.text.en_numbers import ordinal_to_words, year_to_words

    words = []
    if month:
        words.append(_MONTHS[month - 1])
    if day:
        words.append(ordinal_to_words(day) if month else f"the {ordinal_to_words(day)}")
    text_out = " ".join(words)
    if year is not None:
        text_out = f"{text_out}, {year_to_words(year)}" if text_out else year_to_words(year)
    return text_out
