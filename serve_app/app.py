"""HTTP ingress: a FastAPI app mounted on Ray Serve, plus ``build_app`` for ``serve run``/``serve build``.

    serve run serve_app.app:build_app          # defaults
    serve run infra/serve_config.yaml          # tuned deployments
"""

# No `from __future__ import annotations` here: FastAPI must see real types on the
# ingress methods (Request) to inject them rather than read them from the body.

import asyncio
import base64
import json
import logging
import re
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from ray import serve

from deployments.options import INGRESS
from deployments.synthesizer import Synthesizer
from deployments.text_frontend import TextFrontend
from tts_engine import encoders
from tts_engine.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedFormat, UnsupportedMediaType
from tts_engine.settings import Settings
from tts_engine.store import LocalStore, open_store
from tts_engine.voices import VoiceCatalog

from .errors import install_error_handlers
from .metrics import IngressMetrics
from .schemas import OPENAI_FORMATS, SpeechRequest, TTSRequest, TTSResponse
from .synthesis import AudioRequest, SynthesisService

log = logging.getLogger("voxserve")

MAX_JSON_BYTES = 1 << 20
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
OPENAI_PCM_RATE = 24000  # OpenAI's "pcm" is 24 kHz s16le

app = FastAPI(
    title="VoxServe",
    version="0.1.0",
    description="Text-to-speech on Ray Serve: sync, streaming, OpenAI-compatible; audio in S3-compatible storage.",
)
install_error_handlers(app)


@app.middleware("http")
async def request_context(request: Request, call_next):
    """Request id (Ray's proxy accepts X-Request-ID or generates one, and echoes it), logged; metrics."""
    incoming = request.headers.get("x-request-id", "")
    request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request.state.request_id = request_id
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.request(path, response.status_code, time.perf_counter() - started)
    log.info("%s %s -> %s request_id=%s", request.method, request.url.path, response.status_code, request_id)
    return response


