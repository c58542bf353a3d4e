"""Word timestamps and captions for a sync synthesis (``"timestamps": true``, ``"captions"``).

Words are rendered with the audio (the models report symbol durations) and stored beside it
(``storage/word_files.py``). A cached answer takes them from there; audio that was cached by a
request without timestamps has none, so it is rendered again, words with it, under the same key.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from storage.word_files import WordFiles, caption_key

from .synthesis import AudioRequest, Result, SynthesisService


async def synthesize(service: SynthesisService, req: AudioRequest, want_bytes: bool = False) -> Result:
    """``service.synthesize`` plus, when asked for, the words and a captions URL."""
    if req.captions:
        req = replace(req, timestamps=True)  # captions are made from the words
    result = await service.synthesize(req, want_bytes)
    if not req.timestamps:
        return result
    files = WordFiles(service.store)
    words, fresh = result.words, result.words is not None
    if words is None:
        words = await asyncio.to_thread(files.get_words, result.key)
    if words is None:
        result = await service.synthesize(replace(req, cache=False, timestamps=True), want_bytes)
        words, fresh = result.words or [], True
    captions_url = None
    if req.captions:
        key = caption_key(result.key, req.captions)
        if fresh or await asyncio.to_thread(service.store.head, key) is None:
            await asyncio.to_thread(files.put_captions, result.key, words, req.captions)
        captions_url = service.store.url(key)
    return replace(result, words=words, captions_url=captions_url)
