"""Word timestamps and captions kept next to the audio they time.

For ``tts/ab/<sha>.mp3`` they are ``tts/ab/<sha>.words.json`` and ``tts/ab/<sha>.srt`` / ``.vtt``:
content-addressed like the audio (same key stem), so a cached audio answer finds its words too.
"""

from __future__ import annotations

import json

from tts_engine.errors import NotFound
from tts_engine.timestamps import CAPTION_CONTENT_TYPES, WordTiming, captions

from .base import AudioStore

WORDS_SUFFIX = ".words.json"


def stem(audio_key: str) -> str:
    """The audio key without its extension."""
    head, _, name = audio_key.rpartition("/")
    base = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}/{base}" if head else base


def words_key(audio_key: str) -> str:
    return stem(audio_key) + WORDS_SUFFIX


def caption_key(audio_key: str, fmt: str) -> str:
    return f"{stem(audio_key)}.{fmt}"


class WordFiles:
    def __init__(self, store: AudioStore) -> None:
        self.store = store

    def put_words(self, audio_key: str, words: list[WordTiming]) -> None:
        data = json.dumps({"words": [w.to_dict() for w in words]}, ensure_ascii=False).encode()
        self.store.put(words_key(audio_key), data, "application/json")

    def get_words(self, audio_key: str) -> list[WordTiming] | None:
        """The stored words of ``audio_key``, or None if none were stored with it."""
        try:
            data = json.loads(self.store.get(words_key(audio_key)))
        except NotFound:
            return None
        return [WordTiming.from_dict(w) for w in data["words"]]

    def put_captions(self, audio_key: str, words: list[WordTiming], fmt: str) -> str:
        """Store ``fmt`` captions (srt | vtt) of ``words`` beside the audio; returns their key."""
        key = caption_key(audio_key, fmt)
        self.store.put(key, captions(words, fmt).encode("utf-8"), CAPTION_CONTENT_TYPES[fmt])
        return key