def tts_body_schema() -> dict:
    schema = TTSRequest.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def read_model(request: Request, model: type[BaseModel]) -> BaseModel:
    """Parse a JSON body into ``model``, with our 400/413/415/422 errors."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", ""):
        raise UnsupportedMediaType(f"send application/json (got '{content_type}')", field="content-type")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"request body over {MAX_JSON_BYTES} bytes", field="body")
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"request body over {MAX_JSON_BYTES} bytes", field="body")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@serve.deployment(name="Ingress", **INGRESS)
@serve.ingress(app)
class Ingress:
    def __init__(self, frontend, synthesizer, settings: dict | None = None) -> None:
        logging.basicConfig(level=logging.INFO)
        self.settings = Settings(**(settings or {}))
        self.store = open_store(self.settings)
        self.voices = VoiceCatalog(self.settings)
        self.metrics = IngressMetrics()
        app.state.metrics = self.metrics
        self.service = SynthesisService(self.settings, frontend, synthesizer, self.store, self.metrics)
        self.synthesizer = synthesizer

    # ------------------------------------------------------------------ synthesis

    @app.post("/v1/tts", response_model=TTSResponse, openapi_extra=tts_body_schema(),
              responses={200: {"content": {"audio/*": {}}}})
    async def tts(self, request: Request) -> Response:
        """Synthesize; answer a storage URL (default), base64 audio in JSON, or the audio bytes."""
        body: TTSRequest = await read_model(request, TTSRequest)
        req = self.audio_request(body, request)
        result = await self.service.synthesize(req, want_bytes=body.response != "url")
        if body.response == "binary":
            return Response(result.data, media_type=encoders.CONTENT_TYPES[result.format],
                            headers={"X-Audio-URL": result.url, "X-Cache": "hit" if result.cached else "miss"})
        payload = TTSResponse(
            audio_url=result.url, key=result.key, duration_s=round(result.duration_s, 3),
            sample_rate=result.sample_rate, format=result.format, voice=result.voice, cached=result.cached,
            request_id=req.request_id, timings=result.timings,
            audio_base64=base64.b64encode(result.data).decode() if body.response == "base64" else None,
        )
        return JSONResponse(payload.model_dump(exclude_none=True))

    @app.post("/v1/tts/stream", openapi_extra=tts_body_schema(),
              responses={200: {"content": {"audio/*": {}}, "description": "Chunked audio"}})
    async def tts_stream(self, request: Request) -> StreamingResponse:
        """Chunked audio; first bytes leave as soon as the first chunk is vocoded. The whole file is
        also stored under its key, whose URL is in ``X-Audio-URL``."""
        body: TTSRequest = await read_model(request, TTSRequest)
        return await self.streaming_response(self.audio_request(body, request), "/v1/tts/stream")

    @app.post("/v1/audio/speech", responses={200: {"content": {"audio/*": {}}}})
    async def openai_speech(self, request: Request) -> StreamingResponse:
        """OpenAI-compatible speech endpoint (works with ``client.audio.speech.create``)."""
        body: SpeechRequest = await read_model(request, SpeechRequest)
        fmt = body.response_format.lower()
        if fmt not in OPENAI_FORMATS or fmt == "aac":
            allowed = [f for f in OPENAI_FORMATS if f != "aac"]
            raise UnsupportedFormat(f"response_format '{body.response_format}' is not supported; use one of {allowed}",
                                    field="response_format")
        options = TTSRequest(text=body.input, voice=body.voice, speed=body.speed).options()
        req = AudioRequest(text=body.input, options=options, format=fmt,
                           sample_rate=OPENAI_PCM_RATE if fmt == "pcm" else None,
                           request_id=request.state.request_id)
        if body.stream_format == "sse":
            return await self.sse_response(req)
        return await self.streaming_response(req, "/v1/audio/speech")

    def audio_request(self, body: TTSRequest, request: Request) -> AudioRequest:
        return AudioRequest(text=body.text, options=body.options(), format=body.format,
                            sample_rate=body.sample_rate, cache=body.cache,
                            request_id=request.state.request_id)

    async def streaming_response(self, req: AudioRequest, route: str) -> StreamingResponse:
        started = time.perf_counter()

        def first_byte() -> None:
            self.metrics.first_chunk.observe(time.perf_counter() - started, tags={"route": route})

        stream = await self.service.stream(req, on_first_byte=first_byte)
        headers = {"X-Audio-URL": stream.url, "X-Audio-Key": stream.key,
                   "X-Cache": "hit" if stream.cached else "miss", "Cache-Control": "no-store"}
        return StreamingResponse(stream.body, media_type=stream.content_type, headers=headers)

    async def sse_response(self, req: AudioRequest) -> StreamingResponse:
        stream = await self.service.stream(req)

        async def events():
            async for chunk in stream.body:
                if chunk:
                    event = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
                    yield f"data: {json.dumps(event)}\n\n"
            yield f"data: {json.dumps({'type': 'speech.audio.done'})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"X-Audio-URL": stream.url})

    # ------------------------------------------------------------------ voices

    @app.get("/v1/voices")
    async def list_voices(self) -> dict:
        return {"voices": [v.describe() for v in self.voices.list()]}

    @app.get("/v1/voices/{voice_id}")
    async def get_voice(self, voice_id: str) -> dict:
        return self.voices.get(voice_id).describe()

    # ------------------------------------------------------------------ media, health, stats

    @app.get("/media/{key:path}", include_in_schema=False)
    async def media(self, key: str, expires: str = "", sig: str = "") -> FileResponse:
        """Local-store audio behind HMAC-signed, expiring URLs (S3 deployments use presigned/CDN URLs)."""
        if not isinstance(self.store, LocalStore):
            raise NotFound("media is served by object storage in this deployment", field="key")
        try:
            self.store.verify_media_signature(key, expires, sig)
            path = self.store.media_path(key)
        except InvalidInput as exc:
            return JSONResponse({"error": {"code": "bad_key", "message": exc.message, "field": "key"}},
                                status_code=400)
        head = self.store.head(key)
        media_type = head.content_type if head else "application/octet-stream"
        return FileResponse(path, media_type=media_type,
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(self) -> JSONResponse:
        problems = await asyncio.to_thread(self.readiness_problems)
        body = {"status": "ready" if not problems else "not_ready", "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503,
                            headers=None if not problems else {"Retry-After": "1"})

    def readiness_problems(self) -> list[str]:
        problems = []
        try:
            self.store.check()
        except Exception as exc:  # noqa: BLE001 - any storage failure means not ready
            problems.append(f"storage: {getattr(exc, 'message', type(exc).__name__)}")
        for name, app_status in serve.status().applications.items():
            for dep_name, dep in app_status.deployments.items():
                if str(dep.status).split(".")[-1] not in ("HEALTHY", "UPSCALING", "DOWNSCALING"):
                    problems.append(f"{name}/{dep_name}: {dep.status}")
        return problems

    @app.get("/v1/stats")
    async def stats(self) -> dict:
        """This ingress replica's counters and one Synthesizer replica's batch sizes (for tests and
        dashboards without Prometheus; cluster-wide numbers are in Ray's metrics)."""
        return {"ingress": dict(self.metrics.local), "synthesizer": await self.synthesizer.stats.remote()}


def build_app(args: dict | None = None):
    """The bound application; ``args`` are Settings overrides (the serve config's ``args:``)."""
    overrides = dict(args or {})
    Settings(**overrides)  # fail fast on bad config, before any replica starts
    return Ingress.bind(TextFrontend.bind(overrides), Synthesizer.bind(overrides), settings=overrides)
