"""Storing what a stream sends, and being honest when storage fails.

* ``StoreGuard``: before a stream's first byte, is storage taking writes? (a probe write, at most
  once per ``store_probe_interval_s``; any failure seen since forces a new probe). If not, the
  stream answers 503 instead of a 200 whose ``X-Audio-URL`` will never work.
* ``StreamSink``: the stream's bytes go to an ``Upload`` as produced (WAV: buffered, put at the end
  with real sizes in its header). If storage fails mid-way the client still gets all its audio;
  the bytes are kept and handed to ``DeferredStore``.
* ``DeferredStore``: retries such writes in the background for ``deferred_store_window_s``, and
  remembers each key's outcome (``pending`` / ``stored`` / ``failed`` + reason) for
  ``GET /v1/tts/status/{key}`` and the local ``/media`` route, so an advertised URL that does not
  work (yet) says why instead of a silent 404.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass

from storage import AudioStore
from tts_engine.audio import encoders
from tts_engine.errors import StorageUnavailable
from tts_engine.settings import Settings

log = logging.getLogger("voxserve")

OUTCOMES_KEPT = 4096
RETRY_MAX_PAUSE_S = 30.0


class StoreGuard:
    """Whether storage took a probe write recently; shared by every stream of a replica."""

    def __init__(self, store: AudioStore, interval_s: float) -> None:
        self.store, self.interval_s = store, interval_s
        self._ok_at = float("-inf")
        self._lock = asyncio.Lock()

    def failed(self) -> None:
        """Storage failed somewhere: the next stream probes again before promising a URL."""
        self._ok_at = float("-inf")

    async def ensure_writable(self) -> None:
        """StorageUnavailable (503) unless storage takes writes."""
        async with self._lock:   # one probe at a time; the streams behind it reuse its answer
            if time.monotonic() - self._ok_at <= self.interval_s:
                return
            try:
                await asyncio.to_thread(self.store.check)
            except StorageUnavailable:
                self.failed()
                raise
            self._ok_at = time.monotonic()


@dataclass
class Outcome:
    status: str                    # pending | stored | failed
    reason: str = ""
    retry_until: float = 0.0       # epoch seconds; pending only


class DeferredStore:
    """Background retries of stream outputs whose store failed, and every such key's outcome."""

    def __init__(self, store: AudioStore, settings: Settings, guard: StoreGuard) -> None:
        self.store, self.guard = store, guard
        self.window_s = settings.deferred_store_window_s
        self.max_bytes = settings.deferred_store_max_bytes
        self.backoff_s = max(settings.store_backoff_s, 0.1)
        self.outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self.held_bytes = 0
        self.tasks: set[asyncio.Task] = set()

    def outcome(self, key: str) -> Outcome | None:
        return self.outcomes.get(key)

    def _record(self, key: str, outcome: Outcome) -> None:
        self.outcomes[key] = outcome
        self.outcomes.move_to_end(key)
        while len(self.outcomes) > OUTCOMES_KEPT:
            self.outcomes.popitem(last=False)

    def submit(self, key: str, data: bytes, content_type: str, metadata: dict[str, str], reason: str) -> None:
        """Keep retrying ``put`` in the background; or record the failure if memory or time is up."""
        self.guard.failed()
        if self.window_s <= 0 or self.held_bytes + len(data) > self.max_bytes:
            log.warning("stored copy of %s lost: %s (no room to retry)", key, reason)
            self._record(key, Outcome("failed", f"{reason}; not retried (retry buffer full)"))
            return
        self._record(key, Outcome("pending", reason, time.time() + self.window_s))
        self.held_bytes += len(data)
        task = asyncio.get_running_loop().create_task(self._retry(key, data, content_type, metadata, reason))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _retry(self, key: str, data: bytes, content_type: str, metadata: dict[str, str], reason: str) -> None:
        deadline = time.monotonic() + self.window_s
        pause = self.backoff_s
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(random.uniform(pause / 2, pause))
                try:
                    await asyncio.to_thread(self.store.put, key, data, content_type, metadata)
                except StorageUnavailable as exc:
                    reason, pause = exc.message, min(pause * 2, RETRY_MAX_PAUSE_S)
                    continue
                log.info("stored %s after storage recovered", key)
                self._record(key, Outcome("stored"))
                return
            log.warning("stored copy of %s lost: storage stayed down for %.0f s", key, self.window_s)
            self._record(key, Outcome("failed", f"{reason}; retried for {self.window_s:.0f} s"))
        finally:
            self.held_bytes -= len(data)


class StreamSink:
    """Where a stream's bytes are kept: an ``Upload`` fed as bytes are produced (WAV: a buffer put once
    at the end). Storage failures never reach the client; they go to ``DeferredStore``."""

    def __init__(self, store: AudioStore, deferred: DeferredStore, key: str, fmt: str, rate: int,
                 metadata: dict[str, str]) -> None:
        self.store, self.deferred, self.key, self.fmt, self.rate = store, deferred, key, fmt, rate
        self.metadata = metadata
        self.content_type = encoders.CONTENT_TYPES[fmt]
        self.buffer = bytearray()       # every byte, so a failed upload can be stored later
        self.failure: str | None = None
        # Opened before the response starts: a store that cannot even start an upload is a 503.
        self.upload = None if fmt == "wav" else store.open_upload(key, self.content_type, metadata)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self.buffer += data
        if self.upload is not None and self.failure is None:
            try:
                await asyncio.to_thread(self.upload.write, data)
            except StorageUnavailable as exc:
                await self._fail(exc.message)

    async def _fail(self, reason: str) -> None:
        self.failure = reason
        log.warning("storage failed mid-stream for %s: %s; the client still gets its audio", self.key, reason)
        await self._abort_upload()

    async def _abort_upload(self) -> None:
        if self.upload is None:
            return
        try:
            await asyncio.to_thread(self.upload.abort)
        except StorageUnavailable as exc:  # the partial upload expires by the bucket's lifecycle rule
            log.warning("could not abort the upload of %s: %s", self.key, exc.message)

    def _final_bytes(self) -> bytes:
        if self.fmt != "wav":
            return bytes(self.buffer)
        pcm = bytes(self.buffer[encoders.WAV_HEADER_BYTES:])
        return encoders.wav_header(self.rate, len(pcm)) + pcm

    async def complete(self, duration_s: float) -> None:
        meta = {**self.metadata, "duration-s": f"{duration_s:.3f}"}
        if self.failure is None:
            try:
                if self.upload is not None:
                    await asyncio.to_thread(self.upload.complete)
                else:
                    await asyncio.to_thread(self.store.put, self.key, self._final_bytes(), self.content_type, meta)
                return
            except StorageUnavailable as exc:
                await self._fail(exc.message)
        self.deferred.submit(self.key, self._final_bytes(), self.content_type, meta, self.failure or "")

    async def abort(self) -> None:
        """The stream itself ended early (client gone, synthesis failed): store nothing."""
        if self.failure is None:
            await self._abort_upload()
