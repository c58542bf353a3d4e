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

from deployments.options import INGRESS, SYNTHESIZER
from deployments.speaker_cache import SpeakerEmbeddingCache
from deployments.synthesizer import Synthesizer
from deployments.text_frontend import TextFrontend
from tts_engine import encoders
from tts_engine.cloning import AdaptationConditioning, VoiceRegistry, decode_reference
from tts_engine.errors import BadRequest, InvalidInput, NotFound, PayloadTooLarge, UnsupportedFormat, UnsupportedMediaType
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
OPENAI_PCM_RATE = 24000
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # OpenAI's "pcm" is 24 kHz s16le

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


def content_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited_body(request: Request, limit: int, what: str) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (before reading it all)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes", field=what)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes", field=what)
    request._body = bytes(body)  # lets request.form() parse what was already read
    return request._body


def validated(model: type[BaseModel], data: dict | bytes) -> BaseModel:
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def read_model(request: Request, model: type[BaseModel]) -> BaseModel:
    """Parse a JSON body into ``model``, with our 400/413/415/422 errors."""
    content_type = content_type_of(request)
    if content_type not in ("application/json", ""):
        raise UnsupportedMediaType(f"send application/json (got '{content_type}')", field="content-type")
    raw = await read_limited_body(request, MAX_JSON_BYTES, "body")
    return validated(model, raw or b"{}")


