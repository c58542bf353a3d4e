"""One realtime WebSocket connection: fragments in, sentences synthesized as they complete, audio
and events out, with bounded buffering everywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from fastapi import WebSocket
from pydantic import ValidationError

from storage import AudioStore
from tts_engine.audio import encoders
from tts_engine.audio.assembly import silence
from tts_engine.audio.encoders import _StreamResampler
from tts_engine.errors import EmptyText, InvalidInput, VoxServeError
from tts_engine.text.incremental import SentenceBuffer

from .context import Services
from .realtime_protocol import RealtimeConfig
from .errors import as_voxserve_error
from .schemas import TTSRequest
from .speech_input import lexicon_entries, with_pronunciations
from .stream_store import DeferredStore, StreamSink

log = logging.getLogger("voxserve")


LIVE_PREFIX = "tts/live"       # under tts/: the store's expiry rule for audio applies
MAX_FRAME_CHARS = 65536
_FLUSH, _CLOSE = object(), object()


class _Closing(Exception):
    def __init__(self, code: int, reason: str, error: VoxServeError | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.error = code, reason, error


class Segment:
    """The audio between two ``done``s: one encoder, one stored file."""

    def __init__(self, store: AudioStore, deferred: DeferredStore, key: str, fmt: str, source_rate: int,
                 out_rate: int) -> None:
        self.key, self.source_rate, self.out_rate = key, source_rate, out_rate
        self.encoder = encoders.StreamEncoder(fmt, source_rate, out_rate)
        self.sink = StreamSink(store, deferred, key, fmt, out_rate, {"format": fmt, "sample-rate": str(out_rate)})
        self.samples = 0
        self.sentences = 0

    @property
    def position_s(self) -> float:
        return self.samples / self.source_rate

    async def header(self) -> bytes:
        data = self.encoder.header()
        await self.sink.write(data)
        return data

    async def feed(self, audio) -> bytes:
        self.samples += len(audio)
        data = await asyncio.to_thread(self.encoder.feed, audio)
        await self.sink.write(data)
        return data

    async def finish(self) -> bytes:
        tail = self.encoder.finish()
        await self.sink.write(tail)
        await self.sink.complete(self.position_s)
        return tail


class RealtimeSession:
    def __init__(self, services: Services, websocket: WebSocket) -> None:
        self.services, self.ws = services, websocket
        settings = services.settings
        self.settings = settings
        self.session_id = uuid.uuid4().hex[:16]
        self.out: asyncio.Queue = asyncio.Queue(maxsize=settings.ws_send_queue)
        self.incoming: asyncio.Queue = asyncio.Queue(maxsize=8)
        self.sentences: asyncio.Queue = asyncio.Queue()
        self.buffer = SentenceBuffer()
        self.queued_chars = 0
        self.config: RealtimeConfig | None = None
        self.lexicon: tuple = ()
        self.segment: Segment | None = None
        self.segments = 0
        self.next_index = 0
        self.unacked: dict[int, float] = {}
        self.acked = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        await self.ws.accept()
        self.ws.state.request_id = self.session_id
        self.tasks = [asyncio.create_task(self._send_loop()), asyncio.create_task(self._read_loop())]
        speaker = None
        try:
            first = await self._receive(self.settings.ws_idle_timeout_s)
            if first is None:
                raise _Closing(1001, "no config frame")
            await self._configure(first)
            speaker = asyncio.create_task(self._speak_loop())
            self.tasks.append(speaker)
            await self._control_loop(speaker)
            await speaker
            await self._drain()
            await self.ws.close(1000)
        except _Closing as closing:
            await self._close(closing)
        except _ClientGone:
            log.info("realtime session %s: client left", self.session_id)
        except Exception:  # noqa: BLE001 - a bug must close the socket with 1011, not hang it
            log.exception("realtime session %s failed", self.session_id)
            await self._close(_Closing(1011, "server error"))
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.segment is not None:  # never completed: nothing half-written stays
                await asyncio.shield(self.segment.sink.abort())

    async def _close(self, closing: _Closing) -> None:
        if closing.error is not None:
            try:
                self.out.put_nowait(_error_event(closing.error))
                await asyncio.wait_for(self._drain(), timeout=1.0)
            except (asyncio.QueueFull, TimeoutError, _ClientGone):
                pass
        try:
            await self.ws.close(closing.code, closing.reason[:120])
        except Exception:  # noqa: BLE001 - the client may be gone already
            pass

    async def _drain(self) -> None:
        """Wait until everything queued has been handed to the connection."""
        while not self.out.empty():
            if self.tasks[0].done():
                raise _ClientGone()
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ input

    async def _read_loop(self) -> None:
        """Every client frame into ``incoming`` (a queue, so waiting on it can time out safely)."""
        while True:
            message = await self.ws.receive()
            await self.incoming.put(message)
            if message["type"] == "websocket.disconnect":
                return

    async def _receive(self, timeout: float) -> dict | None:
        """The next client frame, parsed; None if none came within ``timeout``."""
        try:
            message = await asyncio.wait_for(self.incoming.get(), timeout)
        except TimeoutError:
            return None
        if message["type"] == "websocket.disconnect":
            raise _ClientGone()
        if message.get("bytes") is not None:
            raise _Closing(1003, "send JSON text frames", InvalidInput("binary frames are not accepted",
                                                                       field="frame"))
        text = message.get("text") or ""
        if len(text) > MAX_FRAME_CHARS:
            raise _Closing(1009, "frame too large", InvalidInput(f"a frame is at most {MAX_FRAME_CHARS} characters",
                                                                 field="frame"))
        try:
            data = json.loads(text)
        except ValueError:
            raise _Closing(1007, "frames must be JSON", InvalidInput("a frame is not JSON", field="frame")) from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise _Closing(1008, "frames need a type", InvalidInput("a frame needs a 'type'", field="type"))
        return data

    async def _configure(self, data: dict) -> None:
        if data["type"] != "config":
            raise _Closing(1008, "config first", InvalidInput("the first frame must be {\"type\": \"config\"}",
                                                              field="type"))
        try:
            config = RealtimeConfig.model_validate(data)
            fmt = encoders.check_format(config.format)
            encoders.output_sample_rate(fmt, 24000, config.sample_rate)
            self._check_options(config)  # the same range checks as /v1/tts
            await authenticate(self.services, self.ws, config.token)  # before any tenant-owned lookup
            self.lexicon = await lexicon_entries(self.services, config.lexicons, self.ws)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "config"
            raise _Closing(1008, "bad config", InvalidInput(f"{field}: {first['msg']}", field=field)) from None
        except VoxServeError as exc:
            raise _Closing(1008, "bad config", exc) from None
        self.config = config
        await self._emit({"type": "ready", "session_id": self.session_id, "format": fmt})

    async def _control_loop(self, speaker: asyncio.Task) -> None:
        """Client frames until ``close``: text into sentences, flushes, acks; the grace timer."""
        idle = self.settings.ws_idle_timeout_s
        last = time.monotonic()
        while True:
            if speaker.done():
                speaker.result()  # re-raises why it stopped (a client that does not read)
            now = time.monotonic()
            if now - last >= idle:
                raise _Closing(1001, f"idle for {idle:g} s")
            deadline = self.buffer.deadline()
            wait = idle - (now - last) if deadline is None else max(0.0, deadline - now)
            # Wake at least twice a second to notice the speaker stopping.
            data = await self._receive(min(wait, 0.5))
            if data is None:
                self._queue(self.buffer.due())
                continue
            last = time.monotonic()
            if await self._handle(data):
                return

    async def _handle(self, data: dict) -> bool:
        kind = data["type"]
        if kind == "text":
            text = data.get("text")
            if not isinstance(text, str):
                raise _Closing(1008, "text must be a string", InvalidInput("text must be a string", field="text"))
            self._check_room(len(text))
            self._queue(self.buffer.feed(text))
        elif kind == "flush":
            self._queue(self.buffer.flush())
            self.sentences.put_nowait(_FLUSH)
        elif kind == "ack":
            self.unacked.pop(data.get("index"), None)
            self.acked.set()
        elif kind == "close":
            self._queue(self.buffer.flush())
            self.sentences.put_nowait(_CLOSE)
            return True
        else:
            raise _Closing(1008, "unknown type", InvalidInput(
                f"unknown frame type {kind!r}; use config, text, flush, ack or close", field="type"))
        return False

    def _check_room(self, more: int) -> None:
        limit = self.settings.max_text_chars
        if self.queued_chars + self.buffer.pending_chars + more > limit:
            raise _Closing(1009, "too much text unspoken", InvalidInput(
                f"more than {limit} characters sent and not yet spoken", field="text"))

    def _queue(self, sentences: list[str]) -> None:
        for sentence in sentences:
            self.queued_chars += len(sentence)
            self.sentences.put_nowait(sentence)

    # ------------------------------------------------------------------ output

    async def _emit(self, message: dict | bytes) -> None:
        """Queue a message for the client; a client that leaves the queue full is disconnected."""
        try:
            await asyncio.wait_for(self.out.put(message), timeout=self.settings.ws_send_timeout_s)
        except TimeoutError:
            raise _Closing(1008, "client is not reading: send queue full") from None

    async def _send_loop(self) -> None:
        while True:
            message = await self.out.get()
            if isinstance(message, bytes):
                await self.ws.send_bytes(message)
            else:
                await self.ws.send_text(json.dumps(message, ensure_ascii=False))

    async def _speak_loop(self) -> None:
        while True:
            item = await self.sentences.get()
            if item is _FLUSH or item is _CLOSE:
                await self._done()
                if item is _CLOSE:
                    return
                continue
            self.queued_chars -= len(item)
            await self._speak(item)
            await self._wait_for_acks()

    async def _wait_for_acks(self) -> None:
        """Bounded audio in flight: beyond the window, wait for the client's acks (or close)."""
        deadline = time.monotonic() + self.settings.ws_send_timeout_s
        while sum(self.unacked.values()) > self.settings.ws_ack_window_s and len(self.unacked) > 1:
            self.acked.clear()
            left = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self.acked.wait(), timeout=max(0.0, left))
            except TimeoutError:
                raise _Closing(1008, "client is not reading: no ack") from None

    @staticmethod
    def _check_options(config: RealtimeConfig) -> None:
        TTSRequest(text="-", speed=config.speed, pitch=config.pitch, volume=config.volume).options().validated()

    async def _speak(self, text: str) -> None:
        index = self.next_index
        self.next_index += 1
        config = self.config
        body = TTSRequest(text=text, voice=config.voice, language=config.language, format=config.format,
                          sample_rate=config.sample_rate, speed=config.speed, pitch=config.pitch,
                          volume=config.volume, timestamps=True, cache=False)
        try:
            req = with_pronunciations(await self.services.audio_request(body, self.ws), self.lexicon)
            prepared, chunks = await self.services.synthesis.audio_stream(req)
        except EmptyText:
            return  # punctuation only: nothing to say
        except Exception as exc:  # noqa: BLE001 - reported to the client, the session goes on
            await self._sentence_error(exc, index)
            return
        segment = await self._segment_for(prepared.voice.sample_rate)
        if segment.sentences:
            await self._send_audio(segment, silence(self.settings.sentence_pause_s, segment.source_rate))
        segment.sentences += 1
        start_s = segment.position_s
        await self._emit({"type": "sentence_start", "index": index, "text": text, "start_s": round(start_s, 3)})
        resampler = _StreamResampler(prepared.voice.sample_rate, segment.source_rate)
        try:
            async for item in chunks:
                if isinstance(item, list):
                    if config.timestamps:
                        for word in item:
                            await self._emit({"type": "word", "index": index,
                                              **word.shifted(start_s).to_dict()})
                else:
                    await self._send_audio(segment, resampler.push(item))
            await self._send_audio(segment, resampler.flush())
        except (_Closing, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - a replica died mid-sentence: say so, go on
            await self._sentence_error(exc, index)
        self.unacked[index] = segment.position_s - start_s
        await self._emit({"type": "sentence_end", "index": index, "end_s": round(segment.position_s, 3),
                          "sample_rate": segment.out_rate})

    async def _sentence_error(self, exc: Exception, index: int) -> None:
        err = as_voxserve_error(exc)
        if err is None:
            log.exception("realtime session %s: sentence %d failed", self.session_id, index)
            err = VoxServeError("this sentence could not be synthesized")
            err.code = "internal_error"
        await self._emit({**_error_event(err), "index": index})

    async def _segment_for(self, voice_rate: int) -> Segment:
        if self.segment is None:
            fmt = encoders.check_format(self.config.format)
            out_rate = encoders.output_sample_rate(fmt, voice_rate, self.config.sample_rate)
            key = f"{LIVE_PREFIX}/{self.session_id}/{self.segments}.{encoders.FILE_EXTENSIONS[fmt]}"
            self.segments += 1
            self.segment = Segment(self.services.store, self.services.synthesis.deferred, key, fmt, voice_rate,
                                   out_rate)
            header = await self.segment.header()
            if header:
                await self._emit(header)
        return self.segment

    async def _send_audio(self, segment: Segment, audio) -> None:
        if len(audio):
            data = await segment.feed(audio)
            if data:
                await self._emit(data)

    async def _done(self) -> None:
        segment, self.segment = self.segment, None
        if segment is None:
            await self._emit({"type": "done", "url": None, "key": None, "duration_s": 0.0, "sentences": 0})
            return
        try:
            tail = await segment.finish()
        except BaseException:
            await asyncio.shield(segment.sink.abort())
            raise
        if tail:
            await self._emit(tail)
        await self._emit({"type": "done", "url": self.services.store.url(segment.key), "key": segment.key,
                          "duration_s": round(segment.position_s, 3), "sentences": segment.sentences})


class _ClientGone(Exception):
    pass


def _error_event(err: VoxServeError) -> dict:
    return {"type": "error", "code": err.code, "message": err.message, "field": err.field}


async def authenticate(services: Services, websocket: WebSocket, token: str | None) -> None:
    """Auth as for HTTP: a bearer token or API key from the ``Authorization`` header or the config
    frame's ``token``, verified by the same code as the HTTP middleware; the principal goes to
    ``websocket.state.principal`` (its tenant owns lexicons and voices). Refused: close 1008."""
    from .auth.errors import InsufficientScope, Unauthorized
    from .auth.principal import ANONYMOUS

    if services.auth is None:
        websocket.state.principal = ANONYMOUS
        return
    header = websocket.headers.get("authorization") or (f"Bearer {token}" if token else None)
    try:
        principal = await services.auth.authenticate(header)
        if not principal.has("tts"):
            raise InsufficientScope("tts")
    except (Unauthorized, InsufficientScope) as exc:
        raise _Closing(1008, "unauthorized", VoxServeError(getattr(exc, "message", "unauthorized"))) from None
    websocket.state.principal = principal