"""Sentences out of text that arrives in fragments (an LLM's tokens over the realtime WebSocket).

A sentence is complete once its end is certain: a terminator followed by whitespace or more text
("Dr." and "3." wait, as the sentence splitter decides), a Chinese/Japanese full stop at once,
and a trailing "!" or "?" at once. A trailing "." may still become "3.5" or "e.g.", so it waits
for the next fragment or for ``grace_s`` without one (the caller's timer, ``due``). Text that
runs long without an end is cut at a clause mark or space once it passes ``max_chars``, so the
first audio never waits for a very long sentence. ``flush`` hands out whatever is held.
"""

from __future__ import annotations

import re
import time

from tts_engine.text.sentences import sentence_spans

_CERTAIN_END = re.compile(r"[!?。！？][\"')\]}»”’」』）]*$")
_MAYBE_END = re.compile(r"\.[\"')\]}»”’」』）]*$")
_CUT = re.compile(r".*[,;:，、；：—](?=\s|$)|.*\s", re.S)


class SentenceBuffer:
    def __init__(self, max_chars: int = 300, grace_s: float = 0.15) -> None:
        self.held = ""
        self.max_chars = max_chars
        self.grace_s = grace_s
        self._maybe_since: float | None = None

    def feed(self, fragment: str, now: float | None = None) -> list[str]:
        """Add a fragment; the sentences it completes, in order."""
        self.held += fragment
        done = self._complete()
        self._maybe_since = (now if now is not None else time.monotonic()) if _MAYBE_END.search(self.held) else None
        return done

    def due(self, now: float | None = None) -> list[str]:
        """The held sentence, if it ends in "." and no fragment came for ``grace_s``."""
        now = now if now is not None else time.monotonic()
        if self._maybe_since is not None and now - self._maybe_since >= self.grace_s and self._ends_sentence():
            return self.flush()
        return []

    def deadline(self) -> float | None:
        """When ``due`` may next hand something out (monotonic time), or None."""
        return None if self._maybe_since is None else self._maybe_since + self.grace_s

    def flush(self) -> list[str]:
        text, self.held, self._maybe_since = self.held.strip(), "", None
        return [text] if text else []

    @property
    def pending_chars(self) -> int:
        return len(self.held)

    def _ends_sentence(self) -> bool:
        """The splitter ends a sentence right at the end of the held text ("Dr." it does not)."""
        spans = list(sentence_spans(self.held))
        return len(spans) >= 2 and spans[-1] == ""

    def _complete(self) -> list[str]:
        # Spans partition the text; each but the last ends at a sentence end, judged with the
        # text that follows, or the end of what has arrived so far.
        *ends, last = sentence_spans(self.held)
        if last.strip():
            complete, keep = ends, last
        elif last or (ends and _CERTAIN_END.search(ends[-1])):  # whitespace after it, or "!", "?", "。"
            complete, keep = ends, ""
        else:  # ends in "." with nothing after: maybe "3." of "3.5"
            complete, keep = ends[:-1], (ends[-1] if ends else "")
        out = [s.strip() for s in complete if s.strip()]
        self.held = keep
        while len(self.held) > self.max_chars:
            m = _CUT.match(self.held, 0, self.max_chars)
            cut = m.end() if m and m.end() > 0 else self.max_chars
            out.append(self.held[:cut].strip())
            self.held = self.held[cut:].lstrip()
        return [s for s in out if s]
