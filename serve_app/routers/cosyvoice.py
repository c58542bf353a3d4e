"""CosyVoice ``runtime/python/fastapi/server.py`` compatibility: ``/inference_*``, GET and POST.

Upstream reads form fields (its bundled client sends them as a form body *on a GET*)
and answers headerless int16 PCM, streamed; its client plays it at 22050 Hz, so that
is our default rate (``cosyvoice_sample_rate``), also stated in ``X-Sample-Rate``
(and ``X-Custom-Header-sampleRate``, the header older upstream servers sent).

- ``spk_id`` is a voice name: CosyVoice's SFT speakers (``中文女`` ...) resolve through
  ``voice_aliases`` to the default voice for their language; our voice ids and
  registered voice ids work too.
- ``prompt_wav`` is a per-request reference clip (voice adaptation, see the README);
  ``prompt_text`` is accepted and named in ``X-Ignored-Params`` (our adaptation needs
  no transcript).
- ``instruct_text``: speed, pitch and volume phrases are honoured (``X-Instruct-Applied``);
  the rest is named in ``X-Instruct-Ignored`` (percent-encoded).

Errors have FastAPI's shape, which is what upstream answers: ``{"detail": [{"type",
"loc", "msg"}]}`` for a field, ``{"detail": message}`` otherwise; our status codes.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from tts_engine.errors import InvalidInput, PayloadTooLarge
from tts_engine.text.instructions import Instruction, read_instruction

from ..adapter_errors import Problem, adapter_route
from ..adapter_io import header_list, read_params
from ..context import Services, get_services
from ..openapi import error_responses
from ..responses import streaming_response
from ..schemas import TTSRequest

WIRE_NAMES = {"text": "tts_text", "voice": "spk_id", "reference_audio": "prompt_wav", "speed": "instruct_text",
              "pitch": "instruct_text", "volume": "instruct_text"}


class MissingField(InvalidInput):
    code = "missing"


def render_error(problem: Problem) -> JSONResponse:
    problem = problem.renamed(WIRE_NAMES)
    detail: list[dict] | str = problem.message
    if problem.field:
        detail = [{"type": problem.code, "loc": ["body", problem.field], "msg": problem.message, "input": None}]
    return JSONResponse({"detail": detail}, status_code=problem.status, headers=problem.headers)


class UpstreamError(BaseModel):
    """FastAPI's error body, as CosyVoice's server answers: a message or a list of field errors."""
    detail: str | list[dict]


router = APIRouter(tags=["cosyvoice"], route_class=adapter_route(render_error),
                   responses=error_responses(400, 404, 409, 413, 415, 422, 503, model=UpstreamError))


class Form:
    """One request's form fields and files, with upstream's required-field errors."""

    def __init__(self, fields: dict, files: dict[str, bytes], max_upload_bytes: int) -> None:
        self.fields, self.files, self.max_upload_bytes = fields, files, max_upload_bytes

    def text(self, name: str) -> str:
        value = self.fields.get(name)
        if not isinstance(value, str) or value == "":
            raise MissingField(f"{name}: Field required", field=name)
        return value

    def file(self, name: str) -> bytes:
        if name not in self.files:
            raise MissingField(f"{name}: Field required (an audio file upload)", field=name)
        if len(self.files[name]) > self.max_upload_bytes:
            raise PayloadTooLarge(f"{name} is over the limit of {self.max_upload_bytes} bytes", field=name)
        return self.files[name]


async def read(request: Request, services: Services) -> Form:
    fields, files = await read_params(request, services.settings.max_upload_bytes + 64 * 1024)
    return Form(fields, files, services.settings.max_upload_bytes)


@router.get("/inference_sft")
@router.post("/inference_sft")
async def inference_sft(request: Request, services: Services = Depends(get_services)) -> StreamingResponse:
    """``tts_text`` + ``spk_id``."""
    form = await read(request, services)
    return await speak(services, request, form.text("tts_text"), voice=form.text("spk_id"))


@router.get("/inference_zero_shot")
@router.post("/inference_zero_shot")
async def inference_zero_shot(request: Request, services: Services = Depends(get_services)) -> StreamingResponse:
    """``tts_text`` + ``prompt_text`` + ``prompt_wav`` file."""
    form = await read(request, services)
    text, _ = form.text("tts_text"), form.text("prompt_text")
    return await speak(services, request, text, reference=form.file("prompt_wav"), ignored=["prompt_text"])


@router.get("/inference_cross_lingual")
@router.post("/inference_cross_lingual")
async def inference_cross_lingual(request: Request,
                                  services: Services = Depends(get_services)) -> StreamingResponse:
    """``tts_text`` + ``prompt_wav`` file."""
    form = await read(request, services)
    return await speak(services, request, form.text("tts_text"), reference=form.file("prompt_wav"))


@router.get("/inference_instruct")
@router.post("/inference_instruct")
async def inference_instruct(request: Request, services: Services = Depends(get_services)) -> StreamingResponse:
    """``tts_text`` + ``spk_id`` + ``instruct_text``."""
    form = await read(request, services)
    text, voice = form.text("tts_text"), form.text("spk_id")
    return await speak(services, request, text, voice=voice, instruction=read_instruction(form.text("instruct_text")))


@router.get("/inference_instruct2")
@router.post("/inference_instruct2")
async def inference_instruct2(request: Request, services: Services = Depends(get_services)) -> StreamingResponse:
    """``tts_text`` + ``instruct_text`` + ``prompt_wav`` file."""
    form = await read(request, services)
    text, instruction = form.text("tts_text"), read_instruction(form.text("instruct_text"))
    return await speak(services, request, text, reference=form.file("prompt_wav"), instruction=instruction)


async def speak(services: Services, request: Request, text: str, voice: str | None = None,
                reference: bytes | None = None, instruction: Instruction | None = None,
                ignored: list[str] | None = None) -> StreamingResponse:
    """Headerless s16le PCM at ``cosyvoice_sample_rate``, streamed, through the one synthesis service."""
    rate = services.settings.cosyvoice_sample_rate
    effects = instruction or Instruction()
    body = TTSRequest(text=text, voice=voice, format="pcm", sample_rate=rate, speed=effects.speed,
                      pitch=effects.pitch, volume=effects.volume)
    req = await services.audio_request(body, request, reference)
    response = await streaming_response(services, req, request.url.path)
    response.headers["X-Custom-Header-sampleRate"] = str(rate)
    if ignored:
        response.headers["X-Ignored-Params"] = header_list(ignored)
    if instruction is not None:
        response.headers["X-Instruct-Applied"] = header_list(effects.applied) or "none"
        if effects.ignored:
            response.headers["X-Instruct-Ignored"] = header_list(effects.ignored)
    return response
