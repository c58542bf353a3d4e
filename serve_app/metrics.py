"""Ray Serve custom metrics of the HTTP layer (exported on Ray's Prometheus endpoint)."""

from __future__ import annotations

from ray.serve.metrics import Counter, Histogram

LATENCY_BOUNDS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]


class IngressMetrics:
    def __init__(self) -> None:
        self.requests = Counter("voxserve_requests", description="HTTP requests by route, status and tenant",
                                tag_keys=("route", "status", "tenant"))
        self.latency = Histogram("voxserve_request_latency_s", description="Request latency",
                                 boundaries=LATENCY_BOUNDS, tag_keys=("route",))
        self.first_chunk = Histogram("voxserve_first_chunk_latency_s", description="Time to first audio byte",
                                     boundaries=LATENCY_BOUNDS, tag_keys=("route",))
        self.audio_seconds = Counter("voxserve_audio_seconds", description="Seconds of audio produced")
        self.phrase_cache = Counter("voxserve_phrase_cache", description="Phrase-cache lookups",
                                    tag_keys=("result",))
        self.tenant_audio_seconds = Counter("voxserve_tenant_audio_seconds",
                                            description="Seconds of audio delivered per tenant (fresh or cached)",
                                            tag_keys=("tenant", "source"))
        # In-process counts too, so tests and /v1/stats can read them without Prometheus.
        self.local: dict[str, float] = {"cache_hit": 0, "cache_miss": 0, "syntheses": 0, "audio_seconds": 0.0}

    def request(self, route: str, status: int, seconds: float, tenant: str = "-") -> None:
        self.requests.inc(tags={"route": route, "status": str(status), "tenant": tenant})
        self.latency.observe(seconds, tags={"route": route})

    def cache(self, hit: bool) -> None:
        self.phrase_cache.inc(tags={"result": "hit" if hit else "miss"})
        self.local["cache_hit" if hit else "cache_miss"] += 1

    def produced(self, seconds: float) -> None:
        self.audio_seconds.inc(seconds)
        self.local["syntheses"] += 1
        self.local["audio_seconds"] += seconds

    def tenant_audio(self, tenant: str, seconds: float, cached: bool) -> None:
        self.tenant_audio_seconds.inc(seconds, tags={"tenant": tenant, "source": "cache" if cached else "synthesis"})
