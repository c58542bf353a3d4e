"""Synthesizer deployment: one model family's acoustic model + decoder.

Bound once per family (``Synthesizer-piper``, ``Synthesizer-kokoro``) so each scales on its own.
On CPU a replica renders the sentences of concurrent requests side by side, one per core, and a
sentence that is alone with every core (``tts_engine/parallel.py``); on GPU concurrent sentences
are gathered into padded batches. Freed memory goes back to the OS between renders.
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
from tts_engine.parallel import SENTENCE, STREAM, RenderPool, cpu_budget
from tts_engine.settings import Settings

from .options import SYNTHESIZER


@serve.deployment(name="Synthesizer", **SYNTHESIZER)
class Synthesizer:
    def __init__(self, settings: dict | None = None, family: str = "piper") -> None:
        self.engine = TTSEngine(Settings(**(settings or {})))
        s = self.engine.settings
        self._render_padded.set_max_batch_size(s.batch_max_size)
        self._render_padded.set_batch_wait_timeout_s(s.batch_wait_timeout_s)
        # Ray gives a fractional-CPU actor OMP_NUM_THREADS=1; the pool sets each render's torch
        # threads itself, from the cores this replica may use (settings.torch_threads overrides).
        self.padded = self.engine.device.type != "cpu"
        self.pool = RenderPool(cpu_budget(s.torch_threads), s.render_workers, name=f"render-{family}")
        self.engine.model(next(v.id for v in self.engine.voices.list() if v.family == family))  # load first
        self.batch_sizes: Counter[int] = Counter()
        self.rendering = 0  # renders and streams in progress
        self.renders_done = 0
        self.trimmed_at = 0.0
        self.batch_histogram = Histogram(
            "voxserve_batch_size", description="Sentences per Synthesizer batch",
            boundaries=[1, 2, 4, 8, 16, 32], tag_keys=("family",),
        )
        self.batch_histogram.set_default_tags({"family": family})

    async def render(self, item: RenderItem) -> Rendered:
        """One sentence -> its audio and symbol durations."""
        self.rendering += 1
        try:
            if self.padded:
                return await self._render_padded(item)
            self.batch_sizes[1] += 1
            return await self.pool.run(self._render_one, item, priority=SENTENCE)
        finally:
            self.rendering -= 1
            self.renders_done += 1
            self._release_memory()

    def _render_one(self, item: RenderItem) -> Rendered:
        return self.engine.render_batch(item.voice, [item])[0]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _render_padded(self, items: list[RenderItem]) -> list[Rendered]:
        """GPU: Serve gathers concurrent calls into ``items``, rendered as padded batches per voice."""
        self.batch_sizes[len(items)] += 1
        self.batch_histogram.observe(len(items))
        return await self.pool.run(self._render_grouped, items, priority=SENTENCE)

    def _render_grouped(self, items: list[RenderItem]) -> list[Rendered]:
        out: list[Rendered | None] = [None] * len(items)
        by_voice: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_voice.setdefault(item.voice, []).append(i)
        for voice, rows in by_voice.items():
            for i, rendered in zip(rows, self.engine.render_batch(voice, [items[i] for i in rows])):
                out[i] = rendered
        return out  # type: ignore[return-value]

    async def render_stream(self, item: RenderItem) -> AsyncIterator[Rendered]:
        """Chunks of one sentence as the decoder produces them (the first one short, with the symbol
        durations); each chunk's work goes ahead of queued whole sentences: a listener is waiting."""
        self.rendering += 1
        try:
            async for chunk in self.pool.iterate(self.engine.render_stream(item), priority=STREAM):
                yield chunk
        finally:
            self.rendering -= 1
            self.renders_done += 1
            self._release_memory()

    def _release_memory(self) -> None:
        """Freed buffers back to the OS once idle for ``trim_idle_after_s``, and at least every
        ``trim_busy_interval_s`` under load: without it a replica grows to several GB
        (tts_engine/models/fastpath.py); more often, the renders after each trim fault the pages
        back in (issue 10: ~18% CPU if every render, which a client sending one request after
        another caused while an idle replica trimmed at once)."""
        s = self.engine.settings
        loop = asyncio.get_running_loop()
        if not self.rendering:
            loop.call_later(s.trim_idle_after_s, self._trim_if_idle, self.renders_done)
            return
        if time.monotonic() - self.trimmed_at >= s.trim_busy_interval_s:
            self._trim(loop)

    def _trim_if_idle(self, renders_done: int) -> None:
        if not self.rendering and self.renders_done == renders_done:   # nothing rendered since
            self._trim(asyncio.get_running_loop())

    def _trim(self, loop: asyncio.AbstractEventLoop) -> None:
        self.trimmed_at = time.monotonic()
        # In the thread pool, not awaited: no answer waits for the trim.
        loop.run_in_executor(None, release_freed_memory)

    def stats(self) -> dict:
        return {"batch_sizes": dict(self.batch_sizes), "parallel": self.pool.stats(), "pid": os.getpid()}
