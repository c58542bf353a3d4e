"""Default Ray Serve options per deployment; every value can be overridden in the serve config file."""

from __future__ import annotations


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


TEXT_FRONTEND = replica_options(0.1, max_replicas=4, target_ongoing=8, max_ongoing=32, max_queued=256)
# Batching needs several requests in flight per replica.
SYNTHESIZER = replica_options(0.5, max_replicas=4, target_ongoing=8, max_ongoing=32, max_queued=128)
SPEAKER_CACHE = replica_options(0.1, max_replicas=2, target_ongoing=4, max_ongoing=16, max_queued=64)
INGRESS = replica_options(0.1, max_replicas=4, target_ongoing=16, max_ongoing=64, max_queued=256)
# Exactly one replica: it holds the global limiter state (min = max = 1). Calls are tiny and
# batched by the ingress, so a sliver of a CPU and a deep queue.
RATE_LIMITER = replica_options(0.05, max_replicas=1, target_ongoing=64, max_ongoing=1000, max_queued=2000)
# Voice matching fits (issue 13): one replica by default, its own CPU share (and GPU where
# settings.matching_num_gpus asks), so fits never run inside the Synthesizer's budget.
VOICE_MATCHER = replica_options(0.5, max_replicas=2, target_ongoing=2, max_ongoing=8, max_queued=32)
