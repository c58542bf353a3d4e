"""HTTP ingress: a FastAPI app mounted on Ray Serve, plus ``build_app`` for ``serve run``/``serve build``.

    serve run serve_app.app:build_app          # defaults
    serve run infra/serve_config.yaml          # tuned deployments

Routes live in ``serve_app/routers/``, one module per audience; each is thin over the one
``SynthesisService`` in ``Services``.
"""

import logging
import re
import time
import uuid

from fastapi import FastAPI, Request
from ray import serve

from deployments.options import INGRESS, SYNTHESIZER
from deployments.speaker_cache import SpeakerEmbeddingCache
from deployments.synthesizer import Synthesizer
from deployments.text_frontend import TextFrontend
from tts_engine.settings import Settings

from . import context
from .errors import install_error_handlers
from .routers import admin, cloud, cosyvoice, gptsovits, lexicons, native, openai, pages, realtime, voices

log = logging.getLogger("voxserve")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

app = FastAPI(
    title="VoxServe",
    version="0.1.0",
    description="Text-to-speech on Ray Serve: sync, streaming, OpenAI-compatible; audio in S3-compatible storage.",
)
install_error_handlers(app)
for router in (native.router, openai.router, voices.router, admin.router,
               gptsovits.router, cosyvoice.router, cloud.router):  # drop-in compatibility adapters
    app.include_router(router)
for router in (lexicons.router, realtime.router, pages.router):  # issue 14: lexicons, realtime WS, playground
    app.include_router(router)
app.mount("/static", pages.static_files, name="static")


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


@serve.deployment(name="Ingress", **INGRESS)
@serve.ingress(app)
class Ingress:
    def __init__(self, frontend, synthesizers: dict, speaker_cache, settings: dict | None = None) -> None:
        logging.basicConfig(level=logging.INFO)
        self.services = context.Services.build(Settings(**(settings or {})), frontend, synthesizers, speaker_cache)
        context.install(self.services)
        app.state.metrics = self.services.metrics


def build_app(args: dict | None = None):
    """The bound application; ``args`` are Settings overrides (the serve config's ``args:``)."""
    overrides = dict(args or {})
    settings = Settings(**overrides)  # fail fast on bad config, before any replica starts
    synthesizers = {family: synthesizer_for(family, settings).bind(overrides, family)
                    for family in settings.model_families}
    return Ingress.bind(TextFrontend.bind(overrides), synthesizers,
                        SpeakerEmbeddingCache.bind(overrides), settings=overrides)


def synthesizer_for(family: str, settings: Settings):
    """The Synthesizer deployment of one model family, named ``Synthesizer-<family>``."""
    actor = dict(SYNTHESIZER["ray_actor_options"])
    if settings.synthesizer_num_gpus and family in settings.gpu_families:
        # The serve config's ray_actor_options still win over this (Serve applies them last).
        actor["num_gpus"] = settings.synthesizer_num_gpus
    return Synthesizer.options(name=f"Synthesizer-{family}", ray_actor_options=actor)
