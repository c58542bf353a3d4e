"""Synthesizer deployment: one model family's acoustic model + decoder, batched across requests.

Bound once per family (``Synthesizer-piper``, ``Synthesizer-kokoro``) so each scales on its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator

from ray import serve
from ray.serve.metrics import Histogram

from tts_engine.engine import TTSEngine
from tts_engine.models.fastpath import release_freed_memory
from tts_engine.models.protocol import Rendered, RenderItem
from tts_engine.settings import Settings

from .options import SYNTHESIZER

TRIM_EVERY_S = 1.0


@serve.deployment(name="Synthesizer", **SYNTHESIZER)
class Synthesizer:
    def __init__(self, settings: dict | None = None, family: str = "piper") -> None:
        self.engine = TTSEngine(Settings(**(settings or {})))
        s = self.engine.settings
        self.render.set_max_batch_size(s.batch_max_size)
        self.render.set_batch_wait_timeout_s(s.batch_wait_timeout_s)
        self.engine.model(next(v.id for v in self.engine.voices.list() if v.family == family))  # load first
        self.batch_sizes: Counter[int] = Counter()
        self.rendering = 0  # batches and streams in progress
        self.trimmed_at = 0.0
        self.batch_histogram = Histogram(
            "voxserve_batch_size", description="Sentences per Synthesizer batch",
            boundaries=[1, 2, 4, 8, 16, 32], tag_keys=("family",),
        )
        self.batch_histogram.set_default_tags({"family": family})

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def render(self, items: list[RenderItem]) -> list[Rendered]:
        """One sentence per call (its audio and symbol durations); Serve gathers concurrent calls
        into ``items``."""
        self.batch_sizes[len(items)] += 1
        self.batch_histogram.observe(len(items))
        # Torch releases the GIL: rendering in a thread keeps the loop free to gather the next batch.
        self.rendering += 1
        try:
            return await asyncio.to_thread(self._render_grouped, items)
        finally:
            self.rendering -= 1
            self._release_memory()

    def _render_grouped(self, items: list[RenderItem]) -> list[Rendered]:
        out: list[Rendered | None] = [None] * len(items)
        by_voice: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_voice.setdefault(item.voice, []).append(i)
        # On CPU a padded batch computes every item at the longest one's length and the cores
        # are already busy at batch 1 (bench/engine.py: batch 8 gives 40% of batch 1's throughput),
        # so there the gathered items run one after another; on GPU they run as one padded batch.
        padded = self.engine.device.type != "cpu"
        for voice, rows in by_voice.items():
            groups = [rows] if padded else [[i] for i in rows]
            for group in groups:
                for i, audio in zip(group, self.engine.render_batch(voice, [items[i] for i in group])):
                    out[i] = audio
        return out  # type: ignore[return-value]

    async def render_stream(self, item: RenderItem) -> AsyncIterator[Rendered]:
        """Chunks of one sentence as the decoder produces them (the first one short, with the
        symbol durations)."""
        chunks = self.engine.render_stream(item)
        done = object()
        self.rendering += 1
        try:
            while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
                yield chunk
        finally:
            self.rendering -= 1
            self._release_memory()

    def _release_memory(self) -> None:
        """Freed buffers back to the OS when idle, and at least every TRIM_EVERY_S under load:
        without it a replica grows to several GB (tts_engine/models/fastpath.py, docs/BENCHMARKS.md)."""
        now = time.monotonic()
        if self.rendering and now - self.trimmed_at < TRIM_EVERY_S:
            return
        self.trimmed_at = now
        # In the thread pool, not awaited: the answer does not wait for the trim.
        asyncio.get_running_loop().run_in_executor(None, release_freed_memory)

    def stats(self) -> dict:
        return {"batch_sizes": dict(self.batch_sizes), "pid": os.getpid()}
