"""Voices: the catalog and registered voices (upload -> job -> poll -> voice id)."""

import asyncio
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from storage.voices import VoiceRecord, VoiceRegistry
from tts_engine.errors import InvalidInput
from tts_engine.speaker.references import decode_reference

from ..context import Services, get_services
from ..http_io import read_audio_upload
from ..openapi import VOICE_UPLOAD, error_responses
from ..schemas import VoiceAccepted

log = logging.getLogger("voxserve")
router = APIRouter(tags=["voices"])


@router.get("/v1/voices", responses=error_responses(503))
async def list_voices(request: Request, services: Services = Depends(get_services)) -> dict:
    registered = await asyncio.to_thread(services.registry_for(request).list)
    # Transcripts only in GET /v1/voices/{id}: the listing stays small however many voices there are.
    listed = [{k: v for k, v in r.public().items() if k != "transcript"} for r in registered]
    return {"voices": [v.describe() for v in services.voices.list()] + listed}


@router.get("/v1/voices/{voice_id}", responses=error_responses(404, 503))
async def get_voice(voice_id: str, request: Request, services: Services = Depends(get_services)) -> dict:
    if VoiceRegistry.is_registered_id(voice_id):
        return (await asyncio.to_thread(services.registry_for(request).get, voice_id)).public()
    return services.voices.get(voice_id).describe()


@router.post("/v1/voices", status_code=202, openapi_extra=VOICE_UPLOAD, response_model=VoiceAccepted,
             responses=error_responses(400, 409, 413, 415, 422, 503))
async def register_voice(request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    """Upload a reference clip (multipart: audio, name, transcript?, language?) -> 202 + voice_id;
    analysis runs in the background; poll GET /v1/voices/{voice_id}."""
    settings = services.settings
    fields, audio = await read_audio_upload(request, settings.max_upload_bytes)
    record = await register(services, services.registry_for(request), fields.get("name", ""),
                            fields.get("language"), fields.get("transcript"), audio)
    return JSONResponse({"voice_id": record.voice_id, "status": record.status}, status_code=202,
                        headers={"Location": f"/v1/voices/{record.voice_id}"})


async def register(services: Services, registry: VoiceRegistry, name: str, language: str | None,
                   transcript: str | None, audio: bytes, name_field: str = "name",
                   audio_field: str = "audio") -> VoiceRecord:
    """Check a registration, store the record and reference, and start the job (also used by the
    cloud API's /clone/v1/train)."""
    settings = services.settings
    if transcript is not None and len(transcript) > settings.max_transcript_chars:
        raise InvalidInput(f"transcript is {len(transcript)} characters; the limit is "
                           f"{settings.max_transcript_chars}", field="transcript")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput(f"{name_field} is required (1 to 100 characters)", field=name_field)
    base = services.voices.get(None)
    spoken = list(base.languages)
    settings = services.settings
    if settings.matching_enabled and "kokoro" in settings.model_families:
        spoken += [lang for lang in ("en", "zh", "ja") if lang not in spoken]  # a fitted style speaks them all
    language = (language or base.languages[0]).strip().lower()
    if language not in spoken:
        raise InvalidInput(f"language '{language}' is not one of {spoken}", field="language")
    await asyncio.to_thread(decode_reference, audio, services.settings, audio_field)
    record = await asyncio.to_thread(registry.create, name, language, transcript, audio, base.id,
                                     max_voices=settings.max_voices_per_owner)
    job = asyncio.create_task(run_registration(services, record.voice_id, registry.tenant))
    services.jobs.add(job)
    job.add_done_callback(services.jobs.discard)
    return record


async def run_registration(services: Services, voice_id: str, tenant: str) -> None:
    try:
        await services.speaker_cache.register.remote(voice_id, tenant)
    except Exception:  # noqa: BLE001 - the job records its own failure; this is a transport error
        log.exception("registration job for %s could not run", voice_id)


@router.delete("/v1/voices/{voice_id}", status_code=204, response_class=Response,
               responses=error_responses(404, 503))
async def delete_voice(voice_id: str, request: Request, services: Services = Depends(get_services)) -> Response:
    """Delete a voice; a matching job still running for it stops at its next step (cancelled)."""
    await asyncio.to_thread(services.registry_for(request).delete, voice_id)
    return Response(status_code=204)
