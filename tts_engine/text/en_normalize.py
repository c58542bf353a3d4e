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

__all__ = [
    "clean_text",
    "normalize_english",
    "number_to_words",
    "ordinal_to_words",
    "year_to_words",
    "digits_to_words",
]

# ---------------------------------------------------------------------------
# Number words
# ---------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion")

# Beyond the largest named scale, reading digit by digit is the honest fallback.
_MAX_CARDINAL = 10 ** (3 * len(_SCALES)) - 1

_IRREGULAR_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand_words(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts: list[str] = []
    if hundreds:
        parts.append(f"{_ONES[hundreds]} hundred")
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        parts.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        parts.append(_ONES[rest])
    return " ".join(parts)


def number_to_words(n: int) -> str:
    """American cardinal without "and": 1234 -> "one thousand two hundred thirty-four"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n > _MAX_CARDINAL:
        return digits_to_words(str(n))
    if n < 1000:
        return _below_thousand_words(n)
    groups: list[str] = []
    scale = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            words = _below_thousand_words(chunk)
            groups.append(f"{words} {_SCALES[scale]}".strip())
        scale += 1
    return " ".join(reversed(groups))


def ordinal_to_words(n: int) -> str:
    """22 -> "twenty-second"; only the last word of the cardinal changes."""
    words = number_to_words(n)
    head, sep, last = words.rpartition(" ")
    prefix, hyphen, last = last.rpartition("-")
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + prefix + hyphen + last


def digits_to_words(digits: str) -> str:
    """Digit by digit, for decimals, leading zeros and numbers past our scales."""
    return " ".join(_ONES[int(d)] for d in digits if d.isdecimal())


def year_to_words(n: int) -> str:
    """1999 -> "nineteen ninety-nine", 2005 -> "two thousand five", 2024 -> "twenty twenty-four"."""
    if not 1000 <= n <= 9999:
        return number_to_words(n)
    century, rest = divmod(n, 100)
    # 1000-1009 and 2000-2009 are said as plain thousands ("two thousand five").
    if century % 10 == 0 and rest < 10:
        return number_to_words(n)
    head = number_to_words(century)
    if rest == 0:
        return f"{head} hundred"
    if rest < 10:
        return f"{head} oh {_ONES[rest]}"
    return f"{head} {number_to_words(rest)}"


def _plural_number_words(words: str) -> str:
    """"nineteen ninety" -> "nineteen nineties", for decades."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith("x"):
        return words + "es"
    return words + "s"


# Past this many digits nobody says the cardinal ("nine hundred ninety-nine quadrillion ..."):
# an account number or a run of digits is read digit by digit, in groups of three.
_MAX_SPOKEN_DIGITS = 15


def grouped_digits_to_words(digits: str) -> str:
    """Digit by digit in groups of three with a pause between groups: "1234567" -> "one, two three
    four, five six seven" (grouped from the right, as the number would be written)."""
    head = len(digits) % 3
    groups = ([digits[:head]] if head else []) + [digits[i:i + 3] for i in range(head, len(digits), 3)]
    return ", ".join(digits_to_words(g) for g in groups)


def _cardinal_from(digits: str) -> str:
    """Cardinal for a digit string; leading zeros ("007") are read digit by digit."""
    plain = digits.replace(",", "")
    # Checking the length first also keeps int() away from its 4300-digit limit.
    if len(plain) > _MAX_SPOKEN_DIGITS:
        return grouped_digits_to_words(plain)
    if len(plain) > 1 and plain.startswith("0"):
        return digits_to_words(plain)
    return number_to_words(int(plain))


def _decimal_from(whole: str, fraction: str | None) -> str:
    words = _cardinal_from(whole) if whole else ""
    if fraction:
        words = f"{words} point {digits_to_words(fraction)}".strip()
    return words


# A number as written: "5", "1,234", "3.14". Groups: whole, fraction.
_NUM = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
# Not glued to a preceding word, number or decimal point.
_NUM_START = r"(?<![\w.,])"
# Not continued by more digits, letters or another decimal part ("1.2.3").
_NUM_END = r"(?![\w]|[.,]\d)"

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

_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_MONTH_BY_PREFIX = {m[:3].lower(): m for m in _MONTHS} | {"sept": "September"}
_MONTH_NAME = (
    r"(January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)


def _month_name(written: str) -> str:
    key = written.rstrip(".").lower()
    return _MONTH_BY_PREFIX["sept" if key.startswith("sept") else key[:3]]


def _date_words(year: int | None, month: int, day: int) -> str:
    words = f"{_MONTHS[month - 1]} {ordinal_to_words(day)}"
    return f"{words}, {year_to_words(year)}" if year is not None else words


def _valid_date(month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= 31


_ISO_DATE = re.compile(r"(?<![\w.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w-]|[.,]\d)")
_SLASH_DATE = re.compile(r"(?<![\w./])(\d{1,2})/(\d{1,2})/(\d{4})(?![\w/]|[.,]\d)")
_MONTH_DAY = re.compile(
    rf"\b{_MONTH_NAME}\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?(?![.,]\d)"
)
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_NAME}(?:,?\s+(\d{{4}})\b)?(?![.,]\d)"
)


def _iso_date(m: re.Match[str]) -> str:
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    return _date_words(year, month, day) if _valid_date(month, day) else m[0]


def _slash_date(m: re.Match[str]) -> str:
    first, second, year = int(m[1]), int(m[2]), int(m[3])
    # US order (month first) unless the first field cannot be a month.
    month, day = (first, second) if first <= 12 else (second, first)
    return _date_words(year, month, day) if _valid_date(month, day) else m[0]


def _month_day(m: re.Match[str]) -> str:
    day = int(m[2])
    if not 1 <= day <= 31:
        return m[0]
    return _date_words(int(m[3]) if m[3] else None, _MONTHS.index(_month_name(m[1])) + 1, day)


def _day_month(m: re.Match[str]) -> str:
    day = int(m[1])
    if not 1 <= day <= 31:
        return m[0]
    article = "" if m.string[max(0, m.start() - 4) : m.start()].lower() == "the " else "the "
    words = f"{article}{ordinal_to_words(day)} of {_month_name(m[2])}"
    return f"{words}, {year_to_words(int(m[3]))}" if m[3] else words


def _expand_dates(text: str) -> str:
    text = _ISO_DATE.sub(_iso_date, text)
    text = _SLASH_DATE.sub(_slash_date, text)
    text = _MONTH_DAY.sub(_month_day, text)
    return _DAY_MONTH.sub(_day_month, text)


# "p.m." may also be the sentence's full stop; it keeps that role when what
# follows looks like a new sentence.
_MERIDIEM = r"(?:\s?([AaPp])\.?\s?[Mm](\.)?(?![A-Za-z]))"
_CLOCK_TIME = re.compile(rf"(?<![\w.:])(\d{{1,2}}):(\d{{2}})(?::(\d{{2}}))?{_MERIDIEM}?(?![\w:]|[.,]\d)")
_HOUR_MERIDIEM = re.compile(rf"(?<![\w.:,$€£¥])(\d{{1,2}}){_MERIDIEM}")


def _starts_new_sentence(text: str, end: int) -> bool:
    rest = text[end:]
    return not rest.strip() or bool(re.match(r"\s+[\"'(\[]?[A-Z]", rest))


def _meridiem_words(m: re.Match[str], letter_group: int, dot_group: int) -> str:
    if not m[letter_group]:
        return ""
    words = f" {m[letter_group].lower()} m"
    if m[dot_group] and _starts_new_sentence(m.string, m.end()):
        words += "."
    return words


def _minutes_words(minutes: int) -> str:
    return f"oh {_ONES[minutes]}" if minutes < 10 else number_to_words(minutes)


def _clock_time(m: re.Match[str]) -> str:
    hour, minutes = int(m[1]), int(m[2])
    seconds = int(m[3]) if m[3] else None
    has_meridiem = bool(m[4])
    if hour > 24 or minutes > 59 or (seconds is not None and seconds > 59):
        return m[0]
    if has_meridiem and not 1 <= hour <= 12:
        return m[0]
    if minutes:
        words = f"{number_to_words(hour)} {_minutes_words(minutes)}"
    elif has_meridiem:
        words = number_to_words(hour)
    elif 1 <= hour <= 12:
        words = f"{number_to_words(hour)} o'clock"
    else:
        words = f"{number_to_words(hour)} hundred"
    if seconds:
        words += f" and {number_to_words(seconds)} second{'s' if seconds != 1 else ''}"
    return words + _meridiem_words(m, 4, 5)


def _hour_meridiem(m: re.Match[str]) -> str:
    hour = int(m[1])
    if not 1 <= hour <= 12:
        return m[0]
    return number_to_words(hour) + _meridiem_words(m, 2, 3)


_MERIDIEM_RANGE = re.compile(r"\b([ap] m)\s?[-–]\s?(?=[a-z])")


def _expand_times(text: str) -> str:
    text = _CLOCK_TIME.sub(_clock_time, text)
    text = _HOUR_MERIDIEM.sub(_hour_meridiem, text)
    # "9am-5pm": the ranges pass ran before the times existed as words.
    return _MERIDIEM_RANGE.sub(r"\1 to ", text)


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
    rf"(?<![\w.,])(-)?([$€£¥])\s?{_NUM}"
    r"(?:\s?(thousand|million|billion|trillion)\b|(k|K|m|M|mn|MM|b|B|bn|t|T|tn)\b)?"
    r"(?![.,]\d)"
)


