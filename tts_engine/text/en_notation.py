"""English numbers written in a notation rather than as a quantity: versions and addresses
("v2.1.0", "192.168.0.1"), scores and ratios ("2:0", "16:9"), multipliers ("2x") and "24/7".

Runs after clock times (``en_datetime.expand_times``: "3:30" is a time, "16:9" is not) and before
plain numbers, which would otherwise read "2.1.0" as "two point one" and a stray ".0".
"""

from __future__ import annotations

import re

from tts_engine.text.en_numbers import digits_to_words, number_to_words

__all__ = ["expand_notations"]

# Three or more dotted parts; a leading "v" is the word "version". A d.m.yyyy date is left alone.
_DOTTED = re.compile(r"(?<![\w.])([vV])?(\d+(?:\.\d+){2,})(?![\w]|\.\d)")
_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_RATIO = re.compile(r"(?<![\w.:])(\d{1,3}):(\d{1,3})(?![\w:]|[.,]\d)")
_MULTIPLIER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[x×](?![\w])")
_ROUND_THE_CLOCK = re.compile(r"(?<![\w/])24/7(?![\w/])")


def _part(digits: str) -> str:
    """One dotted part: a number, or digit by digit where it has a leading zero ("05")."""
    return digits_to_words(digits) if len(digits) > 1 and digits.startswith("0") else number_to_words(int(digits))


def _dotted(m: re.Match[str]) -> str:
    if _DOTTED_DATE.fullmatch(m[2]):
        return m[0]
    spoken = " point ".join(_part(p) for p in m[2].split("."))
    return f"version {spoken}" if m[1] else spoken


def _ratio(m: re.Match[str]) -> str:
    return f"{number_to_words(int(m[1]))} to {number_to_words(int(m[2]))}"


def _multiplier(m: re.Match[str]) -> str:
    whole, _, fraction = m[1].partition(".")
    number = number_to_words(int(whole)) + (" point " + digits_to_words(fraction) if fraction else "")
    return f"{number} times"


def expand_notations(text: str) -> str:
    """``text`` with versions, ratios, multipliers and "24/7" in words."""
    text = _ROUND_THE_CLOCK.sub("twenty-four seven", text)
    text = _DOTTED.sub(_dotted, text)
    text = _RATIO.sub(_ratio, text)
    return _MULTIPLIER.sub(_multiplier, text)