async def read_form(request: Request, limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """Multipart form: (text fields, file fields as bytes)."""
    await read_limited_body(request, limit, "body")
    form = await request.form()
    fields, files = {}, {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            fields[name] = value
        else:
            files[name] = await value.read()
    return fields, files


@serve.deployment(name="Ingress", **INGRESS)
@serve.ingress(app)
class Ingress:
    def __init__(self, frontend, synthesizer, speaker_cache, settings: dict | None = None) -> None:
        logging.basicConfig(level=logging.INFO)
        self.settings = Settings(**(settings or {}))
        self.store = open_store(self.settings)
        self.voices = VoiceCatalog(self.settings)
        self.registry = VoiceRegistry(self.store)
        self.speaker_cache = speaker_cache
        self.jobs: set[asyncio.Task] = set()
        self.metrics = IngressMetrics()
        app.state.metrics = self.metrics
        self.service = SynthesisService(self.settings, frontend, synthesizer, self.store, self.metrics)
        self.synthesizer = synthesizer

    # ------------------------------------------------------------------ synthesis

    @app.post("/v1/tts", response_model=TTSResponse, openapi_extra=tts_body_schema(),
              responses={200: {"content": {"audio/*": {}}}})
    async def tts(self, request: Request) -> Response:
        """Synthesize; answer a storage URL (default), base64 audio in JSON, or the audio bytes.
        Also takes multipart/form-data: the same fields plus a ``reference_audio`` file."""
        body, req = await self.read_tts(request)
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
        _, req = await self.read_tts(request)
        return await self.streaming_response(req, "/v1/tts/stream")

    @app.post("/v1/audio/speech", responses={200: {"content": {"audio/*": {}}}})
    async def openai_speech(self, request: Request) -> StreamingResponse:
        """OpenAI-compatible speech endpoint (works with ``client.audio.speech.create``)."""
        body: SpeechRequest = await read_model(request, SpeechRequest)
        fmt = body.response_format.lower()
        if fmt not in OPENAI_FORMATS or fmt == "aac":
            allowed = [f for f in OPENAI_FORMATS if f != "aac"]
            raise UnsupportedFormat(f"response_format '{body.response_format}' is not supported; use one of {allowed}",
                                    field="response_format")
        tts_body = TTSRequest(text=body.input, voice=body.voice, speed=body.speed, format=fmt,
                              sample_rate=OPENAI_PCM_RATE if fmt == "pcm" else None)
        req = await self.audio_request(tts_body, request)
        if body.stream_format == "sse":
            return await self.sse_response(req)
        return await self.streaming_response(req, "/v1/audio/speech")

    async def read_tts(self, request: Request) -> tuple[TTSRequest, AudioRequest]:
        if content_type_of(request) not in FORM_TYPES:
            body: TTSRequest = await read_model(request, TTSRequest)
            return body, await self.audio_request(body, request)
        fields, files = await read_form(request, self.settings.max_upload_bytes + 64 * 1024)
        body = validated(TTSRequest, fields)
        reference = files.get("reference_audio")
        if reference is None and fields.get("ref_audio_path"):
            reference = self.reference_from_path(fields["ref_audio_path"])
        return body, await self.audio_request(body, request, reference)

    def reference_from_path(self, path: str) -> bytes:
        """GPT-SoVITS-style ``ref_audio_path``: only ever inside ``reference_dir``."""
        root = self.settings.reference_dir
        if root is None:
            raise BadRequest("ref_audio_path is disabled on this server; upload reference_audio instead",
                             field="ref_audio_path")
        root = root.resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise BadRequest("ref_audio_path must name a file inside the reference directory",
                             field="ref_audio_path")
        return target.read_bytes()

    async def audio_request(self, body: TTSRequest, request: Request, reference: bytes | None = None) -> AudioRequest:
        """Resolve registered voices and reference clips into a base voice + conditioning."""
        voice, conditioning = body.voice, None
        if reference is not None:
            await asyncio.to_thread(decode_reference, reference, self.settings, "reference_audio")
            analysed = await self.speaker_cache.analyze.remote(reference)
            conditioning = AdaptationConditioning(analysed.profile)
        elif VoiceRegistry.is_registered_id(voice):
            record = await asyncio.to_thread(self.registry.ready, voice)
            voice, conditioning = record.base_voice or None, AdaptationConditioning(record.profile)
        return AudioRequest(
            text=body.text, options=body.options(voice=voice or self.settings.default_voice), format=body.format,
            sample_rate=body.sample_rate, cache=body.cache, request_id=request.state.request_id,
            conditioning_key=conditioning.identity() if conditioning else "",
            transform=conditioning.apply if conditioning else None,
        )

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
        registered = await asyncio.to_thread(self.registry.list)
        return {"voices": [v.describe() for v in self.voices.list()] + [r.public() for r in registered]}

    @app.get("/v1/voices/{voice_id}")
    async def get_voice(self, voice_id: str) -> dict:
        if VoiceRegistry.is_registered_id(voice_id):
            return (await asyncio.to_thread(self.registry.get, voice_id)).public()
        return self.voices.get(voice_id).describe()

    @app.post("/v1/voices", status_code=202)
    async def register_voice(self, request: Request) -> JSONResponse:
        """Upload a reference clip (multipart: audio, name, transcript?, language?) -> 202 + voice_id;
        analysis runs in the background; poll GET /v1/voices/{voice_id}."""
        if content_type_of(request) != "multipart/form-data":
            raise UnsupportedMediaType("send multipart/form-data with an 'audio' file", field="content-type")
        fields, files = await read_form(request, self.settings.max_upload_bytes + 64 * 1024)
        audio = files.get("audio")
        if audio is None:
            raise InvalidInput("an 'audio' file is required", field="audio")
        if len(audio) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(f"audio is over the limit of {self.settings.max_upload_bytes} bytes", field="audio")
        name = fields.get("name", "").strip()
        if not name or len(name) > 100:
            raise InvalidInput("name is required (1 to 100 characters)", field="name")
        base = self.voices.get(None)
        language = fields.get("language", base.languages[0]).strip().lower()
        if language not in base.languages:
            raise InvalidInput(f"language '{language}' is not spoken by the base voice ({base.languages})",
                               field="language")
        await asyncio.to_thread(decode_reference, audio, self.settings, "audio")
        record = await asyncio.to_thread(self.registry.create, name, language, fields.get("transcript"), audio,
                                         base.id)
        job = asyncio.create_task(self.run_registration(record.voice_id))
        self.jobs.add(job)
        job.add_done_callback(self.jobs.discard)
        return JSONResponse({"voice_id": record.voice_id, "status": record.status}, status_code=202,
                            headers={"Location": f"/v1/voices/{record.voice_id}"})

    async def run_registration(self, voice_id: str) -> None:
        try:
            await self.speaker_cache.register.remote(voice_id)
        except Exception:  # noqa: BLE001 - the job records its own failure; this is a transport error
            log.exception("registration job for %s could not run", voice_id)

    @app.delete("/v1/voices/{voice_id}", status_code=204)
    async def delete_voice(self, voice_id: str) -> Response:
        await asyncio.to_thread(self.registry.delete, voice_id)
        return Response(status_code=204)

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
        return {"ingress": dict(self.metrics.local), "synthesizer": await self.synthesizer.stats.remote(),
                "speaker_cache": await self.speaker_cache.stats.remote()}


def build_app(args: dict | None = None):
    """The bound application; ``args`` are Settings overrides (the serve config's ``args:``)."""
    overrides = dict(args or {})
    settings = Settings(**overrides)  # fail fast on bad config, before any replica starts
    synthesizer = Synthesizer
    if settings.synthesizer_num_gpus:
        # The serve config's ray_actor_options still win over this (Serve applies them last).
        actor = {**SYNTHESIZER["ray_actor_options"], "num_gpus": settings.synthesizer_num_gpus}
        synthesizer = Synthesizer.options(ray_actor_options=actor)
    return Ingress.bind(TextFrontend.bind(overrides), synthesizer.bind(overrides),
                        SpeakerEmbeddingCache.bind(overrides), settings=overrides)
