"""Surviving a replica that dies under a request: recognise it, retry once elsewhere, else 503.

Every call the ingress makes to another deployment is idempotent (text preparation, analysis of
a clip by content hash, rendering a sentence with its seeded noise), so a call whose replica died
(killed, OOM, node lost) is sent once more: Serve's router has by then marked that replica dead
and picks another, or waits for the replacement. A second failure becomes 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tts_engine.errors import ServiceUnavailable

log = logging.getLogger("voxserve")

T = TypeVar("T")
RETRY_PAUSE_S = 0.2   # lets the router hear of the death before it picks again


def _replica_gone_types() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorPlacementGroupRemoved, NodeDiedError, RayActorError, WorkerCrashedError
    from ray.serve.exceptions import ReplicaUnavailableError

    return (RayActorError, WorkerCrashedError, NodeDiedError, ActorPlacementGroupRemoved, ReplicaUnavailableError)


def replica_gone(exc: BaseException) -> bool:
    """True if ``exc`` (or what a Ray wrapper carries) says the replica or its node died."""
    types = _replica_gone_types()
    for _ in range(5):
        if isinstance(exc, types):
            return True
        cause = getattr(exc, "cause", None) or exc.__cause__
        if cause is None or cause is exc:
            return False
        exc = cause
    return False


def unavailable(what: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"{what}: the replica serving it went away and its retry failed too; "
                              "retry the request shortly")


async def once_more(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``await call()``; if its replica died, once more (a fresh call); then ServiceUnavailable."""
    try:
        return await call()
    except Exception as exc:
        if not replica_gone(exc):
            raise
        log.warning("%s: replica lost (%s); retrying once", what, type(exc).__name__)
    await asyncio.sleep(RETRY_PAUSE_S)
    try:
        return await call()
    except Exception as exc:
        if replica_gone(exc):
            raise unavailable(what) from None
        raise


def backpressure(exc: BaseException) -> bool:
    return type(exc).__name__ == "BackPressureError" or type(getattr(exc, "cause", None)).__name__ == "BackPressureError"


async def for_a_listener(call: Callable[[], Awaitable[T]], what: str, patience_s: float) -> T:
    """``await call()`` for work a client is already receiving (a stream past its 200): a lost
    replica or a full queue is tried again with growing pauses for up to ``patience_s``, since
    cutting off audio mid-stream costs the client more than waiting. Once the patience is spent,
    a lost replica is a ServiceUnavailable and a full queue its BackPressureError.

    Why more than ``once_more``'s single retry: the router may pick the dead replica again before
    it hears of the death (seen once in 133 requests in the two-node test, a stream cut)."""
    deadline = time.monotonic() + patience_s
    pause = RETRY_PAUSE_S
    while True:
        try:
            return await call()
        except Exception as exc:
            gone = replica_gone(exc)
            if not (gone or backpressure(exc)):
                raise
            if time.monotonic() + pause > deadline:
                if gone:
                    raise unavailable(what) from None
                raise
            if gone:
                log.warning("%s: replica lost (%s); trying again in %.2f s", what, type(exc).__name__, pause)
        await asyncio.sleep(random.uniform(pause / 2, pause))
        pause = min(pause * 2, 1.0)
