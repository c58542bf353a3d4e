"""Cross-replica claims on a phrase-cache key: one replica synthesizes, the others wait for its object.

A claim object (``locks/<digest>.claim``, created with a conditional put) names its owner (this
ingress replica's id and a token per claim) and when it was last refreshed. The owner refreshes
it every third of ``claim_ttl_s`` while it works, so a claim older than the TTL belongs to an owner
that died. A claim the owner could not delete (storage blipped as its request failed) does not
block a retry: on the owning replica the token is no longer active, so it is taken over at once;
elsewhere it stops being refreshed and expires within one TTL (seconds, not minutes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage import AudioStore, StoredObject

log = logging.getLogger("voxserve")

LOCK_PREFIX = "locks"
POLL_S = 0.1


def claim_key(key: str) -> str:
    return f"{LOCK_PREFIX}/{key.rsplit('/', 1)[-1]}.claim"


class ClaimBook:
    """This replica's claims: which it holds, and how to take, refresh, release or wait on one."""

    def __init__(self, store: AudioStore, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.owner = uuid.uuid4().hex
        self.active: dict[str, str] = {}      # claim key -> token of the request holding it

    def _stamp(self, token: str) -> bytes:
        return json.dumps({"owner": self.owner, "token": token, "at": time.time()}).encode()

    def try_claim(self, key: str) -> bool:
        """Create the claim, or take over one whose owner is gone; False if someone live holds it."""
        claim, token = claim_key(key), uuid.uuid4().hex
        if self.store.put_if_absent(claim, self._stamp(token), "application/json"):
            self.active[claim] = token
            return True
        if not self._stale(claim):
            return False
        self.store.delete(claim)
        if self.store.put_if_absent(claim, self._stamp(token), "application/json"):
            self.active[claim] = token
            return True
        return False

    def _stale(self, claim: str) -> bool:
        try:
            held = json.loads(self.store.get(claim))
        except Exception:  # noqa: BLE001 - vanished or unreadable: nobody holds it
            return True
        if held.get("owner") == self.owner and self.active.get(claim) != held.get("token"):
            return True  # ours, from a request that has ended: its release failed
        return time.time() - float(held.get("at", 0)) > self.ttl_s

    @asynccontextmanager
    async def held(self, key: str) -> AsyncIterator[None]:
        """Keep a claim this replica took fresh while the body runs; release it after."""
        claim = claim_key(key)
        refresher = asyncio.create_task(self._refresh(claim))
        try:
            yield
        finally:
            refresher.cancel()
            self.active.pop(claim, None)   # from here on a leftover claim is stale for this replica
            await asyncio.to_thread(self._release, claim)

    async def _refresh(self, claim: str) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            token = self.active.get(claim)
            if token is None:
                return
            try:
                await asyncio.to_thread(self.store.put, claim, self._stamp(token), "application/json")
            except Exception as exc:  # noqa: BLE001 - a missed refresh only lets the claim expire
                log.warning("could not refresh claim %s: %s", claim, getattr(exc, "message", exc))

    def _release(self, claim: str) -> None:
        try:
            self.store.delete(claim)
        except Exception as exc:  # noqa: BLE001 - a leftover claim is stale: taken over by the next try
            log.warning("could not release claim %s: %s", claim, getattr(exc, "message", exc))

    async def wait(self, key: str) -> StoredObject | None:
        """None once this replica holds the claim (it should synthesize); else the object the
        holder stored. If the holder gives up (claim gone or stale, no object), take over."""
        while not await asyncio.to_thread(self.try_claim, key):
            deadline = time.monotonic() + self.ttl_s
            while time.monotonic() < deadline:
                await asyncio.sleep(POLL_S)
                obj = await asyncio.to_thread(self.store.head, key)
                if obj is not None:
                    return obj
                if not await asyncio.to_thread(self.store.exists, claim_key(key)):
                    break
        return None
