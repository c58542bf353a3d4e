"""English dates and clock times as words: the normalizer's date and time passes."""

from __future__ import annotations

import re

from tts_engine.text.en_numbers import (
    ONES,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)

MONTHS = (
    "January February March April May June July August September October November December"
).split()
_MONTH_BY_PREFIX = {m[:3].lower(): m for m in MONTHS} | {"sept": "September"}
_MONTH_NAME = (
    r"(January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)


def _month_name(written: str) -> str:
    key = written.rstrip(".").lower()
    return _MONTH_BY_PREFIX["sept" if key.startswith("sept") else key[:3]]


def _date_words(year: int | None, month: int, day: int) -> str:
    words = f"{MONTHS[month - 1]} {ordinal_to_words(day)}"
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
    return _date_words(int(m[3]) if m[3] else None, MONTHS.index(_month_name(m[1])) + 1, day)


def _day_month(m: re.Match[str]) -> str:
    day = int(m[1])
    if not 1 <= day <= 31:
        return m[0]
    article = "" if m.string[max(0, m.start() - 4) : m.start()].lower() == "the " else "the "
    words = f"{article}{ordinal_to_words(day)} of {_month_name(m[2])}"
    return f"{words}, {year_to_words(int(m[3]))}" if m[3] else words


def expand_dates(text: str) -> str:
    text = _ISO_DATE.sub(_iso_date, text)
    text = _SLASH_DATE.sub(_slash_date, text)
    text = _MONTH_DAY.sub(_month_day, text)
    return _DAY_MONTH.sub(_day_month, text)


# "p.m." may also be the sentence's full stop; it keeps that role when what
# follows looks like a new sentence.
_MERIDIEM = r"(?:\s?([AaPp])\.?\s?[Mm](\.)?(?![A-Za-z]))"
_CLOCK_TIME = re.compile(rf"(?<![\w.:])(\d{{1,2}}):(\d{{2}})(?::(\d{{2}}))?{_MERIDIEM}?(?![\w:]|[.,]\d)")
_HOUR_MERIDIEM = re.compile(rf"(?<![\w.:,$€£¥])(\d{{1,2}}){_MERIDIEM}")


def starts_new_sentence(text: str, end: int) -> bool:
    rest = text[end:]
    return not rest.strip() or bool(re.match(r"\s+[\"'(\[]?[A-Z]", rest))


def _meridiem_words(m: re.Match[str], letter_group: int, dot_group: int) -> str:
    if not m[letter_group]:
        return ""
    words = f" {m[letter_group].lower()} m"
    if m[dot_group] and starts_new_sentence(m.string, m.end()):
        words += "."
    return words


def _minutes_words(minutes: int) -> str:
    return f"oh {ONES[minutes]}" if minutes < 10 else number_to_words(minutes)


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


def expand_times(text: str) -> str:
    text = _CLOCK_TIME.sub(_clock_time, text)
    text = _HOUR_MERIDIEM.sub(_hour_meridiem, text)
    # "9am-5pm": the ranges pass ran before the times existed as words.
    return _MERIDIEM_RANGE.sub(r"\1 to ", text)
