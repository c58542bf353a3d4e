"""English text normalization: written forms -> the words a reader would say.

espeak-ng reads digits and symbols itself, but inconsistently ("$5" becomes
"dollar five", "2024" becomes "two thousand twenty-four"), so for English we
spell numbers, money, dates, times, units and abbreviations out ourselves.
Everything here is pure string rewriting: deterministic and dependency-free.

The passes run in a fixed order because later ones rely on earlier ones
having consumed their digits (a date must be read before its parts look like
a range, money before its amount looks like a decimal, and so on).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tts_engine.text.en_datetime import expand_dates, expand_times, starts_new_sentence
from tts_engine.text.en_notation import expand_notations
from tts_engine.text.en_numbers import (
    NUM,
    NUM_END,
    NUM_START,
    cardinal_from,
    decimal_from,
    digits_to_words,
    number_to_words,
    ordinal_to_words,
    plural_number_words,
    year_to_words,
)

__all__ = [
    "clean_text",
    "normalize_english",
    "number_to_words",
    "ordinal_to_words",
    "year_to_words",
    "digits_to_words",
]

# ---------------------------------------------------------------------------
# Character-level cleanup (shared with non-English text)
# ---------------------------------------------------------------------------

_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"',
        "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ", "\u200a": " ",
        "\u200b": "", "\ufeff": "", "\u00ad": "",
        "\u2026": "...",
        "\u2012": "\u2013", "\u2015": "\u2014", "\u2212": "-",
    }
)
_PARAGRAPH_BREAK = re.compile(r"\s*\n[ \t\r\f\v]*\n\s*")
_SENTENCE_END_CHARS = ".!?\u3002\uff01\uff1f"
_CLOSERS = "\"')]}\u300d\u300f"


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF  # kana
        or 0x3400 <= cp <= 0x9FFF  # Han
        or 0xAC00 <= cp <= 0xD7AF  # Hangul syllables
        or 0xF900 <= cp <= 0xFAFF
        or 0xFF00 <= cp <= 0xFFEF  # full/half-width forms
        or 0x20000 <= cp <= 0x3134F
    )


def _end_paragraph(paragraph: str) -> str:
    """A paragraph with no final punctuation (a heading) still ends a sentence."""
    stripped = paragraph.rstrip(_CLOSERS)
    if not stripped or stripped[-1] in _SENTENCE_END_CHARS:
        return paragraph
    return paragraph + ("\u3002" if _is_cjk(stripped[-1]) else ".")


def clean_text(text: str) -> str:
    """Language-neutral cleanup: plain quotes, one space, paragraphs as sentence ends."""
    text = text.translate(_CHAR_MAP)
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
    if len(paragraphs) > 1:
        paragraphs = [_end_paragraph(p.strip()) for p in paragraphs]
    return re.sub(r"\s+", " ", " ".join(paragraphs)).strip()


# ---------------------------------------------------------------------------
# Passes. Each takes and returns the whole text.
# ---------------------------------------------------------------------------

# North American phone numbers would otherwise read as ranges or huge
# cardinals; people say them digit by digit, group by group.
_PHONE = re.compile(
    r"(?<![\w.,\-])(?:(\+?1)[\s.\-])?(?:\((\d{3})\)\s?|(\d{3})[\s.\-])(\d{3})[.\-](\d{4})(?![\w\-]|[.,]\d)"
)


def _phone_number(m: re.Match[str]) -> str:
    groups = [g for g in (m[1], m[2] or m[3], m[4], m[5]) if g]
    return ", ".join(digits_to_words(g) for g in groups)


def _expand_phone_numbers(text: str) -> str:
    return _PHONE.sub(_phone_number, text)


# "5-10", "1999–2005", "10:00-11:30": a range reads "to". A third part
# ("555-123-4567") leaves it alone; a spaced hyphen between numbers is a minus.
_RANGE_OPERAND = r"[$€£¥]?(?:\d{1,2}:\d{2}|\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_RANGE = re.compile(
    rf"(?<![\w.,:\-–])({_RANGE_OPERAND})(?:-|\s?–\s?)({_RANGE_OPERAND})(?![\-–]\d|[.,:]\d|\d)"
)
_SUBTRACTION = re.compile(r"(?<=\d) - (?=\d)")


def _expand_ranges(text: str) -> str:
    text = _RANGE.sub(r"\1 to \2", text)
    return _SUBTRACTION.sub(" minus ", text)


_CURRENCIES = {
    # symbol: (unit, units, subunit, subunits) — subunit None: decimals read as "point".
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", None, None),
}
_MAGNITUDES = {
    "thousand": "thousand", "k": "thousand",
    "million": "million", "m": "million", "mn": "million", "mm": "million",
    "billion": "billion", "b": "billion", "bn": "billion",
    "trillion": "trillion", "t": "trillion", "tn": "trillion",
}
_MONEY = re.compile(
    rf"(?<![\w.,])(-)?([$€£¥])\s?{NUM}"
    r"(?:\s?(thousand|million|billion|trillion)\b|(k|K|m|M|mn|MM|b|B|bn|t|T|tn)\b)?"
    r"(?![.,]\d)"
)


def _money(m: re.Match[str]) -> str:
    sign, symbol, whole, fraction = m[1], m[2], m[3], m[4]
    magnitude_word = m[5] or m[6]
    unit, units, subunit, subunits = _CURRENCIES[symbol]
    minus = "minus " if sign else ""
    if magnitude_word:
        amount = decimal_from(whole, fraction)
        return f"{minus}{amount} {_MAGNITUDES[magnitude_word.lower()]} {units}"
    if fraction and (subunit is None or len(fraction) != 2):
        return f"{minus}{decimal_from(whole, fraction)} {units}"
    plain = whole.replace(",", "")
    cents = int(fraction) if fraction else 0
    parts: list[str] = []
    if plain.strip("0") or not cents:
        parts.append(f"{cardinal_from(whole)} {unit if plain == '1' else units}")
    if cents:
        parts.append(f"{number_to_words(cents)} {subunit if cents == 1 else subunits}")
    return minus + " and ".join(parts)


def _expand_money(text: str) -> str:
    return _MONEY.sub(_money, text)


_PERCENT = re.compile(rf"{NUM_START}(-)?{NUM}\s?%")


def _percent(m: re.Match[str]) -> str:
    return ("minus " if m[1] else "") + decimal_from(m[2], m[3]) + " percent"


def _expand_percentages(text: str) -> str:
    return _PERCENT.sub(_percent, text)


_TITLES = {
    "Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor",
    "St": "Saint", "Mt": "Mount", "Rev": "Reverend", "Gen": "General", "Capt": "Captain",
    "Lt": "Lieutenant", "Sgt": "Sergeant", "Jr": "Junior", "Sr": "Senior",
}
# After a name ("Main St.", "Elm Dr.") these are places, not titles.
_PLACE_READINGS = {"St": "Street", "Dr": "Drive"}
_TITLE_ABBREV = re.compile(r"\b(" + "|".join(sorted(_TITLES, key=len, reverse=True)) + r")\.")
_BARE_TITLE = re.compile(r"\b(Mr|Mrs|Ms|Dr)(?=\s+[A-Z])")
_PREV_CAPITALIZED = re.compile(r"(?:[A-Z][a-z]+|\d+(?:st|nd|rd|th)?)\s+$")

# Abbreviations that may end a sentence keep the full stop in that case.
_SENTENCE_FINAL_ABBREVS = {
    "etc": "et cetera", "Inc": "Incorporated", "Ltd": "Limited", "Corp": "Corporation",
}
_FINAL_ABBREV = re.compile(r"\b(etc|Inc|Ltd|Corp)\.")
_INLINE_ABBREVS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\be\.\s?g\.(?=\W|$)"), "for example"),
    (re.compile(r"\bE\.\s?g\.(?=\W|$)"), "For example"),
    (re.compile(r"\bi\.\s?e\.(?=\W|$)"), "that is"),
    (re.compile(r"\bI\.\s?e\.(?=\W|$)"), "That is"),
    (re.compile(r"\bvs\.?(?=\W|$)"), "versus"),
    (re.compile(r"\b[Aa]pprox\.(?=\W|$)"), "approximately"),
    (re.compile(r"\bNo\.\s?(?=\d)"), "number "),
    (re.compile(r"\bno\.\s?(?=\d)"), "number "),
    (re.compile(r"\bNos\.\s?(?=\d)"), "numbers "),
]


def _title(m: re.Match[str]) -> str:
    abbrev = m[1]
    next_is_name = bool(re.match(r"\s+[A-Z]", m.string[m.end():]))
    before = m.string[max(0, m.start() - 40) : m.start()]
    if abbrev in _PLACE_READINGS and not next_is_name and _PREV_CAPITALIZED.search(before):
        place = _PLACE_READINGS[abbrev]
        return place + ("." if starts_new_sentence(m.string, m.end()) else "")
    # "I saw the Dr." still ends its sentence.
    return _TITLES[abbrev] + ("" if m.string[m.end():].strip() else ".")


def _final_abbrev(m: re.Match[str]) -> str:
    words = _SENTENCE_FINAL_ABBREVS[m[1]]
    return words + ("." if starts_new_sentence(m.string, m.end()) else "")


def _expand_abbreviations(text: str) -> str:
    text = _TITLE_ABBREV.sub(_title, text)
    text = _BARE_TITLE.sub(lambda m: _TITLES[m[1]], text)
    text = _FINAL_ABBREV.sub(_final_abbrev, text)
    for pattern, words in _INLINE_ABBREVS:
        text = pattern.sub(words, text)
    return text


_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "L": ("liter", "liters"),
    "ms": ("millisecond", "milliseconds"),
    "sec": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "kW": ("kilowatt", "kilowatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
}
_UNIT = re.compile(
    rf"{NUM_START}(-?{NUM})\s?("
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w/])"
)


def _unit(m: re.Match[str]) -> str:
    number, unit = m[1], m[4]
    singular, plural = _UNITS[unit]
    # The number itself is left for the cardinal pass.
    return f"{number} {singular if number == '1' else plural}"


def _expand_units(text: str) -> str:
    return _UNIT.sub(_unit, text)


_SYMBOL_WORDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"#\s?(?=\d)"), " number "),
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"\s*@\s*"), " at "),
    (re.compile(r"\s*\+\s*"), " plus "),
    (re.compile(r"\s*=\s*"), " equals "),
    (re.compile(r"\s*×\s*"), " times "),
    (re.compile(r"\s*%"), " percent"),
    (re.compile(r"\s*°"), " degrees"),
]


def _expand_symbols(text: str) -> str:
    for pattern, words in _SYMBOL_WORDS:
        text = pattern.sub(words, text)
    return text


# Only proper fractions with small denominators are unambiguous enough ("24/7"
# and "1/100" are not obviously fractions).
_FRACTION = re.compile(r"(?<![\w./,])([1-9])/([2-9]|10)(?![\w/]|[.,]\d)")


def _fraction(m: re.Match[str]) -> str:
    numerator, denominator = int(m[1]), int(m[2])
    if numerator >= denominator:
        return m[0]
    if denominator == 2:
        name = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        name = "quarter" if numerator == 1 else "quarters"
    else:
        name = ordinal_to_words(denominator) + ("s" if numerator > 1 else "")
    return f"{number_to_words(numerator)} {name}"


def _expand_fractions(text: str) -> str:
    return _FRACTION.sub(_fraction, text)


# Bounded digit counts keep int() within range; longer ones are left to espeak.
_ORDINAL = re.compile(rf"{NUM_START}(\d{{1,3}}(?:,\d{{3}}){{1,6}}|\d{{1,21}})(?:st|nd|rd|th|ST|ND|RD|TH)\b")


def _expand_ordinals(text: str) -> str:
    return _ORDINAL.sub(lambda m: ordinal_to_words(int(m[1].replace(",", ""))), text)


# A bare four-digit number in 1000-2099 is far more often a year than a count.
_YEAR = re.compile(rf"{NUM_START}(1\d{{3}}|20\d{{2}})(s)?(?![\w]|[.,]\d)")
_SHORT_DECADE = re.compile(r"(?<![\w.,])'?([1-9]0)s\b")


def _year(m: re.Match[str]) -> str:
    words = year_to_words(int(m[1]))
    return plural_number_words(words) if m[2] else words


def _expand_years(text: str) -> str:
    text = _YEAR.sub(_year, text)
    return _SHORT_DECADE.sub(lambda m: plural_number_words(number_to_words(int(m[1]))), text)


# A minus sign only where a hyphen can't be meant: at the start or after a space
# or opening bracket.
_NUMBER = re.compile(rf"(?:^|(?<=[\s(\[\"'/]))(-)?{NUM}{NUM_END}|{NUM_START}{NUM}{NUM_END}")


def _number(m: re.Match[str]) -> str:
    if m[2] is not None:
        return ("minus " if m[1] else "") + decimal_from(m[2], m[3])
    return decimal_from(m[4], m[5])


def _expand_numbers(text: str) -> str:
    return _NUMBER.sub(_number, text)


_PUNCTUATION_FIXES: list[tuple[re.Pattern[str], str]] = [
    # Dashes used as pauses (not hyphens inside words) become a comma pause.
    (re.compile(r"\s*(?:[—–]|--+)\s*|\s+-\s+"), ", "),
    (re.compile(r"\.{4,}|(?:\.\s){2,}\."), "..."),
    (re.compile(r"[!?]*\?[!?]*"), "?"),
    (re.compile(r"!+"), "!"),
    (re.compile(r"([,;:])(?:\s*[,;:])+"), r"\1"),
    (re.compile(r"\s+([,;:.!?])"), r"\1"),
    (re.compile(r"[,;:]+(?=[.!?]|$)"), ""),
    (re.compile(r"^[\s,;:.!?]+"), ""),
    (re.compile(r"\s+"), " "),
]


def _clean_punctuation(text: str) -> str:
    for pattern, replacement in _PUNCTUATION_FIXES:
        text = pattern.sub(replacement, text)
    return text.strip()


_PASSES: tuple[Callable[[str], str], ...] = (
    expand_dates,
    _expand_phone_numbers,
    _expand_ranges,
    expand_times,
    expand_notations,
    _expand_money,
    _expand_percentages,
    _expand_abbreviations,
    _expand_units,
    _expand_symbols,
    _expand_fractions,
    _expand_ordinals,
    _expand_years,
    _expand_numbers,
    _clean_punctuation,
)


def normalize_english(text: str) -> str:
    """Spell out numbers, money, dates, times, units, symbols and abbreviations."""
    text = clean_text(text)
    for expand in _PASSES:
        text = expand(text)
    return text
