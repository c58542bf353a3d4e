"""HTTP ingress: a FastAPI app mounted on Ray Serve, plus ``build_app`` for ``serve run``/``serve build``.

    serve run serve_app.app:build_app          # defaults
    serve run infra/serve_config.yaml          # tuned deployments

Routes live in ``serve_app/routers/``, one module per audience; each is thin over the one
``SynthesisService`` in ``Services``.
"""

import ipaddress
import logging

from ray import serve

from deployments.options import INGRESS, cluster_cpus, fitted
from deployments.rate_limiter import RateLimiter
from deployments.speaker_cache import SpeakerEmbeddingCache
from deployments.synthesizer import Synthesizer
from deployments.text_frontend import TextFrontend
from storage import create_store
from deployments.voice_matcher import VoiceMatcherDeployment
from tts_engine.settings import Settings

from . import context
from .auth.middleware import AuthMiddleware
from .errors import VoxServeAPI, install_error_handlers
from .middleware import RequestContext
from .routers import (
    account, admin, admin_clients, cloud, cosyvoice, gptsovits, lexicons, native, oauth, openai, pages, realtime, voices,
)
from .timeouts import BodyTimeoutMiddleware

log = logging.getLogger("voxserve")

app = VoxServeAPI(
    title="VoxServe",
    version="0.1.0",
    description="Text-to-speech on Ray Serve: sync, streaming, OpenAI-compatible; audio in S3-compatible storage.",
)
install_error_handlers(app)
ROUTERS = (native.router, openai.router, voices.router, admin.router, oauth.router, account.router,
           admin_clients.router,
           gptsovits.router, cosyvoice.router, cloud.router)  # drop-in compatibility adapters
for router in ROUTERS:
    app.include_router(router)
app.state.api_routes = [route for router in ROUTERS for route in router.routes]  # for 405's Allow
for router in (lexicons.router, realtime.router, pages.router):  # issue 14: lexicons, realtime WS, playground
    app.include_router(router)
app.mount("/static", pages.static_files, name="static")
# Auth (issue 11): every route but the public allow-list (serve_app/auth/scopes.py) needs a
# credential, including routers added later. Added before RequestContext so that one stays
# outermost (it logs and counts the 401/403/429s too, and shapes whatever escapes).
app.add_middleware(BodyTimeoutMiddleware)
app.add_middleware(AuthMiddleware)
app.add_middleware(RequestContext)


@serve.deployment(name="Ingress", **INGRESS)
@serve.ingress(app)
class Ingress:
    def __init__(self, frontend, synthesizers: dict, speaker_cache, settings: dict | None = None,
                 limiter=None) -> None:
        logging.basicConfig(level=logging.INFO)
        config = Settings(**(settings or {}))
        refuse_open_proxy(config)
        replica = serve.get_replica_context().replica_id.unique_id
        self.services = context.Services.build(config, frontend, synthesizers, speaker_cache, limiter, replica)
        context.install(self.services)
        app.state.metrics = self.services.metrics


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_open_proxy(settings: Settings) -> None:
    """auth: none on a proxy that listens beyond loopback needs allow_insecure: true.

    Settings already refuse that for ``settings.host``; this checks where Serve's proxy really
    listens (``serve run``/``serve deploy`` set it in http_options, not in our settings)."""
    if settings.auth != "none" or settings.allow_insecure:
        return
    try:
        from ray.serve.context import _get_global_client

        host = _get_global_client().get_serve_details()["http_options"]["host"]
    except Exception:  # noqa: BLE001 - private API moved: settings.host was checked already
        log.warning("could not read the Serve proxy's host; relying on settings.host")
        return
    if not is_loopback(host):
        raise ValueError(f"auth: none while Serve's HTTP proxy listens on {host}: anyone who reaches it could "
                         "use the service. Set auth: required, bind 127.0.0.1, or set allow_insecure: true.")


def build_app(args: dict | None = None):
    """The bound application; ``args`` are Settings overrides (the serve config's ``args:``).
    Deployment defaults are fitted to the CPUs Ray reports (deployments/options.py); a serve
    config's deployment entries still win over them."""
    overrides = dict(args or {})
    settings = Settings(**overrides)  # fail fast on bad config, before any replica starts
    # The one place a local store directory is created; replicas only open it (a vanished
    # directory is then an outage, not a fresh empty store).
    overrides["store"] = create_store(settings)
    sized = fitted(cluster_cpus(), families=len(settings.model_families))
    synthesizers = {family: synthesizer_for(family, settings, sized["Synthesizer"]).bind(overrides, family)
                    for family in settings.model_families}
    # The limiter exists only where there is something to limit (auth: required).
    limiter = RateLimiter.bind(overrides) if settings.auth == "required" else None
    return Ingress.options(**sized["Ingress"]).bind(
        TextFrontend.options(**sized["TextFrontend"]).bind(overrides), synthesizers,
        SpeakerEmbeddingCache.options(**sized["SpeakerEmbeddingCache"]).bind(overrides,
                                                                             voice_matcher_for(settings, overrides)),
        settings=overrides, limiter=limiter)


def voice_matcher_for(settings: Settings, overrides: dict):
    """Voice matching (issue 13): the VoiceMatcher deployment where Kokoro is served, with its own
    CPU/GPU share from settings; None (DSP adaptation only) elsewhere."""
    if not settings.matching_enabled or "kokoro" not in settings.model_families:
        return None
    actor = {"num_cpus": settings.matching_num_cpus}
    if settings.matching_num_gpus:
        actor["num_gpus"] = settings.matching_num_gpus
    return VoiceMatcherDeployment.options(ray_actor_options=actor).bind(overrides)


def synthesizer_for(family: str, settings: Settings, options: dict):
    """The Synthesizer deployment of one model family, named ``Synthesizer-<family>``."""
    actor = dict(options["ray_actor_options"])
    if settings.synthesizer_num_gpus and family in settings.gpu_families:
        # The serve config's ray_actor_options still win over this (Serve applies them last).
        actor["num_gpus"] = settings.synthesizer_num_gpus
    return Synthesizer.options(**{**options, "name": f"Synthesizer-{family}", "ray_actor_options": actor})
