"""A stream's later sentences, rendered ahead of the listener but not all at once.

A long text sent as a stream renders its next sentences while the current one plays. Submitting
all of them at once filled the Synthesizer queue that concurrent requests share (a 1200-sentence
text was refused 503 by its own sentences), so at most ``limit`` are in flight, in text order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class RendersAhead:
    """Sentence renders submitted in order, at most ``limit`` in flight (the one being awaited included)."""

    def __init__(self, submit: Callable[[int], Awaitable], count: int, limit: int) -> None:
        self.submit, self.count, self.limit = submit, count, limit
        self.pending: dict[int, Awaitable] = {}
        self.current: Awaitable | None = None   # the render being awaited; set to None once it is in
        self.started = False
        self.first = self.next = 0

    def start(self, first: int) -> None:
        """Submit from sentence ``first`` on (once; later calls do nothing)."""
        if not self.started:
            self.started, self.first, self.next = True, first, first
            self._top_up()

    def take(self, i: int) -> Awaitable:
        """Sentence ``i``'s render (submitted now if it was not yet), topping the window up."""
        pending = self.pending.pop(i, None)
        if pending is None:
            pending = self.submit(i)
            self.next = max(self.next, i + 1)
        self._top_up()
        self.current = pending
        return pending

    def _top_up(self) -> None:
        while self.next < self.count and len(self.pending) < self.limit - 1:
            self.pending[self.next] = self.submit(self.next)
            self.next += 1

    def cancel(self) -> None:
        """Every render not yet in: the listener left."""
        for pending in [self.current, *self.pending.values()]:
            _cancel(pending)
        self.current = None
        self.pending.clear()


def _cancel(pending) -> None:
    if pending is None:
        return
    if hasattr(pending, "cancel"):
        pending.cancel()  # a Ray Serve DeploymentResponse
    elif hasattr(pending, "close"):
        pending.close()  # a bare coroutine
