"""Request text checked before any processing: a typed error naming the ``text`` field, or the text.

Both frontends (Piper's ``frontend.py``, ``kokoro_frontend.py``) and the engine refuse the same
inputs the same way, so the rules live here once: not a string, empty, over the length limit,
or holding a control character or an unpaired surrogate that espeak cannot take.
"""

from __future__ import annotations

import re

from tts_engine.errors import EmptyText, InvalidInput, TextTooLong

__all__ = ["validate_text"]

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