def _money(m: re.Match[str]) -> str:
    sign, symbol, whole, fraction = m[1], m[2], m[3], m[4]
    magnitude_word = m[5] or m[6]
    unit, units, subunit, subunits = _CURRENCIES[symbol]
    minus = "minus " if sign else ""
    if magnitude_word:
        amount = _decimal_from(whole, fraction)
        return f"{minus}{amount} {_MAGNITUDES[magnitude_word.lower()]} {units}"
    if fraction and (subunit is None or len(fraction) != 2):
        return f"{minus}{_decimal_from(whole, fraction)} {units}"
    plain = whole.replace(",", "")
    cents = int(fraction) if fraction else 0
    parts: list[str] = []
    if plain.strip("0") or not cents:
        parts.append(f"{_cardinal_from(whole)} {unit if plain == '1' else units}")
    if cents:
        parts.append(f"{number_to_words(cents)} {subunit if cents == 1 else subunits}")
    return minus + " and ".join(parts)


def _expand_money(text: str) -> str:
    return _MONEY.sub(_money, text)


_PERCENT = re.compile(rf"{_NUM_START}(-)?{_NUM}\s?%")


def _percent(m: re.Match[str]) -> str:
    return ("minus " if m[1] else "") + _decimal_from(m[2], m[3]) + " percent"


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
        return place + ("." if _starts_new_sentence(m.string, m.end()) else "")
    # "I saw the Dr." still ends its sentence.
    return _TITLES[abbrev] + ("" if m.string[m.end():].strip() else ".")


