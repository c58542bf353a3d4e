"""The synthesis service behind the routes: cache lookup, fan-out to the Synthesizer, encoding, storage.

Routes stay thin; this is where a request becomes audio in the store. It talks to the
deployments only through their handles, and to storage only through ``AudioStore``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import numpy as np

from tts_engine.audio import encoders
from tts_engine.audio.assembly import finish_audio, join_sentences, silence
from tts_engine.engine import Prepared, SynthesisOptions
from tts_engine.settings import Settings
from storage import AudioStore, StoredObject

from .metrics import IngressMetrics

log = logging.getLogger("voxserve")

AUDIO_PREFIX = "tts"
LOCK_PREFIX = "locks"
CLAIM_TTL_S = 120.0     # a claim older than this is a crashed replica's; take it over
CLAIM_POLL_S = 0.1
KNOWN_KEYS = 4096


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
    # Auth (issue 11): the phrase-cache scope ("" = global; "tenant:<t>" keeps tenants' caches
    # apart) and where delivered audio is metered: meter(characters, seconds, cached).
    cache_scope: str = ""
    meter: Callable[[int, float, bool], None] | None = None


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
    stored: StoredObject | None = None


@dataclass
class Stream:
    """A streaming answer: headers known up front, bytes produced while synthesis runs."""

    key: str
    url: str
    content_type: str
    cached: bool
    body: AsyncIterator[bytes]
    sample_rate: int = 0


def cache_key(prepared: Prepared, fmt: str, rate: int, conditioning: str = "", scope: str = "") -> str:
    """Content address of a result: same text, voice, parameters, format and model -> same key."""
    identity = {
        "text": prepared.normalized_text,
        "voice": prepared.voice.id,
        "speaker": prepared.speaker_id,
        "language": prepared.language,
        **prepared.control_identity,   # the model family's own knobs (noise, length, style, ...)
        "seed": prepared.seed if prepared.seed_given else None,
        "volume": prepared.volume,
        "pitch": prepared.pitch,
        "format": fmt,
        "sample_rate": rate,
        "model": prepared.model_version,
        "conditioning": conditioning,
    }
    # Only when asked for, so the keys of every request without them stay what they were.
    if prepared.split != "sentence":
        identity["split"] = prepared.split
    if prepared.pause_s is not None:
        identity["pause_s"] = prepared.pause_s
    if scope:  # only when scoped, so global keys stay what they were
        identity["scope"] = scope
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{AUDIO_PREFIX}/{digest[:2]}/{digest}.{encoders.FILE_EXTENSIONS[fmt]}"


class SynthesisService:
    def __init__(self, settings: Settings, frontend, synthesizers: dict, store: AudioStore,
                 metrics: IngressMetrics) -> None:
        self.settings = settings
        self.frontend = frontend
        self.synthesizers = synthesizers  # model family -> its Synthesizer deployment handle
        self.store = store
        self.metrics = metrics
        # Identical requests in flight in this replica share one synthesis.
        self._inflight: dict[str, asyncio.Future[Result]] = {}
        # Request -> (cache key, voice, rate): a repeated request finds its stored result without
        # a round trip to the TextFrontend (the key needs the normalized text).
        self._known_keys: OrderedDict[tuple, tuple[str, str, int]] = OrderedDict()

    # ------------------------------------------------------------------ shared steps

    async def prepare(self, req: AudioRequest) -> tuple[Prepared, str, int, str]:
        fmt = encoders.check_format(req.format)
        prepared: Prepared = await self.frontend.prepare.remote(req.text, req.options)
        rate = encoders.output_sample_rate(fmt, prepared.voice.sample_rate, req.sample_rate)
        key = cache_key(prepared, fmt, rate, req.conditioning_key, req.cache_scope)
        self._remember_key(req, key, prepared.voice.id, rate)
        return prepared, fmt, rate, key

    @staticmethod
    def _request_identity(req: AudioRequest) -> tuple:
        return (req.text, req.options, req.format.lower(), req.sample_rate, req.conditioning_key, req.cache_scope)

    def _remember_key(self, req: AudioRequest, key: str, voice: str, rate: int) -> None:
        self._known_keys[self._request_identity(req)] = (key, voice, rate)
        while len(self._known_keys) > KNOWN_KEYS:
            self._known_keys.popitem(last=False)

    async def known_hit(self, req: AudioRequest, want_bytes: bool) -> Result | None:
        """The stored result of a request seen before, found without the text frontend."""
        if not (req.cache and self.settings.cache_enabled):
            return None
        known = self._known_keys.get(self._request_identity(req))
        if known is None:
            return None
        key, voice, rate = known
        obj = await asyncio.to_thread(self.store.head, key)
        if obj is None:
            return None  # expired or deleted: take the normal path
        self.metrics.cache(True)
        fmt = encoders.check_format(req.format)
        return _metered(req, await self.cached_result(obj, voice, rate, fmt, want_bytes, 0.0))

    async def cached(self, req: AudioRequest, key: str) -> StoredObject | None:
        if not (self.settings.cache_enabled and req.cache):
            return None
        obj = await asyncio.to_thread(self.store.head, key)
        self.metrics.cache(obj is not None)
        return obj

    async def render(self, prepared: Prepared, transform=None) -> np.ndarray:
        """All sentences at once (they batch and spread over replicas), joined in order."""
        synthesizer = self.synthesizer_for(prepared)
        calls = [synthesizer.render.remote(item) for item in prepared.items()]
        pieces = await asyncio.gather(*calls)
        rate = prepared.voice.sample_rate
        audio = join_sentences(pieces, rate, prepared.pause(self.settings.sentence_pause_s))
        if transform is not None:
            audio = await asyncio.to_thread(transform, audio, rate)
        return finish_audio(audio, rate, prepared.volume, prepared.pitch)

    def synthesizer_for(self, prepared: Prepared):
        """The Synthesizer deployment of the voice's model family (each family scales on its own)."""
        return self.synthesizers[prepared.voice.family]

    def metadata(self, prepared: Prepared, fmt: str, rate: int, duration_s: float | None) -> dict[str, str]:
        meta = {
            "voice": prepared.voice.id,
            "sample-rate": str(rate),
            "format": fmt,
            "model-version": prepared.model_version,
        }
        if duration_s is not None:
            meta["duration-s"] = f"{duration_s:.3f}"
        return meta

    # ------------------------------------------------------------------ sync

    async def synthesize(self, req: AudioRequest, want_bytes: bool = False) -> Result:
        """Cached result if the key exists; else synthesize once: identical requests in this replica
        share one future, other replicas wait on a claim object in the store."""
        known = await self.known_hit(req, want_bytes)
        if known is not None:
            return known
        started = time.perf_counter()
        prepared, fmt, rate, key = await self.prepare(req)
        frontend_ms = (time.perf_counter() - started) * 1000
        use_cache = req.cache and self.settings.cache_enabled
        hit = await self.cached(req, key)
        if hit is None and use_cache and key in self._inflight:
            hit = (await asyncio.shield(self._inflight[key])).stored
        if hit is None and use_cache:
            hit = await self.wait_for_other_replica(key)  # None: this replica now holds the claim
        if hit is not None:
            return _metered(req, await self.cached_result(hit, prepared.voice.id, rate, fmt, want_bytes, frontend_ms))
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if use_cache:
            self._inflight[key] = future
        try:
            result = _metered(req, await self._synthesize_fresh(req, prepared, fmt, rate, key, frontend_ms))
            future.set_result(result)
            return result if want_bytes else replace(result, data=None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            if use_cache:
                await asyncio.to_thread(self._release, key)

    async def cached_result(self, hit: StoredObject, voice: str, rate: int, fmt: str,
                            want_bytes: bool, frontend_ms: float) -> Result:
        data = await asyncio.to_thread(self.store.get, hit.key) if want_bytes else None
        duration = hit.metadata.get("duration-s")
        if duration is None:  # streamed uploads know their length only at the end: measure it
            duration = await asyncio.to_thread(self._measured_duration, hit, data, fmt, rate)
        return Result(hit.key, self.store.url(hit.key), float(duration), rate, fmt, voice, True, data,
                      {"frontend_ms": frontend_ms})

    def _measured_duration(self, hit: StoredObject, data: bytes | None, fmt: str, rate: int) -> float:
        if fmt == "pcm":  # headerless s16 mono: no decoder can read it, its size is its length
            return hit.size / 2 / rate
        audio, decoded_rate = encoders.decode(data if data is not None else self.store.get(hit.key))
        return len(audio) / decoded_rate

    # ------------------------------------------------------------------ de-duplication across replicas

    @staticmethod
    def _claim_key(key: str) -> str:
        return f"{LOCK_PREFIX}/{key.rsplit('/', 1)[-1]}.claim"

    def _try_claim(self, key: str) -> bool:
        """Conditional create of a claim object: exactly one replica wins a fresh key."""
        claim = self._claim_key(key)
        stamp = json.dumps({"at": time.time()}).encode()
        if self.store.put_if_absent(claim, stamp, "application/json"):
            return True
        try:
            age = time.time() - json.loads(self.store.get(claim))["at"]
        except Exception:  # noqa: BLE001 - vanished or unreadable: treat as free
            age = CLAIM_TTL_S + 1
        if age > CLAIM_TTL_S:
            self.store.delete(claim)
            return self.store.put_if_absent(claim, stamp, "application/json")
        return False

    def _release(self, key: str) -> None:
        try:
            self.store.delete(self._claim_key(key))
        except Exception:  # noqa: BLE001 - a leftover claim only expires
            log.warning("could not release claim for %s", key)

    async def wait_for_other_replica(self, key: str) -> StoredObject | None:
        """None if this replica should synthesize (it now holds the claim); else the object another
        replica finished. If that replica gives up (claim gone, no object), this one takes over."""
        while not await asyncio.to_thread(self._try_claim, key):
            deadline = time.monotonic() + CLAIM_TTL_S
            while time.monotonic() < deadline:
                await asyncio.sleep(CLAIM_POLL_S)
                obj = await asyncio.to_thread(self.store.head, key)
                if obj is not None:
                    return obj
                if not await asyncio.to_thread(self.store.exists, self._claim_key(key)):
                    break
        return None

    async def _synthesize_fresh(self, req: AudioRequest, prepared: Prepared, fmt: str, rate: int,
                                key: str, frontend_ms: float) -> Result:
        t0 = time.perf_counter()
        audio = await self.render(prepared, req.transform)
        source_rate = prepared.voice.sample_rate
        data = await asyncio.to_thread(encoders.encode, audio, source_rate, fmt, rate)
        t1 = time.perf_counter()
        duration = len(audio) / source_rate
        meta = self.metadata(prepared, fmt, rate, duration)
        stored = await asyncio.to_thread(self.store.put, key, data, encoders.CONTENT_TYPES[fmt], meta)
        t2 = time.perf_counter()
        self.metrics.produced(duration)
        timings = {"frontend_ms": frontend_ms, "synthesis_ms": (t1 - t0) * 1000, "storage_ms": (t2 - t1) * 1000}
        return Result(key, self.store.url(key), duration, rate, fmt, prepared.voice.id, False, data, timings, stored)

    # ------------------------------------------------------------------ streaming

    async def stream(self, req: AudioRequest, on_first_byte: Callable[[], None] | None = None) -> Stream:
        prepared, fmt, rate, key = await self.prepare(req)
        url = self.store.url(key)
        hit = await self.cached(req, key)
        if hit is not None:
            data = await asyncio.to_thread(self.store.get, key)
            if req.meter is not None:
                duration = hit.metadata.get("duration-s")
                if duration is None:
                    duration = await asyncio.to_thread(self._measured_duration, key, data)
                req.meter(len(req.text), float(duration), True)
            return Stream(key, url, hit.content_type, True, _once(data), rate)
        encoder = encoders.StreamEncoder(fmt, prepared.voice.sample_rate, rate)
        body = self._stream_body(req, prepared, encoder, key, fmt, rate, on_first_byte)
        return Stream(key, url, encoder.content_type, False, body, rate)

    async def _stream_body(self, req: AudioRequest, prepared: Prepared, encoder: encoders.StreamEncoder,
                           key: str, fmt: str, rate: int, on_first_byte) -> AsyncIterator[bytes]:
        """Encoded bytes as produced; they also go to storage as they come (multipart parts above
        the threshold), completed at the end and aborted if anything fails or the client leaves.
        WAV is the exception: its stored copy needs real sizes in the header, so it is put at the end."""
        sink = _StreamSink(self.store, key, fmt, rate, self.metadata(prepared, fmt, rate, None))
        samples, sent_audio = 0, False
        # Performance (issue 10): the first sentence starts rendering before the header goes out,
        # and PCM/WAV chunks are converted inline (microseconds; a thread hop costs more).
        chunks = self._audio_chunks(prepared, req.transform)
        first = asyncio.ensure_future(anext(chunks, None))
        inline = fmt in ("wav", "pcm")
        try:
            header = encoder.header()
            await sink.write(header)
            if header:
                yield header
            audio = await first
            while audio is not None:
                samples += len(audio)
                data = encoder.feed(audio) if inline else await asyncio.to_thread(encoder.feed, audio)
                if data:
                    if on_first_byte is not None and not sent_audio:
                        on_first_byte()
                    sent_audio = True
                    await sink.write(data)
                    yield data
                audio = await anext(chunks, None)
            tail = encoder.finish()
            await sink.write(tail)
            yield tail
            duration = samples / prepared.voice.sample_rate
            await sink.complete(duration)
            self.metrics.produced(duration)
            if req.meter is not None:
                req.meter(len(req.text), duration, False)
        except BaseException:
            log.warning("stream for %s ended early (request %s); upload aborted", key, req.request_id)
            if req.meter is not None and samples:  # a client that leaves early pays for what it got
                req.meter(len(req.text), samples / prepared.voice.sample_rate, False)
            await asyncio.shield(sink.abort())
            raise
        finally:
            await _close_chunks(first, chunks)

    async def _audio_chunks(self, prepared: Prepared, transform) -> AsyncIterator[np.ndarray]:
        """The first sentence chunk by chunk (fast first audio); the rest rendered concurrently
        once the first audio is out, and yielded in order as each is ready."""
        rate = prepared.voice.sample_rate
        items = prepared.items()
        synthesizer = self.synthesizer_for(prepared)
        whole_sentences = transform is not None or prepared.pitch != 0  # WORLD needs whole sentences
        later: list[Awaitable[np.ndarray] | None] = []
        first = None
        try:
            if whole_sentences:
                later = [synthesizer.render.remote(item) for item in items]
            else:
                first = synthesizer.options(stream=True).render_stream.remote(items[0])
                async for chunk in first:
                    if not later:
                        later = [None] + [synthesizer.render.remote(item) for item in items[1:]]
                    yield finish_audio(chunk, rate, prepared.volume)
                first = None
            for i, pending in enumerate(later):
                if pending is None:
                    continue
                if i:
                    yield silence(prepared.pause(self.settings.sentence_pause_s), rate)
                audio = await pending
                later[i] = None
                if transform is not None:
                    audio = await asyncio.to_thread(transform, audio, rate)
                yield finish_audio(audio, rate, prepared.volume, prepared.pitch)
        finally:
            _cancel(first)  # the client left mid-sentence: the replica stops decoding it
            for pending in later:  # the client left: don't keep replicas busy for nobody
                _cancel(pending)


def _metered(req: AudioRequest, result: Result) -> Result:
    if req.meter is not None:
        req.meter(len(req.text), result.duration_s, result.cached)
    return result


def _cancel(pending) -> None:
    if pending is None:
        return
    if hasattr(pending, "cancel"):
        pending.cancel()  # a Ray Serve DeploymentResponse
    elif hasattr(pending, "close"):
        pending.close()  # a bare coroutine


async def _close_chunks(first: asyncio.Future, chunks: AsyncIterator[np.ndarray]) -> None:
    """Stop a stream's audio source: its cleanup cancels the renders still queued on replicas."""
    if not first.done():
        first.cancel()  # the generator runs inside it: the cancellation runs its cleanup
        with contextlib.suppress(BaseException):
            await first
    else:
        if not first.cancelled():
            first.exception()  # mark it retrieved (the caller saw it, or left before it mattered)
        await chunks.aclose()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _StreamSink:
    """Where a stream's bytes are kept: an S3/local ``Upload`` fed as bytes are produced, or, for
    WAV, a buffer put once at the end with the real sizes written into its header."""

    def __init__(self, store: AudioStore, key: str, fmt: str, rate: int, metadata: dict[str, str]) -> None:
        self.store, self.key, self.fmt, self.rate, self.metadata = store, key, fmt, rate, metadata
        self.buffer = bytearray()
        self.upload = None if fmt == "wav" else store.open_upload(key, encoders.CONTENT_TYPES[fmt], metadata)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self.upload is None:
            self.buffer += data
        else:
            await asyncio.to_thread(self.upload.write, data)

    async def complete(self, duration_s: float) -> None:
        if self.upload is not None:
            await asyncio.to_thread(self.upload.complete)
            return
        pcm = bytes(self.buffer[encoders.WAV_HEADER_BYTES:])
        data = encoders.wav_header(self.rate, len(pcm)) + pcm
        meta = {**self.metadata, "duration-s": f"{duration_s:.3f}"}
        await asyncio.to_thread(self.store.put, self.key, data, encoders.CONTENT_TYPES["wav"], meta)

    async def abort(self) -> None:
        if self.upload is not None:
            await asyncio.to_thread(self.upload.abort)
