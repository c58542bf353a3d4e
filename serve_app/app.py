"""HTTP ingress: a FastAPI app mounted on Ray Serve, plus ``build_app`` for ``serve run``/``serve build``.

    serve run serve_app.app:build_app          # defaults
    serve run infra/serve_config.yaml          # tuned deployments

Routes live in ``serve_app/routers/``, one module per audience; each is thin over the one
``SynthesisService`` in ``Services``.
"""

import logging

from ray import serve

from deployments.options import INGRESS, cluster_cpus, fitted
from deployments.speaker_cache import SpeakerEmbeddingCache
from deployments.synthesizer import Synthesizer
from deployments.text_frontend import TextFrontend
from storage import create_store
from tts_engine.settings import Settings

from . import context
from .errors import VoxServeAPI, install_error_handlers
from .middleware import RequestContext
from .routers import admin, native, openai, voices

log = logging.getLogger("voxserve")

app = VoxServeAPI(
    title="VoxServe",
    version="0.1.0",
    description="Text-to-speech on Ray Serve: sync, streaming, OpenAI-compatible; audio in S3-compatible storage.",
)
install_error_handlers(app)
app.add_middleware(RequestContext)  # outermost of ours: ids, metrics, log lines, JSON for what escapes
ROUTERS = (native.router, openai.router, voices.router, admin.router)
for router in ROUTERS:
    app.include_router(router)
app.state.api_routes = [route for router in ROUTERS for route in router.routes]  # for 405's Allow


@serve.deployment(name="Ingress", **INGRESS)
@serve.ingress(app)
class Ingress:
    def __init__(self, frontend, synthesizer, speaker_cache, settings: dict | None = None) -> None:
        logging.basicConfig(level=logging.INFO)
        self.services = context.Services.build(Settings(**(settings or {})), frontend, synthesizer, speaker_cache)
        context.install(self.services)
        app.state.metrics = self.services.metrics


def build_app(args: dict | None = None):
    """The bound application; ``args`` are Settings overrides (the serve config's ``args:``).
    Deployment defaults are fitted to the CPUs Ray reports (deployments/options.py); a serve
    config's deployment entries still win over them."""
    overrides = dict(args or {})
    settings = Settings(**overrides)  # fail fast on bad config, before any replica starts
    # The one place a local store directory is created; replicas only open it (a vanished
    # directory is then an outage, not a fresh empty store).
    overrides["store"] = create_store(settings)
    sized = fitted(cluster_cpus())
    synth_options = sized["Synthesizer"]
    if settings.synthesizer_num_gpus:
        actor = {**synth_options["ray_actor_options"], "num_gpus": settings.synthesizer_num_gpus}
        synth_options = {**synth_options, "ray_actor_options": actor}
    return Ingress.options(**sized["Ingress"]).bind(
        TextFrontend.options(**sized["TextFrontend"]).bind(overrides),
        Synthesizer.options(**synth_options).bind(overrides),
        SpeakerEmbeddingCache.options(**sized["SpeakerEmbeddingCache"]).bind(overrides), settings=overrides)