def _final_abbrev(m: re.Match[str]) -> str:
    words = _SENTENCE_FINAL_ABBREVS[m[1]]
    return words + ("." if _starts_new_sentence(m.string, m.end()) else "")


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
    rf"{_NUM_START}(-?{_NUM})\s?("
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
_ORDINAL = re.compile(rf"{_NUM_START}(\d{{1,3}}(?:,\d{{3}}){{1,6}}|\d{{1,21}})(?:st|nd|rd|th|ST|ND|RD|TH)\b")


def _expand_ordinals(text: str) -> str:
    return _ORDINAL.sub(lambda m: ordinal_to_words(int(m[1].replace(",", ""))), text)


# A bare four-digit number in 1000-2099 is far more often a year than a count.
_YEAR = re.compile(rf"{_NUM_START}(1\d{{3}}|20\d{{2}})(s)?(?![\w]|[.,]\d)")
_SHORT_DECADE = re.compile(r"(?<![\w.,])'?([1-9]0)s\b")


def _year(m: re.Match[str]) -> str:
    words = year_to_words(int(m[1]))
    return _plural_number_words(words) if m[2] else words


def _expand_years(text: str) -> str:
    text = _YEAR.sub(_year, text)
    return _SHORT_DECADE.sub(lambda m: _plural_number_words(number_to_words(int(m[1]))), text)


# A minus sign only where a hyphen can't be meant: at the start or after a space
# or opening bracket.
_NUMBER = re.compile(rf"(?:^|(?<=[\s(\[\"'/]))(-)?{_NUM}{_NUM_END}|{_NUM_START}{_NUM}{_NUM_END}")


def _number(m: re.Match[str]) -> str:
    if m[2] is not None:
        return ("minus " if m[1] else "") + _decimal_from(m[2], m[3])
    return _decimal_from(m[4], m[5])


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
    _expand_dates,
    _expand_phone_numbers,
    _expand_ranges,
    _expand_times,
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
