"""Word timestamps: symbol durations from the model, mapped back to the words they speak, and
captions (SRT, WebVTT) made from them.

A sentence's ``Sentence.words`` says which ids speak which word; the model's ``Rendered``
says how many samples each id lasts. Both model families report durations (VITS: its duration
predictor's frames x hop; Kokoro: its frames x 600 samples, boundary pads included), so this
module never knows which family it times.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tts_engine.audio.assembly import FRAME_S, loud_frames
from tts_engine.models.protocol import Rendered


@dataclass(frozen=True)
class WordTiming:
    word: str
    start_s: float
    end_s: float

    def to_dict(self) -> dict:
        return {"word": self.word, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}

    @staticmethod
    def from_dict(data: dict) -> "WordTiming":
        return WordTiming(str(data["word"]), float(data["start_s"]), float(data["end_s"]))

    def shifted(self, seconds: float) -> "WordTiming":
        return WordTiming(self.word, self.start_s + seconds, self.end_s + seconds)


def sentence_words(spans: Sequence[tuple[str, int, int]], rendered: Rendered, sample_rate: int,
                   start_s: float = 0.0) -> list[WordTiming]:
    """The words of one rendered sentence, in seconds from ``start_s`` (where the sentence starts
    in the whole audio). Empty when the model reported no durations."""
    if rendered.durations is None or not spans:
        return []
    ends = list(itertools.accumulate(rendered.durations, initial=rendered.offset))
    last = len(ends) - 1
    out = []
    for word, first, end in spans:
        a, b = ends[min(first, last)], ends[min(end, last)]
        out.append(WordTiming(word, start_s + a / sample_rate, start_s + max(a, b) / sample_rate))
    return out


MIN_WORD_S = 0.03


def trimmed(words: Sequence[WordTiming], audio: np.ndarray, sample_rate: int,
            start_s: float = 0.0) -> list[WordTiming]:
    """Words with silence at their edges cut off (never extended), judged on ``audio`` (which
    starts at ``start_s``). Models park pauses in a symbol's duration: Kokoro gives a sentence's
    last sound half a second and more, a word's span should not claim it."""
    loud = loud_frames(audio, sample_rate)
    frames = len(loud)
    if frames == 0 or not words:
        return list(words)
    out = []
    for w in words:
        a = max(0, int((w.start_s - start_s) / FRAME_S))
        b = min(frames, int(np.ceil((w.end_s - start_s) / FRAME_S)))
        if b <= a or not loud[a:b].any():
            out.append(w)
            continue
        first = a + int(np.argmax(loud[a:b]))
        last = b - int(np.argmax(loud[a:b][::-1]))
        begin = max(w.start_s, start_s + first * FRAME_S)
        end = min(w.end_s, max(start_s + last * FRAME_S, begin + MIN_WORD_S))
        out.append(WordTiming(w.word, begin, max(begin, end)))
    return out


# ---------------------------------------------------------------------------------- captions

CAPTION_FORMATS = ("srt", "vtt")
CAPTION_CONTENT_TYPES = {"srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
MAX_CUE_CHARS = 42      # one subtitle line, as broadcast guidelines keep it
MAX_CUE_S = 6.0
PAUSE_BREAK_S = 0.35    # a pause this long (a sentence or clause end) starts a new cue


def cues(words: Sequence[WordTiming]) -> list[tuple[float, float, str]]:
    """Words grouped into caption cues: a new cue at a pause, or when a line would pass
    MAX_CUE_CHARS characters or MAX_CUE_S seconds."""
    groups: list[list[WordTiming]] = []
    for word in words:
        current = groups[-1] if groups else None
        if current is not None and not _starts_cue(current, word):
            current.append(word)
        else:
            groups.append([word])
    return [(g[0].start_s, g[-1].end_s, join_words(w.word for w in g)) for g in groups]


def _starts_cue(current: list[WordTiming], word: WordTiming) -> bool:
    text = join_words([*(w.word for w in current), word.word])
    return (word.start_s - current[-1].end_s >= PAUSE_BREAK_S or len(text) > MAX_CUE_CHARS
            or word.end_s - current[0].start_s > MAX_CUE_S)


def join_words(words: Iterable[str]) -> str:
    """Words as a line: spaces between them, none between two CJK characters."""
    out = ""
    for word in words:
        if out and not (_cjk(out[-1]) and _cjk(word[0])):
            out += " "
        out += word
    return out


def _cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF


def captions(words: Sequence[WordTiming], fmt: str) -> str:
    """SRT or WebVTT text for ``words``. Written here rather than with a subtitle library: the
    formats are a few lines, and pysubs2 (the maintained one that writes both) reads braces and
    ``\\N`` in the text as SSA markup and drops or rewrites them."""
    if fmt not in CAPTION_FORMATS:
        raise ValueError(f"caption format must be one of {CAPTION_FORMATS}")
    blocks = []
    for i, (start, end, text) in enumerate(cues(words), 1):
        if fmt == "srt":
            blocks.append(f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n")
        else:  # WebVTT cue text is HTML-like: & and < must be escaped
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            blocks.append(f"{i}\n{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n")
    body = "\n".join(blocks)
    return body if fmt == "srt" else "WEBVTT\n\n" + body


def _clock(seconds: float, decimal: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"
