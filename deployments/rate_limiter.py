"""RateLimiter deployment: the one place per application that holds every client's limits state.

Exactly one replica (its state is the global truth; it is cheap: a few dicts, tiny calls).
Ingress replicas do not call it per request: they lease request tokens in batches, send usage
every ``usage_flush_s``, and call it once per stream start and end (see serve_app/auth/limiter.py).

* requests per minute: a token bucket per client (capacity = rpm, refill rpm/60 per second).
  Our own bucket math rather than the ``limits`` library: leasing N tokens and taking unused
  ones back does not map onto its hit()/window API, and one actor needs no shared storage.
* concurrent streams: slots per client, each with an expiry so a dead replica's slots free up.
* audio seconds per day: charged seconds per client and UTC day, persisted with the tenant's
  usage records (``tenants/{t}/usage/{day}.json``) so a restart does not reset the quota.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from ray import serve

from storage import open_store
from storage.clients import DayUsage, UsageLog
from tts_engine.settings import Settings

from .options import RATE_LIMITER

log = logging.getLogger("voxserve")

SAVE_EVERY_S = 2.0
STREAM_SLOT_TTL_S = 3600.0  # longer than any stream (request_timeout_s); frees a dead replica's slots


def utc_day(now: float | None = None) -> str:
    return datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc).strftime("%Y-%m-%d")


def seconds_to_utc_midnight(now: float | None = None) -> float:
    moment = datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - moment).total_seconds()


@dataclass
class Bucket:
    capacity: float
    tokens: float
    updated: float

    @property
    def rate(self) -> float:
        return self.capacity / 60.0

    def refill(self, now: float, capacity: float) -> None:
        self.capacity = capacity  # a changed rpm applies at once
        self.tokens = min(capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, want: int) -> int:
        granted = max(0, min(want, int(self.tokens)))
        self.tokens -= granted
        return granted

    def give_back(self, n: int) -> None:
        self.tokens = min(self.capacity, self.tokens + n)

    def wait_s(self) -> float:
        """Seconds until one whole token."""
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def full_in_s(self) -> float:
        return max(0.0, (self.capacity - self.tokens) / self.rate)


class LimiterState:
    """The limiter's logic without Ray (unit-tested directly)."""

    def __init__(self, usage_log: UsageLog | None = None) -> None:
        self.buckets: dict[str, Bucket] = {}
        self.streams: dict[str, dict[str, float]] = defaultdict(dict)  # client -> slot -> expiry
        self.days: dict[tuple[str, str], DayUsage] = {}                 # (tenant, day) -> usage
        self.dirty: set[tuple[str, str]] = set()
        self.usage_log = usage_log
        # client -> caller (ingress replica) -> [lease calls, tokens granted]: shows who shares a limit
        self.leases: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))

    def lease(self, caller: str, client_id: str, tenant: str, rpm: int, want: int, returned: int,
              now: float | None = None) -> dict:
        now = time.monotonic() if now is None else now
        bucket = self.buckets.get(client_id)
        if bucket is None:
            bucket = self.buckets[client_id] = Bucket(float(rpm), float(rpm), now)
        bucket.refill(now, float(rpm))
        bucket.give_back(max(0, returned))
        granted = bucket.take(max(0, want))
        counts = self.leases[client_id][caller]
        counts[0] += 1
        counts[1] += granted
        return {"granted": granted, "limit": rpm, "remaining": int(bucket.tokens),
                "retry_after_s": bucket.wait_s(), "reset_s": bucket.full_in_s(),
                "audio_used": self.charged(tenant, client_id)}

    def open_stream(self, client_id: str, limit: int, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        slots = self.streams[client_id]
        for slot, expiry in list(slots.items()):
            if expiry < now:
                del slots[slot]
        if len(slots) >= limit:
            return {"slot": None, "active": len(slots), "limit": limit}
        slot = uuid.uuid4().hex
        slots[slot] = now + STREAM_SLOT_TTL_S
        return {"slot": slot, "active": len(slots), "limit": limit}

    def close_stream(self, client_id: str, slot: str) -> None:
        self.streams[client_id].pop(slot, None)

    def _day(self, tenant: str, day: str) -> DayUsage:
        key = (tenant, day)
        if key not in self.days:
            self.days[key] = self.usage_log.load(tenant, day) if self.usage_log else DayUsage()
        return self.days[key]

    def charged(self, tenant: str, client_id: str, now: float | None = None) -> float:
        return self._day(tenant, utc_day(now)).by_client.get(client_id, 0.0)

    def report(self, deltas: list[dict], now: float | None = None) -> dict[str, float]:
        """Add usage deltas [{tenant, client_id, requests, characters, ...}]; -> client -> charged today."""
        day = utc_day(now)
        out = {}
        for delta in deltas:
            tenant, client_id = delta["tenant"], delta["client_id"]
            self._day(tenant, day).add(client_id, delta)
            self.dirty.add((tenant, day))
            out[client_id] = self.charged(tenant, client_id, now)
        return out

    @staticmethod
    def wanted_days(days: int, now: float | None = None) -> list[str]:
        today = datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc)
        return [(today - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)]

    def usage(self, tenant: str, days: int, stored: set[str] = frozenset(), now: float | None = None) -> list[dict]:
        """The tenant's usage, newest day first, for the last ``days`` UTC days that have any
        (days only in the store must have been loaded into ``self.days`` first)."""
        rows = []
        for day in self.wanted_days(days, now):
            if (tenant, day) in self.days or day in stored:
                usage = asdict(self._day(tenant, day))
                usage.pop("by_client")
                rows.append({"day": day, **usage})
        return rows

    def take_dirty(self) -> list[tuple[str, str, DayUsage]]:
        """Snapshots of the days that changed (taken on the event loop, written from a thread)."""
        dirty, self.dirty = self.dirty, set()
        snapshots = [(t, d, DayUsage(**asdict(self.days[(t, d)]))) for t, d in dirty]
        today = utc_day()
        for key in [k for k in self.days if k[1] < today and k not in dirty]:
            del self.days[key]  # old days live in the store only
        return snapshots

    def write(self, snapshots: list[tuple[str, str, DayUsage]]) -> list[tuple[str, str]]:
        """Blocking store writes; -> the (tenant, day) pairs that failed (retried next round)."""
        failed = []
        for tenant, day, usage in snapshots:
            try:
                self.usage_log.save(tenant, day, usage)
            except Exception:  # noqa: BLE001 - storage down: keep the day dirty
                failed.append((tenant, day))
                log.warning("could not save usage of %s for %s; will retry", tenant, day)
        return failed

    def stats(self) -> dict:
        leases = {client: {caller: {"calls": c[0], "granted": c[1]} for caller, c in callers.items()}
                  for client, callers in self.leases.items()}
        return {"clients": len(self.buckets), "leases": leases,
                "open_streams": {c: len(s) for c, s in self.streams.items() if s}}


