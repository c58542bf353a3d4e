"""OpenAI-compatible ``POST /v1/audio/speech`` (``client.audio.speech.create`` works unchanged)."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from tts_engine.errors import UnsupportedFormat

from ..context import Services, get_services
from ..http_io import read_model
from ..openapi import SYNTHESIS_ERRORS, json_body
from ..responses import sse_response, streaming_response
from ..schemas import OPENAI_FORMATS, SpeechRequest, TTSRequest

OPENAI_PCM_RATE = 24000  # OpenAI's "pcm" is 24 kHz s16le

router = APIRouter(tags=["openai"])


@router.post("/v1/audio/speech", openapi_extra=json_body(SpeechRequest), response_class=StreamingResponse,
             responses={200: {"content": {"audio/*": {}, "text/event-stream": {}}}, **SYNTHESIS_ERRORS})
async def openai_speech(request: Request, services: Services = Depends(get_services)) -> StreamingResponse:
    """OpenAI-compatible speech endpoint."""
    body: SpeechRequest = await read_model(request, SpeechRequest)
    fmt = body.response_format.lower()
    if fmt not in OPENAI_FORMATS:
        raise UnsupportedFormat(f"response_format '{body.response_format}' is not supported; use one of "
                                f"{list(OPENAI_FORMATS)}", field="response_format")
    tts_body = TTSRequest(text=body.input, voice=body.voice, speed=body.speed, format=fmt,
                          sample_rate=OPENAI_PCM_RATE if fmt == "pcm" else None)
    req = await services.audio_request(tts_body, request)
    if body.stream_format == "sse":
        return await sse_response(services, req)
    return await streaming_response(services, req, "/v1/audio/speech")
