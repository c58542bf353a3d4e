"""The native API: ``POST /v1/tts`` (URL, base64 or bytes) and ``POST /v1/tts/stream``."""

import base64

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tts_engine.audio import encoders
from tts_engine.errors import BadRequest

from .. import composite, timed
from ..context import Services, get_services
from ..http_io import FORM_TYPES, content_type_of, read_form, read_model, validated
from ..openapi import SYNTHESIS_ERRORS, tts_body
from ..responses import audio_response, sse_of, streaming_response
from ..schemas import TTSRequest, TTSResponse
from ..speech_input import SpeechPlan, plan_speech, warning_header

router = APIRouter(tags=["synthesis"])


@router.post("/v1/tts", response_model=TTSResponse, openapi_extra=tts_body(),
             responses={200: {"content": {"audio/*": {}}}, **SYNTHESIS_ERRORS})
async def tts(request: Request, services: Services = Depends(get_services)) -> Response:
    """Synthesize; answer a storage URL (default), base64 audio in JSON, or the audio bytes.
    Also takes multipart/form-data: the same fields plus a ``reference_audio`` file. ``text`` may
    be SSML (``text_type``); ``timestamps``/``captions`` add word timings; ``lexicons`` name
    pronunciation lexicons."""
    body, plan = await read_tts(request, services)
    want_bytes = body.response != "url"
    if plan.single is not None:
        req = plan.single
        result = await timed.synthesize(services.synthesis, req, want_bytes)
    else:
        req = plan.parts[0]
        result = await composite.synthesize(services.synthesis, plan, want_bytes)
        result = await timed.with_captions(services.synthesis, req.captions, result, not result.cached)
    headers = warning_header(plan)
    if body.response == "binary":
        headers |= {"X-Audio-URL": result.url, "X-Cache": "hit" if result.cached else "miss"}
        if result.captions_url:
            headers["X-Captions-URL"] = result.captions_url
        return Response(result.data, media_type=encoders.CONTENT_TYPES[result.format], headers=headers)
    payload = TTSResponse(
        audio_url=result.url, key=result.key, duration_s=round(result.duration_s, 3),
        sample_rate=result.sample_rate, format=result.format, voice=result.voice, cached=result.cached,
        request_id=req.request_id, timings=result.timings,
        audio_base64=base64.b64encode(result.data).decode() if body.response == "base64" else None,
        words=[w.to_dict() for w in result.words] if req.timestamps and result.words is not None else None,
        captions_url=result.captions_url,
    )
    return JSONResponse(payload.model_dump(exclude_none=True), headers=headers)


@router.post("/v1/tts/stream", openapi_extra=tts_body(), response_class=StreamingResponse,
             responses={200: {"content": {"audio/*": {}}, "description": "Chunked audio"}, **SYNTHESIS_ERRORS})
async def tts_stream(request: Request, services: Services = Depends(get_services)) -> StreamingResponse:
    """Chunked audio; first bytes leave as soon as the first chunk is vocoded. The whole file is
    also stored under its key, whose URL is in ``X-Audio-URL``. With ``"timestamps": true`` the
    answer is server-sent events: ``speech.word`` before each sentence's ``speech.audio.delta``s."""
    _, plan = await read_tts(request, services)
    headers = warning_header(plan)
    if plan.single is not None:
        req = plan.single
        if req.timestamps:
            return await sse_of(await services.synthesis.stream(req), headers)
        return await streaming_response(services, req, "/v1/tts/stream", headers)
    stream = await composite.stream(services.synthesis, plan)
    return await (sse_of(stream, headers) if plan.parts[0].timestamps else audio_response(stream, headers))


async def read_tts(request: Request, services: Services) -> tuple[TTSRequest, SpeechPlan]:
    """A TTS body from JSON, or from a form with an optional ``reference_audio`` file, as a plan
    of what to say (plain text: one part; SSML: its parts)."""
    if content_type_of(request) not in FORM_TYPES:
        body: TTSRequest = await read_model(request, TTSRequest)
        return body, await plan_speech(services, body, request)
    fields, files = await read_form(request, services.settings.max_upload_bytes + 64 * 1024)
    body = validated(TTSRequest, fields)
    reference = files.get("reference_audio")
    if reference is None and fields.get("ref_audio_path"):
        reference = reference_from_path(services, fields["ref_audio_path"])
    return body, await plan_speech(services, body, request, reference)


def reference_from_path(services: Services, path: str) -> bytes:
    """GPT-SoVITS-style ``ref_audio_path``: only ever inside ``reference_dir``."""
    root = services.settings.reference_dir
    if root is None:
        raise BadRequest("ref_audio_path is disabled on this server; upload reference_audio instead",
                         field="ref_audio_path")
    root = root.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise BadRequest("ref_audio_path must name a file inside the reference directory",
                         field="ref_audio_path")
    return target.read_bytes()