@serve.deployment(name="RateLimiter", **RATE_LIMITER)
class RateLimiter:
    def __init__(self, settings: dict | None = None) -> None:
        self.settings = Settings(**(settings or {}))
        self.state = LimiterState(UsageLog(open_store(self.settings)))
        self._saver: asyncio.Task | None = None

    def _ensure_saver(self) -> None:
        if self._saver is None or self._saver.done():
            self._saver = asyncio.get_running_loop().create_task(self._save_loop())

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY_S)
            if self.state.dirty:
                failed = await asyncio.to_thread(self.state.write, self.state.take_dirty())
                self.state.dirty.update(failed)

    # Loading a day from the store blocks briefly, once per tenant and day; all else is in memory.
    async def lease(self, caller: str, client_id: str, tenant: str, rpm: int, want: int, returned: int) -> dict:
        self._ensure_saver()
        return self.state.lease(caller, client_id, tenant, rpm, want, returned)

    async def open_stream(self, client_id: str, limit: int) -> dict:
        return self.state.open_stream(client_id, limit)

    async def close_stream(self, client_id: str, slot: str) -> None:
        self.state.close_stream(client_id, slot)

    async def report(self, deltas: list[dict]) -> dict[str, float]:
        self._ensure_saver()
        return self.state.report(deltas)

    async def usage(self, tenant: str, days: int) -> list[dict]:
        log_ = self.state.usage_log
        stored = set(await asyncio.to_thread(log_.days, tenant))
        missing = [d for d in self.state.wanted_days(days) if d in stored and (tenant, d) not in self.state.days]
        loaded = await asyncio.to_thread(lambda: {d: log_.load(tenant, d) for d in missing})
        for day, usage in loaded.items():
            self.state.days.setdefault((tenant, day), usage)
        return self.state.usage(tenant, days, stored)

    async def stats(self) -> dict:
        return self.state.stats()
