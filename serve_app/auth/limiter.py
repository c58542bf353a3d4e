"""The ingress side of the global RateLimiter: request tokens leased in batches, stream slots, usage.

Per client, a replica holds a small lease of request tokens taken from the limiter's bucket and
answers from it without a round trip; when half of it is spent it fetches the next batch in the
background, so only a client's first request on a replica (or one that outruns the prefetch)
waits for the limiter. Tokens are only ever granted by the limiter, so the limit holds across
all replicas; unused tokens go back when a lease expires (``limiter_lease_ttl_s``).

Usage (requests, characters, audio seconds) is counted locally and sent every
``usage_flush_s``; the limiter answers with each client's charged audio seconds today, which is
what the daily quota is checked against (so a quota can be overshot by what one flush window
and one in-flight request add; documented in the README).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass

from deployments.rate_limiter import seconds_to_utc_midnight
from tts_engine.settings import Settings

from .errors import RateLimited
from .principal import Principal

log = logging.getLogger("voxserve")

DENIED_CACHE_S = 0.25   # a replica answers repeated 429s itself for this long, sparing the limiter


@dataclass
class Lease:
    tokens: int = 0
    expires: float = 0.0
    limit: int = 0
    remaining: int = 0         # the limiter's bucket after the last grant
    retry_after_s: float = 0.0
    reset_s: float = 0.0
    denied_until: float = 0.0
    waiting: int = 0           # requests of this replica waiting for the fetch in flight
    audio_used: float = 0.0    # charged seconds today, as of the limiter's last answer
    fetching: asyncio.Task | None = None


@dataclass
class Decision:
    limit: int
    remaining: int
    reset_s: float

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(max(0, self.remaining)),
                "X-RateLimit-Reset": str(math.ceil(self.reset_s))}


@dataclass
class PendingUsage:
    tenant: str
    requests: int = 0
    characters: int = 0
    audio_seconds: float = 0.0
    synthesized_seconds: float = 0.0
    cache_hits: int = 0
    charged_seconds: float = 0.0


class LimiterClient:
    def __init__(self, handle, settings: Settings, caller: str) -> None:
        self.handle, self.settings, self.caller = handle, settings, caller
        self.leases: dict[str, Lease] = defaultdict(Lease)
        self.pending: dict[str, PendingUsage] = {}
        self._flusher: asyncio.Task | None = None

    def batch_size(self, rpm: int) -> int:
        """Small against the limit (a parked lease is at most ~5% of a client's minute)."""
        return max(1, min(self.settings.limiter_lease_max, rpm // 20))

    # ------------------------------------------------------------------ requests per minute

    async def take(self, p: Principal) -> Decision:
        """One request token for this client, or RateLimited (rpm)."""
        self._ensure_flusher()
        limits = p.limits
        lease = self.leases[p.client_id]
        for _ in range(3):  # concurrent requests share a fetch (sized for all of them); refetch while
            if lease.tokens >= 1 or time.monotonic() < lease.denied_until:  # the bucket has more
                break
            lease.waiting += 1
            try:
                await self._fetch(p, lease, wait=True)
            finally:
                lease.waiting -= 1
            if lease.tokens < 1 and lease.remaining < 1:
                lease.denied_until = time.monotonic() + min(DENIED_CACHE_S, lease.retry_after_s)
                break
        if lease.tokens < 1:
            raise self._rpm_denied(lease)
        lease.tokens -= 1
        self._usage(p).requests += 1
        batch = self.batch_size(limits.rpm)
        if batch > 1 and lease.tokens <= batch // 2:  # prefetch only where batches pay (rpm >= 40)
            await self._fetch(p, lease, wait=False)
        return Decision(lease.limit, lease.remaining + lease.tokens, lease.reset_s)

    async def _fetch(self, p: Principal, lease: Lease, wait: bool) -> None:
        if lease.fetching is None or lease.fetching.done():
            lease.fetching = asyncio.get_running_loop().create_task(self._refill(p, lease))
        if wait:
            await asyncio.shield(lease.fetching)

    async def _refill(self, p: Principal, lease: Lease) -> None:
        now = time.monotonic()
        returned = 0
        if lease.tokens and now > lease.expires:
            returned, lease.tokens = lease.tokens, 0  # stale tokens go back to the shared bucket
        want = max(self.batch_size(p.limits.rpm), lease.waiting)
        answer = await self.handle.lease.remote(self.caller, p.client_id, p.tenant, p.limits.rpm, want, returned)
        lease.tokens += answer["granted"]
        lease.expires = time.monotonic() + self.settings.limiter_lease_ttl_s
        lease.limit, lease.remaining = answer["limit"], answer["remaining"]
        lease.retry_after_s, lease.reset_s = answer["retry_after_s"], answer["reset_s"]
        lease.audio_used = answer["audio_used"]

    @staticmethod
    def _rpm_denied(lease: Lease) -> RateLimited:
        return RateLimited(f"over the limit of {lease.limit} requests per minute", field="rpm",
                           retry_after_s=lease.retry_after_s, limit=lease.limit, remaining=0, reset_s=lease.reset_s)

    def check_audio(self, p: Principal) -> None:
        """RateLimited when the client has used its audio seconds today (checked before a synthesis:
        other routes, e.g. /v1/usage, stay reachable over quota)."""
        if p.limits is None:
            return
        lease = self.leases[p.client_id]
        quota = p.limits.audio_seconds_per_day
        pending = self.pending.get(p.client_id)
        used = lease.audio_used + (pending.charged_seconds if pending else 0.0)
        if used >= quota:
            until_midnight = seconds_to_utc_midnight()
            raise RateLimited(f"over the limit of {quota:g} audio seconds per day", field="audio_seconds_per_day",
                              retry_after_s=until_midnight, limit=quota, remaining=0, reset_s=until_midnight)

    # ------------------------------------------------------------------ concurrent streams

    async def open_stream(self, p: Principal) -> str:
        """A stream slot id, or RateLimited when the client already has its limit of open streams."""
        limit = p.limits.concurrent_streams
        answer = await self.handle.open_stream.remote(p.client_id, limit)
        if answer["slot"] is None:
            raise RateLimited(f"over the limit of {limit} concurrent streams", field="concurrent_streams",
                              retry_after_s=1.0, limit=limit, remaining=0, reset_s=1.0)
        return answer["slot"]

    async def close_stream(self, p: Principal, slot: str) -> None:
        try:
            await self.handle.close_stream.remote(p.client_id, slot)
        except Exception:  # noqa: BLE001 - the slot expires on its own
            log.warning("could not release a stream slot of %s", p.client_id)

    # ------------------------------------------------------------------ usage

    def _usage(self, p: Principal) -> PendingUsage:
        pending = self.pending.get(p.client_id)
        if pending is None:
            pending = self.pending[p.client_id] = PendingUsage(p.tenant)
        return pending

    def record(self, p: Principal, characters: int, seconds: float, cached: bool) -> None:
        """Audio delivered to this client: a cache hit charges ``cache_hit_audio_factor`` of its
        duration against the daily quota, a fresh synthesis all of it."""
        if p.limits is None:
            return
        pending = self._usage(p)
        pending.characters += characters
        pending.audio_seconds += seconds
        if cached:
            pending.cache_hits += 1
            pending.charged_seconds += seconds * self.settings.cache_hit_audio_factor
        else:
            pending.synthesized_seconds += seconds
            pending.charged_seconds += seconds

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.usage_flush_s)
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - kept pending, sent next round
                log.warning("could not send usage to the RateLimiter; will retry")

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        deltas = [{"client_id": cid, "tenant": u.tenant, "requests": u.requests, "characters": u.characters,
                   "audio_seconds": u.audio_seconds, "synthesized_seconds": u.synthesized_seconds,
                   "cache_hits": u.cache_hits, "charged_seconds": u.charged_seconds} for cid, u in batch.items()]
        try:
            charged = await self.handle.report.remote(deltas)
        except BaseException:
            for cid, u in batch.items():  # put it back in front of what came meanwhile
                self._merge_back(cid, u)
            raise
        for cid, used in charged.items():
            self.leases[cid].audio_used = used

    def _merge_back(self, client_id: str, u: PendingUsage) -> None:
        current = self.pending.get(client_id)
        if current is None:
            self.pending[client_id] = u
            return
        for name in ("requests", "characters", "audio_seconds", "synthesized_seconds", "cache_hits",
                     "charged_seconds"):
            setattr(current, name, getattr(current, name) + getattr(u, name))

    async def usage(self, tenant: str, days: int) -> list[dict]:
        await self.flush()
        return await self.handle.usage.remote(tenant, days)

    async def stats(self) -> dict:
        return await self.handle.stats.remote()
