"""Streaming answers shared by the routers: chunked audio and OpenAI-style server-sent events."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from .context import Services
from .audio_request import AudioRequest, Stream


async def streaming_response(services: Services, req: AudioRequest, route: str,
                             headers: dict[str, str] | None = None) -> StreamingResponse:
    """Chunked audio; the first bytes leave as soon as the first chunk is vocoded."""
    started = time.perf_counter()

    def first_byte() -> None:
        services.metrics.first_chunk.observe(time.perf_counter() - started, tags={"route": route})

    stream = await services.synthesis.stream(req, on_first_byte=first_byte)
    return await audio_response(stream, headers)


async def audio_response(stream: Stream, headers: dict[str, str] | None = None) -> StreamingResponse:
    """Chunked audio of a stream, its first piece already produced (see ``primed``)."""
    body = await primed(stream.body)
    headers = {"X-Audio-URL": stream.url, "X-Audio-Key": stream.key, "X-Audio-Status": status_path(stream.key),
               "X-Sample-Rate": str(stream.sample_rate),
               "X-Cache": "hit" if stream.cached else "miss", "Cache-Control": "no-store", **(headers or {})}
    return StreamingResponse(body, media_type=stream.content_type, headers=headers)


def status_path(key: str) -> str:
    """Where a client asks whether the stream's stored copy exists (it is written as the stream ends)."""
    return f"/v1/tts/status/{key}"


async def primed(body: AsyncIterator) -> AsyncIterator:
    """The body with its first piece already produced: anything that fails before the first audio
    (replicas, storage) is raised here and answered as an HTTP error, not as a 200 with no audio."""
    first = await anext(body, None)

    async def chained() -> AsyncIterator:
        if first is not None:
            yield first
        async for piece in body:
            yield piece

    return chained()


async def sse_response(services: Services, req: AudioRequest) -> StreamingResponse:
    """OpenAI's ``stream_format: sse``: base64 audio deltas, then a done event."""
    return await sse_of(await services.synthesis.stream(req))


async def sse_of(stream: Stream, headers: dict[str, str] | None = None) -> StreamingResponse:
    """Server-sent events of a stream: base64 ``speech.audio.delta``s, then ``speech.audio.done``;
    with timestamps, a ``speech.word`` event per word (``word, start_s, end_s``) before its
    sentence's audio."""
    body = await primed(stream.body)

    async def events():
        async for chunk in body:
            if isinstance(chunk, list):  # word timestamps (only when the request asked for them)
                for word in chunk:
                    yield f"data: {json.dumps({'type': 'speech.word', **word.to_dict()}, ensure_ascii=False)}\n\n"
            elif chunk:
                event = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
                yield f"data: {json.dumps(event)}\n\n"
        yield f"data: {json.dumps({'type': 'speech.audio.done', 'audio_url': stream.url})}\n\n"

    headers = {"X-Audio-URL": stream.url, "X-Audio-Status": status_path(stream.key),
               "X-Sample-Rate": str(stream.sample_rate), **(headers or {})}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
