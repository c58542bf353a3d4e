"""Synthesis of a plan of several parts (SSML voices, prosody and breaks), joined into one file.

Each part is prepared and rendered by the ordinary service steps (``SynthesisService.prepare``'s
frontend call, ``render_timed``), so parts batch and spread over the Synthesizer replicas like
sentences do. Parts of voices with different rates are resampled to the highest of them; the
join is encoded once and stored under a key made of the parts' own cache keys and the breaks.
Streaming sends each part as soon as it and the ones before it are rendered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator

import numpy as np

from storage.word_files import WordFiles
from tts_engine.audio import encoders
from tts_engine.audio.assembly import silence
from tts_engine.engine import Prepared
from tts_engine.timestamps import WordTiming

from .audio_request import AUDIO_PREFIX, Result, Stream, cache_key
from .speech_input import SpeechPlan
from .stream_store import StreamSink
from .synthesis import SynthesisService


async def _prepare(service: SynthesisService, plan: SpeechPlan) -> tuple[list[Prepared], str, int, int, str]:
    first = plan.parts[0]
    fmt = encoders.check_format(first.format)
    prepared = list(await asyncio.gather(*(service.prepare_text(p.text, p.options) for p in plan.parts)))
    source_rate = max(p.voice.sample_rate for p in prepared)
    rate = encoders.output_sample_rate(fmt, source_rate, first.sample_rate)
    keys = [cache_key(p, fmt, rate, r.conditioning_key) for p, r in zip(prepared, plan.parts)]
    identity = json.dumps({"parts": keys, "breaks": plan.breaks, "trailing": plan.trailing_s})
    digest = hashlib.sha256(identity.encode()).hexdigest()
    key = f"{AUDIO_PREFIX}/{digest[:2]}/{digest}.{encoders.FILE_EXTENSIONS[fmt]}"
    return prepared, fmt, source_rate, rate, key


async def _render_part(service: SynthesisService, prepared: Prepared, req, source_rate: int):
    audio, words = await service.render_timed(prepared, req.transform)
    audio = await asyncio.to_thread(encoders.resample, audio, prepared.voice.sample_rate, source_rate)
    return audio, words


async def _cached(service: SynthesisService, plan: SpeechPlan, key: str):
    """(stored object, words) of a finished plan, or None: not cached, or its words are missing."""
    first = plan.parts[0]
    if not (first.cache and service.settings.cache_enabled):
        return None
    hit = await asyncio.to_thread(service.store.head, key)
    service.metrics.cache(hit is not None)
    if hit is None:
        return None
    words = None
    if first.timestamps:
        words = await asyncio.to_thread(WordFiles(service.store).get_words, key)
        if words is None:
            return None
    return hit, words


async def synthesize(service: SynthesisService, plan: SpeechPlan, want_bytes: bool = False) -> Result:
    started = time.perf_counter()
    prepared, fmt, source_rate, rate, key = await _prepare(service, plan)
    frontend_ms = (time.perf_counter() - started) * 1000
    first = plan.parts[0]
    cached = await _cached(service, plan, key)
    if cached is not None:
        hit, words = cached
        result = await service.cached_result(hit, prepared[0].voice.id, rate, fmt, want_bytes, frontend_ms)
        result.words = words
        return result
    t0 = time.perf_counter()
    rendered = await asyncio.gather(*(_render_part(service, p, r, source_rate) for p, r in zip(prepared, plan.parts)))
    audio, words = join(rendered, plan.breaks, plan.trailing_s, source_rate)
    data = await asyncio.to_thread(encoders.encode, audio, source_rate, fmt, rate)
    t1 = time.perf_counter()
    duration = len(audio) / source_rate
    meta = service.metadata(prepared[0], fmt, rate, duration)
    stored = await asyncio.to_thread(service.store.put, key, data, encoders.CONTENT_TYPES[fmt], meta)
    if first.timestamps:
        await asyncio.to_thread(WordFiles(service.store).put_words, key, words)
    t2 = time.perf_counter()
    service.metrics.produced(duration)
    timings = {"frontend_ms": frontend_ms, "synthesis_ms": (t1 - t0) * 1000, "storage_ms": (t2 - t1) * 1000}
    return Result(key, service.store.url(key), duration, rate, fmt, prepared[0].voice.id, False,
                  data if want_bytes else None, timings, stored, words if first.timestamps else None)


def join(rendered: list[tuple[np.ndarray, list[WordTiming]]], breaks: list[float], trailing_s: float,
         rate: int) -> tuple[np.ndarray, list[WordTiming]]:
    """The parts with their silences, and every part's words shifted to where it starts."""
    pieces: list[np.ndarray] = []
    words: list[WordTiming] = []
    position = 0
    for (audio, part_words), pause in zip(rendered, breaks):
        gap = silence(pause, rate)
        pieces += [gap, audio]
        position += len(gap)
        words += [w.shifted(position / rate) for w in part_words]
        position += len(audio)
    pieces.append(silence(trailing_s, rate))
    return np.concatenate(pieces).astype(np.float32, copy=False), words


async def stream(service: SynthesisService, plan: SpeechPlan) -> Stream:
    prepared, fmt, source_rate, rate, key = await _prepare(service, plan)
    url = service.store.url(key)
    cached = await _cached(service, plan, key)
    if cached is not None:
        hit, words = cached
        data = await asyncio.to_thread(service.store.get, key)
        return Stream(key, url, hit.content_type, True, _items(*([words] if words else []), data), rate)
    encoder = encoders.StreamEncoder(fmt, source_rate, rate)
    body = _stream_body(service, plan, prepared, encoder, key, fmt, source_rate, rate)
    return Stream(key, url, encoder.content_type, False, body, rate)


async def _stream_body(service: SynthesisService, plan: SpeechPlan, prepared: list[Prepared],
                       encoder: encoders.StreamEncoder, key: str, fmt: str, source_rate: int,
                       rate: int) -> AsyncIterator[bytes | list[WordTiming]]:
    """Parts rendered concurrently, sent in order: its silence, its words (if asked), its audio."""
    timestamps = plan.parts[0].timestamps
    sink = StreamSink(service.store, service.deferred, key, fmt, rate, service.metadata(prepared[0], fmt, rate, None))
    tasks = [asyncio.ensure_future(_render_part(service, p, r, source_rate)) for p, r in zip(prepared, plan.parts)]
    samples, all_words = 0, []
    try:
        header = encoder.header()
        await sink.write(header)
        if header:
            yield header
        for task, pause in zip(tasks, plan.breaks):
            audio, words = await task
            chunks = [silence(pause, source_rate), audio]
            start_s = (samples + len(chunks[0])) / source_rate
            shifted = [w.shifted(start_s) for w in words]
            all_words += shifted
            if timestamps and shifted:
                yield shifted
            for chunk in chunks:
                samples += len(chunk)
                data = await asyncio.to_thread(encoder.feed, chunk)
                await sink.write(data)
                if data:
                    yield data
        tail = await asyncio.to_thread(encoder.feed, silence(plan.trailing_s, source_rate)) + encoder.finish()
        samples += int(plan.trailing_s * source_rate)
        await sink.write(tail)
        yield tail
        await sink.complete(samples / source_rate)
        if timestamps:
            await asyncio.to_thread(WordFiles(service.store).put_words, key, all_words)
        service.metrics.produced(samples / source_rate)
    except BaseException:
        await asyncio.shield(sink.abort())
        raise
    finally:
        for task in tasks:
            task.cancel()


async def _items(*items):
    for item in items:
        yield item
