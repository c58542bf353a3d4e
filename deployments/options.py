"""Default Ray Serve options per deployment, sized to the CPUs Ray reports; every value can be
overridden in the serve config file (infra/serve_config.yaml holds the cluster-sized numbers).

How the defaults are derived (``fitted(cpus)``): the light deployments (Ingress, TextFrontend,
SpeakerEmbeddingCache) take 0.1 CPU per replica and a fixed small number of replicas; the
Synthesizer takes 0.5 CPU per replica (two replicas per core: one renders while the other waits on
its batch or its stream), and as many replicas as fit in what is left, **minus one replica's worth
of headroom**. At every replica count the whole application then fits the machine with room for
one replacement replica, so a crashed replica can always be placed again at once (with the old
limits, up to 4 Synthesizer replicas plus the rest, a 2-core box could not place a replacement
and /readyz stayed 503 for minutes). On 2 CPUs: Synthesizer 1-2 replicas, 1.5 CPUs at most.
"""

from __future__ import annotations

import os

LIGHT_CPUS = 0.1
SYNTH_CPUS = 0.5
LIGHT_MAX_REPLICAS = {"Ingress": 2, "TextFrontend": 2, "SpeakerEmbeddingCache": 1}


def replica_options(num_cpus: float, max_replicas: int, target_ongoing: int, max_ongoing: int,
                    max_queued: int) -> dict:
    """Fractional CPUs (on a 2-core box whole CPUs per replica leave nothing to schedule),
    autoscaling from one replica, and bounded queues so overload becomes 503 + Retry-After."""
    return dict(
        ray_actor_options={"num_cpus": num_cpus},
        autoscaling_config={"min_replicas": 1, "max_replicas": max_replicas,
                            "target_ongoing_requests": target_ongoing},
        max_ongoing_requests=max_ongoing,
        max_queued_requests=max_queued,
        # Serve's proxy answers a full queue itself; this makes it say when to come back.
        backpressure_config={"status_code": 503, "retry_after_s": 1},
    )


def synthesizer_max_replicas(cpus: float) -> int:
    """Synthesizer replicas that fit beside the light deployments, leaving one replica's headroom."""
    light = LIGHT_CPUS * sum(LIGHT_MAX_REPLICAS.values())
    return max(1, int((cpus - light) / SYNTH_CPUS + 1e-9) - 1)


def fitted(cpus: float, families: int = 1) -> dict[str, dict]:
    """Options of every deployment for a machine (or cluster) with ``cpus`` CPUs; the Synthesizer
    replicas that fit are shared among the model families (one Synthesizer deployment each)."""
    light = LIGHT_MAX_REPLICAS
    return {
        "TextFrontend": replica_options(LIGHT_CPUS, light["TextFrontend"], target_ongoing=8, max_ongoing=32,
                                        max_queued=256),
        # Batching needs several requests in flight per replica.
        "Synthesizer": replica_options(SYNTH_CPUS, max(1, synthesizer_max_replicas(cpus) // max(1, families)),
                                       target_ongoing=8, max_ongoing=32, max_queued=128),
        "SpeakerEmbeddingCache": replica_options(LIGHT_CPUS, light["SpeakerEmbeddingCache"], target_ongoing=4,
                                                 max_ongoing=16, max_queued=64),
        # The ingress mostly awaits the others; it answers overload itself (JSON 503) below
        # max_ongoing, so the proxy's plain-text 503 for a full queue is a last resort.
        "Ingress": replica_options(LIGHT_CPUS, light["Ingress"], target_ongoing=16, max_ongoing=256,
                                   max_queued=256),
    }


def cluster_cpus() -> float:
    """CPUs Ray reports for the cluster this process is connected to (this machine's if none)."""
    try:
        import ray

        if ray.is_initialized():
            return float(ray.cluster_resources().get("CPU", 0)) or float(os.cpu_count() or 1)
    except Exception:  # noqa: BLE001 - sizing must never stop a deployment
        pass
    return float(os.cpu_count() or 1)


# Decorator defaults: this machine's size at import (build_app re-fits them to Ray's count).
_LOCAL = fitted(os.cpu_count() or 1)
TEXT_FRONTEND = _LOCAL["TextFrontend"]
SYNTHESIZER = _LOCAL["Synthesizer"]
SPEAKER_CACHE = _LOCAL["SpeakerEmbeddingCache"]
INGRESS = _LOCAL["Ingress"]
# Exactly one replica: it holds the global limiter state (min = max = 1). Calls are tiny and
# batched by the ingress, so a sliver of a CPU and a deep queue.
RATE_LIMITER = replica_options(0.05, max_replicas=1, target_ongoing=64, max_ongoing=1000, max_queued=2000)
# Voice matching fits (issue 13): one replica by default, its own CPU share (and GPU where
# settings.matching_num_gpus asks), so fits never run inside the Synthesizer's budget.
VOICE_MATCHER = replica_options(0.5, max_replicas=2, target_ongoing=2, max_ongoing=8, max_queued=32)
