"""The synthesis service behind the routes: cache lookup, fan-out to the Synthesizer, encoding, storage.

Routes stay thin; this is where a request becomes audio in the store. It talks to the
deployments only through their handles, and to storage only through ``AudioStore``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from tts_engine import encoders
from tts_engine.assembly import finish_audio, join_sentences, silence
from tts_engine.engine import Prepared, SynthesisOptions
from tts_engine.settings import Settings
from tts_engine.store import AudioStore, StoredObject

from .metrics import IngressMetrics

log = logging.getLogger("voxserve")

AUDIO_PREFIX = "tts"


@dataclass
class AudioRequest:
    """What the service needs of any synthesis route, whatever its wire format."""

    text: str
    options: SynthesisOptions
    format: str
    sample_rate: int | None = None
    cache: bool = True
    request_id: str = ""
    # Extra identity for the cache key (e.g. the reference clip's content hash for adapted voices).
    conditioning_key: str = ""
    # Applied to the finished audio (voice adaptation); None for plain voices.
    transform: Callable[[np.ndarray, int], np.ndarray] | None = None


@dataclass
class Result:
    key: str
    url: str
    duration_s: float
    sample_rate: int
    format: str
    voice: str
    cached: bool
    data: bytes | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Stream:
    """A streaming answer: headers known up front, bytes produced while synthesis runs."""

    key: str
    url: str
    content_type: str
    cached: bool
    body: AsyncIterator[bytes]


def cache_key(prepared: Prepared, fmt: str, rate: int, conditioning: str = "") -> str:
    """Content address of a result: same text, voice, parameters, format and model -> same key."""
    noise = prepared.noise[0] if prepared.noise else None
    identity = {
        "text": prepared.normalized_text,
        "voice": prepared.voice.id,
        "speaker": prepared.speaker_id,
        "language": prepared.language,
        "length_scale": noise.length_scale if noise else None,
        "noise_scale": noise.noise_scale if noise else None,
        "noise_w": noise.noise_w if noise else None,
        "seed": prepared.seed if prepared.seed_given else None,
        "volume": prepared.volume,
        "pitch": prepared.pitch,
        "format": fmt,
        "sample_rate": rate,
        "model": prepared.model_version,
        "conditioning": conditioning,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{AUDIO_PREFIX}/{digest[:2]}/{digest}.{encoders.FILE_EXTENSIONS[fmt]}"


class SynthesisService:
    def __init__(self, settings: Settings, frontend, synthesizer, store: AudioStore,
                 metrics: IngressMetrics) -> None:
        self.settings = settings
        self.frontend = frontend
        self.synthesizer = synthesizer
        self.store = store
        self.metrics = metrics
        # Identical requests in flight in this replica share one synthesis.
        self._inflight: dict[str, asyncio.Future[Result]] = {}

    # ------------------------------------------------------------------ shared steps

    async def prepare(self, req: AudioRequest) -> tuple[Prepared, str, int, str]:
        fmt = encoders.check_format(req.format)
        prepared: Prepared = await self.frontend.prepare.remote(req.text, req.options)
        rate = encoders.output_sample_rate(fmt, prepared.voice.sample_rate, req.sample_rate)
        return prepared, fmt, rate, cache_key(prepared, fmt, rate, req.conditioning_key)

    async def cached(self, req: AudioRequest, key: str) -> StoredObject | None:
        if not (self.settings.cache_enabled and req.cache):
            return None
        obj = await asyncio.to_thread(self.store.head, key)
        self.metrics.cache(obj is not None)
        return obj

    async def render(self, prepared: Prepared, transform=None) -> np.ndarray:
        """All sentences at once (they batch and spread over replicas), joined in order."""
        calls = [self.synthesizer.render.remote((prepared.voice.id, s.ids, n, prepared.speaker_id))
                 for s, n in zip(prepared.sentences, prepared.noise)]
        pieces = await asyncio.gather(*calls)
        rate = prepared.voice.sample_rate
        audio = join_sentences(pieces, rate, self.settings.sentence_pause_s)
        if transform is not None:
            audio = await asyncio.to_thread(transform, audio, rate)
        return finish_audio(audio, rate, prepared.volume, prepared.pitch)

    def metadata(self, prepared: Prepared, fmt: str, rate: int, duration_s: float) -> dict[str, str]:
        return {
            "voice": prepared.voice.id,
            "duration-s": f"{duration_s:.3f}",
            "sample-rate": str(rate),
            "format": fmt,
            "model-version": prepared.model_version,
        }

    # ------------------------------------------------------------------ sync

    async def synthesize(self, req: AudioRequest, want_bytes: bool = False) -> Result:
        started = time.perf_counter()
        prepared, fmt, rate, key = await self.prepare(req)
        frontend_ms = (time.perf_counter() - started) * 1000
        hit = await self.cached(req, key)
        if hit is not None:
            data = await asyncio.to_thread(self.store.get, key) if want_bytes else None
            return Result(key, self.store.url(key), float(hit.metadata.get("duration-s", 0)), rate, fmt,
                          prepared.voice.id, True, data, {"frontend_ms": frontend_ms})
        if key in self._inflight and req.cache:
            result = await asyncio.shield(self._inflight[key])
            data = await asyncio.to_thread(self.store.get, key) if want_bytes else None
            return Result(**{**result.__dict__, "cached": True, "data": data})
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._synthesize_fresh(req, prepared, fmt, rate, key, frontend_ms)
            future.set_result(Result(**{**result.__dict__, "data": None}))
            return result if want_bytes else Result(**{**result.__dict__, "data": None})
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._inflight.pop(key, None)

    async def _synthesize_fresh(self, req: AudioRequest, prepared: Prepared, fmt: str, rate: int,
                                key: str, frontend_ms: float) -> Result:
        t0 = time.perf_counter()
        audio = await self.render(prepared, req.transform)
        source_rate = prepared.voice.sample_rate
        data = await asyncio.to_thread(encoders.encode, audio, source_rate, fmt, rate)
        t1 = time.perf_counter()
        duration = len(audio) / source_rate
        meta = self.metadata(prepared, fmt, rate, duration)
        await asyncio.to_thread(self.store.put, key, data, encoders.CONTENT_TYPES[fmt], meta)
        t2 = time.perf_counter()
        self.metrics.produced(duration)
        timings = {"frontend_ms": frontend_ms, "synthesis_ms": (t1 - t0) * 1000, "storage_ms": (t2 - t1) * 1000}
        return Result(key, self.store.url(key), duration, rate, fmt, prepared.voice.id, False, data, timings)

    # ------------------------------------------------------------------ streaming

    async def stream(self, req: AudioRequest, on_first_byte: Callable[[], None] | None = None) -> Stream:
        prepared, fmt, rate, key = await self.prepare(req)
        url = self.store.url(key)
        hit = await self.cached(req, key)
        if hit is not None:
            data = await asyncio.to_thread(self.store.get, key)
            return Stream(key, url, hit.content_type, True, _once(data))
        encoder = encoders.StreamEncoder(fmt, prepared.voice.sample_rate, rate)
        body = self._stream_body(req, prepared, encoder, key, fmt, rate, on_first_byte)
        return Stream(key, url, encoder.content_type, False, body)

    async def _stream_body(self, req: AudioRequest, prepared: Prepared, encoder: encoders.StreamEncoder,
                           key: str, fmt: str, rate: int, on_first_byte) -> AsyncIterator[bytes]:
        produced: list[bytes] = []
        samples = 0
        try:
            header = encoder.header()
            if header:
                produced.append(header)
                yield header
            async for audio in self._audio_chunks(prepared, req.transform):
                samples += len(audio)
                data = await asyncio.to_thread(encoder.feed, audio)
                if data:
                    if on_first_byte is not None and not produced:
                        on_first_byte()
                    produced.append(data)
                    yield data
            tail = encoder.finish()
            produced.append(tail)
            yield tail
        except Exception:
            log.exception("stream failed for %s (request %s)", key, req.request_id)
            raise
        duration = samples / prepared.voice.sample_rate
        self.metrics.produced(duration)
        await self._store_streamed(key, fmt, rate, prepared, duration, produced)

    async def _audio_chunks(self, prepared: Prepared, transform) -> AsyncIterator[np.ndarray]:
        """The first sentence chunk by chunk (fast first audio); the rest rendered concurrently
        once the first audio is out, and yielded in order as each is ready."""
        rate = prepared.voice.sample_rate
        items = [(prepared.voice.id, s.ids, n, prepared.speaker_id)
                 for s, n in zip(prepared.sentences, prepared.noise)]
        whole_sentences = transform is not None or prepared.pitch != 0  # WORLD needs whole sentences
        later: list[Awaitable[np.ndarray]] = []
        if whole_sentences:
            later = [self.synthesizer.render.remote(item) for item in items]
        else:
            first = self.synthesizer.options(stream=True).render_stream.remote(*items[0])
            async for chunk in first:
                if not later:
                    later = [None] + [self.synthesizer.render.remote(item) for item in items[1:]]
                yield finish_audio(chunk, rate, prepared.volume)
        for i, pending in enumerate(later):
            if pending is None:
                continue
            if i:
                yield silence(self.settings.sentence_pause_s, rate)
            audio = await pending
            if transform is not None:
                audio = await asyncio.to_thread(transform, audio, rate)
            yield finish_audio(audio, rate, prepared.volume, prepared.pitch)

    async def _store_streamed(self, key: str, fmt: str, rate: int, prepared: Prepared, duration: float,
                              produced: list[bytes]) -> None:
        """Keep the streamed result under its key (a WAV gets its real sizes in the header)."""
        data = b"".join(produced)
        if fmt == "wav":
            data = encoders.wav_header(rate, len(data) - encoders.WAV_HEADER_BYTES) + data[encoders.WAV_HEADER_BYTES:]
        meta = self.metadata(prepared, fmt, rate, duration)
        await asyncio.to_thread(self.store.put, key, data, encoders.CONTENT_TYPES[fmt], meta)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
