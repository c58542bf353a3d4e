"""GPT-SoVITS ``api_v2.py`` compatibility: ``/tts`` by GET query, POST JSON or POST multipart.

Upstream's parameters are read as upstream names and types them; what maps onto our
synthesis is honoured (text, language, speed, seed, media type, streaming, split
method, fragment interval as the pause between pieces), sampling knobs of its GPT
stage are accepted and named in ``X-Ignored-Params``. The seed article's variant of
the same API is read too: ``lang``, ``spk``, ``speed``, ``streaming``, ``media_type:
mp3`` and a multipart ``ref_audio`` upload. Errors are upstream's shape,
``{"message", "Exception"}``, status 400 for bad input as upstream answers it.

Upstream's ``/set_refer_audio``, ``/set_gpt_weights``, ``/set_sovits_weights`` and
``/control`` change the one process's model or reference for every caller; on a
shared, scaled-out service that would be one client changing another's voice (and
would reach only one replica), so they are refused with 403 and a pointer to
per-request references and registered voices.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from storage.voices import VoiceRegistry
from tts_engine.audio import encoders
from tts_engine.errors import BadRequest, Forbidden, PayloadTooLarge

from ..adapter_errors import Problem, adapter_route
from ..adapter_io import header_list, read_params
from ..context import Services, get_services
from ..http_io import validated
from ..openapi import error_responses
from ..responses import streaming_response
from ..schemas import TTSRequest
from ..synthesis import AudioRequest
from .native import reference_from_path

# Upstream's text_lang / prompt_lang values (v1 and v2) -> our language codes.
TEXT_LANGUAGES = {"auto": "auto", "auto_yue": "auto", "en": "en", "zh": "zh", "all_zh": "zh", "ja": "ja",
                  "all_ja": "ja", "ko": "ko", "all_ko": "ko", "yue": "yue", "all_yue": "yue"}
SPLIT_METHODS = {"cut0": "none", "cut1": "four_sentences", "cut2": "fifty_chars", "cut3": "cjk_period",
                 "cut4": "period", "cut5": "punctuation"}
# media_type -> our format. Upstream's ogg is Vorbis; ours is Opus in Ogg (any Ogg player decodes it).
MEDIA_TYPES = {"wav": "wav", "raw": "pcm", "pcm": "pcm", "ogg": "opus", "aac": "aac", "mp3": "mp3"}
# Accepted with upstream's types, without meaning for our models (GPT sampling, batching, V3 steps).
IGNORED = ("aux_ref_audio_paths", "prompt_text", "prompt_lang", "top_k", "top_p", "temperature", "batch_size",
           "batch_threshold", "split_bucket", "parallel_infer", "repetition_penalty", "sample_steps",
           "super_sampling", "overlap_length", "min_chunk_length")
# Our field names in errors -> this API's.
WIRE_NAMES = {"speed": "speed_factor", "language": "text_lang", "format": "media_type", "seed": "seed",
              "split": "text_split_method", "pause_s": "fragment_interval", "reference_audio": "ref_audio",
              "voice": "spk", "text": "text"}
STREAMING_MODES = (0, 1, 2, 3)


class GptSovitsRequest(BaseModel):
    """Upstream's ``TTS_Request`` fields and defaults, plus the seed article's names."""

    model_config = ConfigDict(extra="ignore")

    text: str | None = None
    text_lang: str | None = None
    ref_audio_path: str | None = None
    aux_ref_audio_paths: list[str] | None = None
    prompt_lang: str | None = None
    prompt_text: str = ""
    top_k: int = 15
    top_p: float = 1
    temperature: float = 1
    text_split_method: str = "cut5"
    batch_size: int = 1
    batch_threshold: float = 0.75
    split_bucket: bool = True
    speed_factor: float = 1.0
    fragment_interval: float = 0.3
    seed: int = -1
    media_type: str = "wav"
    streaming_mode: bool | int = False
    parallel_infer: bool = True
    repetition_penalty: float = 1.35
    sample_steps: int = 32
    super_sampling: bool = False
    overlap_length: int = 2
    min_chunk_length: int = 16
    # The seed article's variant.
    lang: str | None = None
    spk: str | None = None
    speed: float | None = None
    streaming: bool | None = None


def render_error(problem: Problem) -> JSONResponse:
    """Upstream's ``{"message", "Exception"}``; 400 for anything about the request's values,
    as upstream; our 413/415/429/403/5xx keep their meaning (size, type, retry)."""
    problem = problem.renamed(WIRE_NAMES)
    status = 400 if problem.status in (404, 409, 422) else problem.status
    cause = f"{problem.code} ({problem.field})" if problem.field else problem.code
    body = {"message": problem.message, "Exception": cause}
    return JSONResponse(body, status_code=status, headers=problem.headers)


class UpstreamError(BaseModel):
    """api_v2's error body."""
    message: str
    Exception: str


