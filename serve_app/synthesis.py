"""The synthesis service behind the routes: cache lookup, fan-out to the Synthesizer, encoding, storage.

Routes stay thin; this is where a request becomes audio in the store. It talks to the
deployments only through their handles, and to storage only through ``AudioStore``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import numpy as np

from deployments.refusal import accepted
from storage import AudioStore, StoredObject
from storage.word_files import WordFiles
from tts_engine.audio import encoders
from tts_engine.audio.assembly import finish_audio, join_sentences, silence
from tts_engine.engine import Prepared, SynthesisOptions
from tts_engine.models.protocol import Rendered, RenderItem
from tts_engine.settings import Settings
from tts_engine.timestamps import WordTiming, sentence_words, trimmed

from .audio_request import AudioRequest, Result, Stream, cache_key
from .claims import ClaimBook
from .metrics import IngressMetrics
from .renders_ahead import RendersAhead
from .resilience import for_a_listener, once_more, replica_gone
from .stream_store import DeferredStore, StoreGuard, StreamSink

log = logging.getLogger("voxserve")

STREAM_PATIENCE_S = 30.0  # how long a stream under way waits for a full queue or a lost replica
KNOWN_KEYS = 4096


class SynthesisService:
    def __init__(self, settings: Settings, frontend, synthesizers: dict, store: AudioStore,
                 metrics: IngressMetrics) -> None:
        self.settings = settings
        self.frontend = frontend
        self.synthesizers = synthesizers  # model family -> its Synthesizer deployment handle
        self.store = store
        self.metrics = metrics
        self.claims = ClaimBook(store, settings.claim_ttl_s)
        self.guard = StoreGuard(store, settings.store_probe_interval_s)
        self.deferred = DeferredStore(store, settings, self.guard)
        # Identical requests in flight in this replica share one synthesis.
        self._inflight: dict[str, asyncio.Future[Result]] = {}
        # Request -> (cache key, voice, rate): a repeated request finds its stored result without
        # a round trip to the TextFrontend (the key needs the normalized text).
        self._known_keys: OrderedDict[tuple, tuple[str, str, int]] = OrderedDict()

    # ------------------------------------------------------------------ shared steps

    async def prepare_text(self, text: str, options: SynthesisOptions) -> Prepared:
        """The TextFrontend's preparation; its refusals (the request's own 4xx) raised here."""
        return accepted(await once_more(lambda: self.frontend.prepare.remote(text, options), "text preparation"))

    async def prepare(self, req: AudioRequest, streaming: bool = False) -> tuple[Prepared, str, int, str]:
        """``streaming``: for a stream, which may cut the first sentence after a clause (other
        audio, other key; see ``SynthesisOptions.streaming``)."""
        fmt = encoders.check_format(req.format)
        options = replace(req.options, streaming=True) if streaming else req.options
        prepared = await self.prepare_text(req.text, options)
        if req.condition is not None:
            prepared = req.condition(prepared)
        rate = encoders.output_sample_rate(fmt, prepared.voice.sample_rate, req.sample_rate)
        key = cache_key(prepared, fmt, rate, req.conditioning_key, req.cache_scope)
        if not prepared.clause_cut:  # the key a plain request of the same text would have
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
        return (await self.render_timed(prepared, transform))[0]

    async def render_timed(self, prepared: Prepared, transform=None) -> tuple[np.ndarray, list[WordTiming]]:
        """``render`` and the word timestamps of its audio."""
        synthesizer = self.synthesizer_for(prepared)
        # At most request_inflight_sentences at once: see RendersAhead.
        limit = asyncio.Semaphore(self.settings.request_inflight_sentences)

        async def bounded(item: RenderItem) -> np.ndarray:
            async with limit:
                return await self.render_one(synthesizer, item)

        pieces = [Rendered.of(p) for p in await asyncio.gather(*[bounded(item) for item in prepared.items()])]
        rate = prepared.voice.sample_rate
        audio = join_sentences([p.audio for p in pieces], rate, prepared.pause(self.settings.sentence_pause_s))
        if transform is not None:
            audio = await asyncio.to_thread(transform, audio, rate)
        audio = finish_audio(audio, rate, prepared.volume, prepared.pitch)
        return audio, trimmed(prepared.words(pieces, self.settings.sentence_pause_s), audio, rate)

    def synthesizer_for(self, prepared: Prepared):
        """The Synthesizer deployment of the voice's model family (each family scales on its own)."""
        return self.synthesizers[prepared.voice.family]

    async def render_one(self, synthesizer, item: RenderItem, pending=None, patient: bool = False) -> np.ndarray:
        """One sentence; if its replica dies, rendered again elsewhere (seeded noise: same audio).
        ``patient`` (a stream already under way): a full Synthesizer queue or a lost replica is
        waited out with backoff rather than cutting off audio the client is already listening to."""
        first = [pending]

        def call():
            already = first.pop() if first else None   # the call already in flight, then fresh ones
            return already if already is not None else synthesizer.render.remote(item)

        if not patient:
            return await once_more(call, "synthesis")
        return await for_a_listener(call, "synthesis", STREAM_PATIENCE_S)

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
            hit = await self.claims.wait(key)  # None: this replica now holds the claim
        if hit is not None:
            return _metered(req, await self.cached_result(hit, prepared.voice.id, rate, fmt, want_bytes, frontend_ms))
        if not use_cache:
            result = _metered(req, await self._synthesize_fresh(req, prepared, fmt, rate, key, frontend_ms))
            return result if want_bytes else replace(result, data=None)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            async with self.claims.held(key):
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

    async def _synthesize_fresh(self, req: AudioRequest, prepared: Prepared, fmt: str, rate: int,
                                key: str, frontend_ms: float) -> Result:
        t0 = time.perf_counter()
        audio, words = await self.render_timed(prepared, req.transform)
        source_rate = prepared.voice.sample_rate
        data = await asyncio.to_thread(encoders.encode, audio, source_rate, fmt, rate)
        t1 = time.perf_counter()
        duration = len(audio) / source_rate
        meta = self.metadata(prepared, fmt, rate, duration)
        stored = await asyncio.to_thread(self.store.put, key, data, encoders.CONTENT_TYPES[fmt], meta)
        if req.timestamps:
            await asyncio.to_thread(WordFiles(self.store).put_words, key, words)
        t2 = time.perf_counter()
        self.metrics.produced(duration)
        timings = {"frontend_ms": frontend_ms, "synthesis_ms": (t1 - t0) * 1000, "storage_ms": (t2 - t1) * 1000}
        return Result(key, self.store.url(key), duration, rate, fmt, prepared.voice.id, False, data, timings, stored,
                      words if req.timestamps else None)

    # ------------------------------------------------------------------ streaming

    async def audio_stream(self, req: AudioRequest) -> tuple[Prepared, AsyncIterator[np.ndarray | list[WordTiming]]]:
        """Float audio of a request as it is rendered (and, before each sentence's, its words),
        for a caller that encodes and stores it itself: the realtime WebSocket joins many
        requests into one file."""
        prepared, *_ = await self.prepare(req, streaming=True)
        return prepared, self._audio_chunks(prepared, req.transform)

    async def stream(self, req: AudioRequest, on_first_byte: Callable[[], None] | None = None) -> Stream:
        prepared, fmt, rate, key = await self.prepare(req, streaming=True)
        url = self.store.url(key)
        hit = await self.cached(req, key)
        words = None
        if hit is not None and req.timestamps:  # cached audio without stored words: render again
            words = await asyncio.to_thread(WordFiles(self.store).get_words, key)
            hit = hit if words is not None else None
        if hit is not None:
            data = await asyncio.to_thread(self.store.get, key)
            if req.meter is not None:
                duration = hit.metadata.get("duration-s")
                if duration is None:
                    duration = await asyncio.to_thread(self._measured_duration, key, data)
                req.meter(len(req.text), float(duration), True)
            return Stream(key, url, hit.content_type, True, _once(*([words] if words else []), data), rate)
        # Known before the first byte that the URL could never work: say so now (503), not with a 200.
        await self.guard.ensure_writable()
        encoder = encoders.StreamEncoder(fmt, prepared.voice.sample_rate, rate)
        sink = await asyncio.to_thread(StreamSink, self.store, self.deferred, key, fmt, rate,
                                       self.metadata(prepared, fmt, rate, None))
        body = self._stream_body(req, prepared, encoder, sink, on_first_byte)
        return Stream(key, url, encoder.content_type, False, body, rate)

    async def _stream_body(self, req: AudioRequest, prepared: Prepared, encoder: encoders.StreamEncoder,
                           sink: StreamSink, on_first_byte) -> AsyncIterator[bytes]:
        """Encoded bytes as produced; they also go to storage as they come (multipart parts above
        the threshold), completed at the end and aborted if synthesis fails or the client leaves.
        WAV is the exception: its stored copy needs real sizes in the header, so it is put at the end.
        The header leaves with the first audio, so a failure before any audio is still an HTTP error.
        With timestamps, a sentence's words (a list) come just before its audio."""
        key = sink.key
        samples, sent_audio, words = 0, False, []
        inline = sink.fmt in ("wav", "pcm")
        try:
            pending_header = encoder.header()
            await sink.write(pending_header)
            async for audio in self._audio_chunks(prepared, req.transform):
                if isinstance(audio, list):  # a sentence's word timestamps, just before its audio
                    words += audio
                    if req.timestamps:
                        yield audio
                    continue
                samples += len(audio)
                # PCM/WAV chunks are converted inline (microseconds; a thread hop costs more).
                data = encoder.feed(audio) if inline else await asyncio.to_thread(encoder.feed, audio)
                if data:
                    if on_first_byte is not None and not sent_audio:
                        on_first_byte()
                    sent_audio = True
                    await sink.write(data)
                    yield pending_header + data
                    pending_header = b""
            tail = encoder.finish()
            await sink.write(tail)
            yield pending_header + tail
            duration = samples / prepared.voice.sample_rate
            await sink.complete(duration)
            if req.timestamps:
                await asyncio.to_thread(WordFiles(self.store).put_words, key, words)
            self.metrics.produced(duration)
            if req.meter is not None:
                req.meter(len(req.text), duration, False)
        except BaseException as exc:
            log.info("stream for %s ended early (request %s: %s); upload aborted", key, req.request_id,
                     type(exc).__name__)
            if req.meter is not None and samples:  # a client that leaves early pays for what it got
                req.meter(len(req.text), samples / prepared.voice.sample_rate, False)
            await asyncio.shield(sink.abort())
            raise

    async def _audio_chunks(self, prepared: Prepared, transform) -> AsyncIterator[np.ndarray | list[WordTiming]]:
        """The first sentence chunk by chunk (fast first audio); the rest rendered concurrently
        once the first audio is out (at most ``request_inflight_sentences`` at once), and yielded
        in order as each is ready. Before each sentence's audio: its word timestamps (a list,
        seconds from the stream's start). A first clause cut apart (``Prepared.clause_cut``) joins
        the rest of its sentence with a clause's pause."""
        rate = prepared.voice.sample_rate
        items = prepared.items()
        synthesizer = self.synthesizer_for(prepared)
        whole_sentences = transform is not None or prepared.pitch != 0  # WORLD needs whole sentences
        ahead = RendersAhead(lambda i: synthesizer.render.remote(items[i]), len(items),
                              self.settings.request_inflight_sentences)
        position = 0  # samples yielded so far: where the next sentence starts
        try:
            if not whole_sentences:
                async for chunk in self._first_sentence(synthesizer, items[0]):
                    chunk = Rendered.of(chunk)
                    if not ahead.started:
                        ahead.start(1)
                        yield sentence_words(prepared.sentences[0].words, chunk, rate)
                    position += len(chunk.audio)
                    yield finish_audio(chunk.audio, rate, prepared.volume)
            ahead.start(0 if whole_sentences else 1)
            for i in range(ahead.first, len(items)):
                if i:
                    pause = prepared.pause_before(i, self.settings.sentence_pause_s, self.settings.clause_pause_s)
                    gap = silence(pause, rate)
                    position += len(gap)
                    yield gap
                rendered = Rendered.of(await self.render_one(synthesizer, items[i], ahead.take(i), patient=True))
                ahead.current = None
                audio = rendered.audio
                if transform is not None:
                    audio = await asyncio.to_thread(transform, audio, rate)
                audio = finish_audio(audio, rate, prepared.volume, prepared.pitch)
                words = sentence_words(prepared.sentences[i].words, rendered, rate, position / rate)
                yield trimmed(words, audio, rate, position / rate)
                position += len(audio)
                yield audio
        finally:
            ahead.cancel()  # the client left: don't keep replicas busy for nobody

    async def _first_sentence(self, synthesizer, item: RenderItem) -> AsyncIterator[Rendered]:
        """The first sentence in decoder chunks. If its replica dies mid-way, the sentence is rendered
        again elsewhere (seeded noise: the same audio) and only the part not yet sent follows."""
        sent = 0
        try:
            async for chunk in synthesizer.options(stream=True).render_stream.remote(item):
                chunk = Rendered.of(chunk)
                sent += len(chunk.audio)
                yield chunk
            return
        except Exception as exc:
            if not replica_gone(exc):
                raise
            log.warning("streaming replica lost after %d samples (%s); rendering the rest elsewhere",
                        sent, type(exc).__name__)
        rendered = Rendered.of(await self.render_one(synthesizer, item, patient=True))
        if len(rendered.audio) > sent:
            # Durations describe the whole sentence: only a first chunk may carry them.
            yield Rendered(rendered.audio[sent:], rendered.durations if sent == 0 else None, rendered.offset)


def _metered(req: AudioRequest, result: Result) -> Result:
    if req.meter is not None:
        req.meter(len(req.text), result.duration_s, result.cached)
    return result


async def _once(*items):
    for item in items:
        yield item
