"""Streaming answers shared by the routers: chunked audio and OpenAI-style server-sent events."""

from __future__ import annotations

import base64
import json
import time

from fastapi.responses import StreamingResponse

from .context import Services
from .synthesis import AudioRequest, Stream


async def streaming_response(services: Services, req: AudioRequest, route: str,
                             headers: dict[str, str] | None = None) -> StreamingResponse:
    """Chunked audio; the first bytes leave as soon as the first chunk is vocoded."""
    started = time.perf_counter()

    def first_byte() -> None:
        services.metrics.first_chunk.observe(time.perf_counter() - started, tags={"route": route})

    stream = await services.synthesis.stream(req, on_first_byte=first_byte)
    return audio_response(stream, headers)


def audio_response(stream: Stream, headers: dict[str, str] | None = None) -> StreamingResponse:
    headers = {"X-Audio-URL": stream.url, "X-Audio-Key": stream.key, "X-Sample-Rate": str(stream.sample_rate),
               "X-Cache": "hit" if stream.cached else "miss", "Cache-Control": "no-store", **(headers or {})}
    return StreamingResponse(stream.body, media_type=stream.content_type, headers=headers)


async def sse_response(services: Services, req: AudioRequest) -> StreamingResponse:
    """OpenAI's ``stream_format: sse``: base64 audio deltas, then a done event."""
    return sse_of(await services.synthesis.stream(req))


def sse_of(stream: Stream, headers: dict[str, str] | None = None) -> StreamingResponse:
    """Server-sent events of a stream: base64 ``speech.audio.delta``s, then ``speech.audio.done``;
    with timestamps, a ``speech.word`` event per word (``word, start_s, end_s``) before its
    sentence's audio."""

    async def events():
        async for chunk in stream.body:
            if isinstance(chunk, list):  # word timestamps (only when the request asked for them)
                for word in chunk:
                    yield f"data: {json.dumps({'type': 'speech.word', **word.to_dict()}, ensure_ascii=False)}\n\n"
            elif chunk:
                event = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
                yield f"data: {json.dumps(event)}\n\n"
        yield f"data: {json.dumps({'type': 'speech.audio.done', 'audio_url': stream.url})}\n\n"

    headers = {"X-Audio-URL": stream.url, "X-Sample-Rate": str(stream.sample_rate), **(headers or {})}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
