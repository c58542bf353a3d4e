"""English number words: cardinals, ordinals, years, digit strings, and the patterns that find
numbers in text (shared by the normalizer's passes and by SSML ``say-as``)."""

from __future__ import annotations

ONES = (
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
        parts.append(f"{ONES[hundreds]} hundred")
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        parts.append(_TENS[tens] + (f"-{ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        parts.append(ONES[rest])
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
    return " ".join(ONES[int(d)] for d in digits if d.isdecimal())


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
        return f"{head} oh {ONES[rest]}"
    return f"{head} {number_to_words(rest)}"


def plural_number_words(words: str) -> str:
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


def cardinal_from(digits: str) -> str:
    """Cardinal for a digit string; leading zeros ("007") are read digit by digit."""
    plain = digits.replace(",", "")
    # Checking the length first also keeps int() away from its 4300-digit limit.
    if len(plain) > _MAX_SPOKEN_DIGITS:
        return grouped_digits_to_words(plain)
    if len(plain) > 1 and plain.startswith("0"):
        return digits_to_words(plain)
    return number_to_words(int(plain))


def decimal_from(whole: str, fraction: str | None) -> str:
    words = cardinal_from(whole) if whole else ""
    if fraction:
        words = f"{words} point {digits_to_words(fraction)}".strip()
    return words


# A number as written: "5", "1,234", "3.14". Groups: whole, fraction.
NUM = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
# Not glued to a preceding word, number or decimal point.
NUM_START = r"(?<![\w.,])"
# Not continued by more digits, letters or another decimal part ("1.2.3").
NUM_END = r"(?![\w]|[.,]\d)"
