"""Word timestamps and captions for a sync synthesis (``"timestamps": true``, ``"captions"``).

Words are rendered with the audio (the models report symbol durations) and stored beside it
(``storage/word_files.py``). A cached answer takes them from there; audio that was cached by a
request without timestamps has none, so it is rendered again, words with it, under the same key.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from storage.word_files import WordFiles, caption_key

from .audio_request import AudioRequest, Result
from .synthesis import SynthesisService


async def synthesize(service: SynthesisService, req: AudioRequest, want_bytes: bool = False) -> Result:
    """``service.synthesize`` plus, when asked for, the words and a captions URL."""
    if req.captions:
        req = replace(req, timestamps=True)  # captions are made from the words
    result = await service.synthesize(req, want_bytes)
    if not req.timestamps:
        return result
    words, fresh = result.words, result.words is not None
    if words is None:
        words = await asyncio.to_thread(WordFiles(service.store).get_words, result.key)
    if words is None:
        result = await service.synthesize(replace(req, cache=False), want_bytes)
        words, fresh = result.words or [], True
    return await with_captions(service, req.captions, replace(result, words=words), fresh)


async def with_captions(service: SynthesisService, fmt: str | None, result: Result, fresh: bool) -> Result:
    """``result`` with its captions stored beside the audio (made again if the words are new)."""
    if not fmt:
        return result
    files = WordFiles(service.store)
    key = caption_key(result.key, fmt)
    if fresh or await asyncio.to_thread(service.store.head, key) is None:
        await asyncio.to_thread(files.put_captions, result.key, result.words or [], fmt)
    return replace(result, captions_url=service.store.url(key))