router = APIRouter(tags=["gpt-sovits"], route_class=adapter_route(render_error),
                   responses=error_responses(400, 403, 413, 415, 503, model=UpstreamError))


@router.get("/tts")
@router.post("/tts")
async def tts(request: Request, services: Services = Depends(get_services)) -> Response:
    """GPT-SoVITS ``api_v2`` synthesis: wav/raw/ogg/aac (and mp3), whole or streamed."""
    params, files = await read_params(request, services.settings.max_upload_bytes + 64 * 1024)
    body: GptSovitsRequest = validated(GptSovitsRequest, params)
    stream = streaming(body)
    req, fmt = await audio_request(services, request, body, checked_upload(services, files.get("ref_audio")))
    if stream:
        response = await streaming_response(services, req, "/tts")
    else:
        result = await services.synthesis.synthesize(req, want_bytes=True)
        response = Response(result.data, media_type=encoders.CONTENT_TYPES[fmt], headers={
            "X-Audio-URL": result.url, "X-Sample-Rate": str(result.sample_rate),
            "X-Cache": "hit" if result.cached else "miss"})
    ignored = [name for name in IGNORED if name in params]
    if ignored:
        response.headers["X-Ignored-Params"] = header_list(ignored)
    return response


async def audio_request(services: Services, request: Request, body: GptSovitsRequest,
                        upload: bytes | None) -> tuple[AudioRequest, str]:
    """The wire request as our AudioRequest (+ the output format)."""
    if not body.text:
        raise BadRequest("text is required", field="text")
    fmt = MEDIA_TYPES.get((body.media_type or "").lower())
    if fmt is None:
        raise BadRequest(f"media_type: {body.media_type} is not supported; use one of {', '.join(MEDIA_TYPES)}",
                         field="media_type")
    text_lang = (body.text_lang or body.lang or "auto").lower()
    if text_lang not in TEXT_LANGUAGES:
        raise BadRequest(f"text_lang: {text_lang} is not supported; use one of {', '.join(TEXT_LANGUAGES)}",
                         field="text_lang")
    split = SPLIT_METHODS.get(body.text_split_method)
    if split is None:
        raise BadRequest(f"text_split_method: {body.text_split_method} is not supported; use one of "
                         f"{', '.join(SPLIT_METHODS)}", field="text_split_method")
    voice, reference = body.spk, upload
    if reference is None and body.ref_audio_path:
        voice, reference = resolve_ref_audio_path(services, body.ref_audio_path)
    tts_body = TTSRequest(text=body.text, voice=voice, language=TEXT_LANGUAGES[text_lang], format=fmt,
                          speed=body.speed if body.speed is not None else body.speed_factor,
                          seed=body.seed if body.seed >= 0 else None)  # upstream: -1 is random
    req = await services.audio_request(tts_body, request, reference)
    req.options = replace(req.options, split=split, pause_s=body.fragment_interval)
    return req, fmt


def checked_upload(services: Services, data: bytes | None) -> bytes | None:
    limit = services.settings.max_upload_bytes
    if data is not None and len(data) > limit:
        raise PayloadTooLarge(f"ref_audio is over the limit of {limit} bytes", field="ref_audio")
    return data


def resolve_ref_audio_path(services: Services, path: str) -> tuple[str | None, bytes | None]:
    """(voice, reference clip): a registered voice id, else a file inside ``reference_dir``, else 400.
    Never a free server path: upstream reads any file the process can."""
    if VoiceRegistry.is_registered_id(path):
        return path, None
    return None, reference_from_path(services, path)


def streaming(body: GptSovitsRequest) -> bool:
    """Upstream's ``streaming_mode``: false/0 whole file; true/1/2/3 chunked (the modes trade
    quality for latency upstream; ours streams one way, chunked vocoding)."""
    mode = body.streaming if body.streaming is not None else body.streaming_mode
    if isinstance(mode, bool):
        return mode
    if mode not in STREAMING_MODES:
        raise BadRequest("the value of streaming_mode must be 0, 1, 2, 3(int) or true/false(bool)",
                         field="streaming_mode")
    return mode != 0


GLOBAL_STATE_HINT = (
    "{what} changes process-global state for every caller in GPT-SoVITS; this service is shared and "
    "scaled out, so it is not offered. Per request instead: pass ref_audio_path (a registered voice id or a "
    "file in the server's reference directory), upload ref_audio, or register a voice once with "
    "POST /v1/voices (or /clone/v1/upload + /clone/v1/train) and send its id as spk."
)


def refuse_global(what: str) -> Any:
    async def refuse() -> Response:
        raise Forbidden(GLOBAL_STATE_HINT.format(what=what), field=None)

    return refuse


for path in ("/set_refer_audio", "/set_gpt_weights", "/set_sovits_weights", "/control"):
    for method in ("GET", "POST"):
        router.add_api_route(path, refuse_global(path), methods=[method], summary="Refused: process-global state",
                             operation_id=f"gptsovits_{path.strip('/')}_{method.lower()}")
