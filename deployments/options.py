"""Default Ray Serve options per deployment; every value can be overridden in the serve config file."""

from __future__ import annotations

# Fractional CPUs: on a 2-core box whole CPUs per replica would leave nothing to schedule.
TEXT_FRONTEND = dict(
    ray_actor_options={"num_cpus": 0.1},
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8},
    max_ongoing_requests=32,
    max_queued_requests=256,
)

SYNTHESIZER = dict(
    ray_actor_options={"num_cpus": 0.5},
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8},
    # Batching needs several requests in flight per replica.
    max_ongoing_requests=32,
    max_queued_requests=128,
)

SPEAKER_CACHE = dict(
    ray_actor_options={"num_cpus": 0.1},
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4},
    max_ongoing_requests=16,
    max_queued_requests=64,
)

INGRESS = dict(
    ray_actor_options={"num_cpus": 0.1},
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16},
    max_ongoing_requests=64,
    max_queued_requests=256,
)
