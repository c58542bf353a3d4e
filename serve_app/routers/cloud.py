"""The cloud API of our seed article (``/tts/v1/*``, ``/clone/v1/*``): its Python snippets run
unchanged against VoxServe with only the host replaced.

- ``POST /tts/v1/synthesize`` JSON ``{text, voice, format, speed, pitch}`` -> JSON with the audio
  in base64 (``audio``) plus our usual fields (``audio_url``, ``duration_s`` ...).
- ``GET /tts/v1/stream?text=...&chunk_size=...`` -> chunked audio, mp3 unless ``format`` says
  otherwise; no chunk is larger than ``chunk_size`` bytes.
- ``POST /clone/v1/upload`` (multipart ``audio``) -> ``{sample_id}``; ``POST /clone/v1/train``
  ``{sample_id, voice_name}`` -> ``{task_id}``; ``GET /clone/v1/status/{task_id}`` ->
  ``{state, voice_id, progress}``. Training is our voice registration (voice adaptation, see
  the README); the task id is the new voice's id and the job is the registration job.

Voice names such as ``zh-CN-XiaoyanNeural`` resolve through ``voice_aliases``. Errors are our
shape, ``{"error": {"code", "message", "field"}}``, with the status codes the article lists
(401 token, 413 too large, 429 over the limit, 502/503 backend trouble).
"""

from __future__ import annotations

import asyncio
import base64

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from storage.samples import SampleStore
from storage.voices import VoiceRegistry
from tts_engine.errors import NotFound
from tts_engine.speaker.references import decode_reference

from ..adapter_io import rechunked
from ..auth.principal import principal_of
from ..context import Services, get_services
from ..http_io import read_audio_upload, read_model, validated
from ..openapi import SYNTHESIS_ERRORS
from ..openapi import json_body as body_schema
from ..responses import streaming_response
from ..schemas import TTSRequest
from .voices import register

router = APIRouter(tags=["cloud API"], responses=SYNTHESIS_ERRORS)

# DSP-only registration has no finer progress than "running" (0.5); a voice-matching job reports
# its own (issue 13).
STATES = {"processing": ("running", 0.5), "ready": ("completed", 1.0), "failed": ("failed", 1.0)}


class CloudSynthesizeRequest(TTSRequest):
    """Our TTS fields (``pitch`` in semitones), with mp3 as the default format."""

    format: str = Field("mp3", description="mp3 | wav | opus | flac | pcm | aac")


class CloudStreamQuery(CloudSynthesizeRequest):
    chunk_size: int = Field(8192, ge=64, le=1 << 20, description="Largest chunk sent, in bytes.")


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sample_id: str
    voice_name: str
    language: str | None = None


@router.post("/tts/v1/synthesize", openapi_extra=body_schema(CloudSynthesizeRequest))
async def synthesize(request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    body: CloudSynthesizeRequest = await read_model(request, CloudSynthesizeRequest)
    req = await services.audio_request(body, request)
    result = await services.synthesis.synthesize(req, want_bytes=True)
    return JSONResponse({
        "audio": base64.b64encode(result.data).decode(), "format": result.format,
        "sample_rate": result.sample_rate, "duration_s": round(result.duration_s, 3), "voice": result.voice,
        "audio_url": result.url, "key": result.key, "cached": result.cached, "request_id": req.request_id,
        "timings": result.timings,
    })


@router.get("/tts/v1/stream", responses={200: {"content": {"audio/*": {}}, "description": "Chunked audio"}})
async def stream(request: Request, services: Services = Depends(get_services)) -> StreamingResponse:
    query: CloudStreamQuery = validated(CloudStreamQuery, dict(request.query_params))
    req = await services.audio_request(query, request)
    response = await streaming_response(services, req, "/tts/v1/stream")
    response.body_iterator = rechunked(response.body_iterator, query.chunk_size)
    return response


@router.post("/clone/v1/upload", status_code=201)
async def upload(request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    """Multipart ``audio`` (a 3-60 s clip of one speaker) -> ``{sample_id, duration_s}``."""
    settings = services.settings
    _, audio = await read_audio_upload(request, settings.max_upload_bytes)
    clip, rate = await asyncio.to_thread(decode_reference, audio, settings, "audio")
    samples = SampleStore(services.store, principal_of(request).tenant)
    sample_id = await asyncio.to_thread(samples.put, audio)
    return JSONResponse({"sample_id": sample_id, "duration_s": round(len(clip) / rate, 3)}, status_code=201)


@router.post("/clone/v1/train", status_code=202, openapi_extra=body_schema(TrainRequest))
async def train(request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    """Start registering a voice from an uploaded sample -> ``{task_id, state}``; poll the status."""
    body: TrainRequest = await read_model(request, TrainRequest)
    samples = SampleStore(services.store, principal_of(request).tenant)
    audio = await asyncio.to_thread(samples.get, body.sample_id)
    record = await register(services, services.registry_for(request), body.voice_name, body.language, None, audio,
                            name_field="voice_name", audio_field="sample_id")
    return JSONResponse({"task_id": record.voice_id, "state": "pending", "progress": 0.0}, status_code=202,
                        headers={"Location": f"/clone/v1/status/{record.voice_id}"})


@router.get("/clone/v1/status/{task_id}")
async def status(task_id: str, request: Request, services: Services = Depends(get_services)) -> dict:
    """``{task_id, state: running|completed|failed, voice_id (when completed), progress, reason}``."""
    if not VoiceRegistry.is_registered_id(task_id):
        raise NotFound(f"unknown task '{task_id}'", field="task_id")
    try:
        record = await asyncio.to_thread(services.registry_for(request).get, task_id)
    except NotFound:
        raise NotFound(f"unknown task '{task_id}'", field="task_id") from None
    state, progress = STATES.get(record.status, ("failed", 1.0))
    if record.status == "processing" and record.progress:
        progress = record.progress
    return {"task_id": task_id, "state": state, "progress": progress,
            "voice_id": record.voice_id if state == "completed" else None, "voice_name": record.name,
            "reason": record.reason}
