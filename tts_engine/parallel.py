"""CPU render scheduling: all cores for a sentence that is alone, one core each when several wait.

Why not one thing or the other: on a small CPU box, VITS at batch 1 gains less from a second
torch thread than a second sentence gains from running beside the first on its own core (the
convolutions are short enough that splitting each one across threads costs synchronisation),
and padded batches lose outright (bench/engine.py: batch 8 gives 40% of batch 1's throughput).
So a replica keeps up to ``workers`` renders running at once, and each render, when it starts,
gets ``cores // renders running or waiting`` torch threads: one request alone is rendered with
every core (lowest latency), a burst runs one sentence per core (highest throughput).

``torch.set_num_threads`` with the OpenMP backend sets the *calling thread's* OpenMP team size
(a thread's first torch call takes the last value any thread set), so each worker thread sets
its own count before each job without disturbing the others.

Jobs have priorities (lower first): a stream's next chunk jumps ahead of whole sentences that
nobody is listening to yet. Plain Python and torch, no Ray: usable in a notebook.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import torch

T = TypeVar("T")

STREAM = 0      # priorities: a listener is waiting for this chunk
SENTENCE = 1    # a whole sentence (sync requests, later sentences of a stream)

_job = threading.local()


def job_threads() -> int | None:
    """The thread count the pool gave the job running on this thread (None outside a pool job):
    runtimes other than torch (ONNX Runtime) pick their session by it."""
    return getattr(_job, "threads", None)


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a container's CPU quota (a
    Kubernetes CPU limit shows up only there). Not Ray's fractional num_cpus, which is a scheduling
    share, not a limit."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, quota) if quota else cores)


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> int | None:
    """Whole CPUs allowed by the cgroup's CFS quota (rounded up), or None when unlimited/unknown."""
    candidates = ((f"{root}/cpu.max", None),                                   # cgroup v2: "quota period"
                  (f"{root}/cpu/cpu.cfs_quota_us", f"{root}/cpu/cpu.cfs_period_us"))  # v1
    for quota_path, period_path in candidates:
        try:
            with open(quota_path) as f:
                fields = f.read().split()
            if period_path is not None:
                with open(period_path) as f:
                    fields.append(f.read().strip())
        except OSError:
            continue
        if len(fields) < 2 or fields[0] in ("max", "-1"):
            return None
        try:
            quota, period = int(fields[0]), int(fields[1])
        except ValueError:
            return None
        return max(1, -(-quota // period)) if quota > 0 and period > 0 else None
    return None


def cpu_budget(torch_threads: int | None) -> int:
    """Cores one replica's renders share: the configured ``torch_threads``, else every core it may use."""
    return torch_threads or available_cores()


class BusyElsewhere:
    """Cores that other processes kept busy while this process rendered: /proc/stat's busy time
    minus this process's own, over each render's own window, smoothed.

    Why: OpenMP threads wait for each other at every parallel op, so a two-thread render on a box
    where another process holds one core runs *slower* than on one thread (measured on the 2-core
    VM with one core taken: 1.6-2.4 s instead of 0.34 s for one sentence). A render only gets the
    threads for cores that are actually free.
    Why over the render windows: between two requests the service's other processes (proxy,
    ingress, the client) are busy by design, and do not compete with the next render; a rolling
    window over all time made a lone request at concurrency 1 render on one thread (issue 10).
    0.0 off Linux."""

    SMOOTHING = 0.5      # weight of the newest window
    MIN_WINDOW_S = 0.05  # shorter renders say too little

    def __init__(self, stat_path: str = "/proc/stat") -> None:
        self.stat_path = stat_path
        self.value = 0.0
        self._lock = threading.Lock()

    def mark(self) -> tuple[float, float, float] | None:
        """(monotonic time, busy CPU seconds of the whole machine, CPU seconds of this process)."""
        try:
            with open(self.stat_path) as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
        own = os.times()
        return time.monotonic(), (sum(fields[:8]) - idle) / _CLOCK_TICKS, own.user + own.system

    def settle(self, start: tuple[float, float, float] | None) -> None:
        """Fold the window since ``start`` (a render's) into the estimate."""
        end = self.mark() if start is not None else None
        if end is None or end[0] - start[0] < self.MIN_WINDOW_S:
            return
        others = max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))
        with self._lock:
            self.value += self.SMOOTHING * (others - self.value)

    def cores(self) -> float:
        """Busy cores of other processes during recent renders."""
        return self.value


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class RenderPool:
    """``workers`` threads over a priority queue; each job runs with a torch thread count fitted to
    how many jobs are running or waiting at its start, and to the cores other processes left free."""

    def __init__(self, cores: int, workers: int | None = None, name: str = "render",
                 busy_elsewhere: BusyElsewhere | None = None) -> None:
        self.cores = max(1, cores)
        self.workers = max(1, workers or self.cores)
        self.busy_elsewhere = busy_elsewhere or BusyElsewhere()
        self._queue: list[tuple[int, int, Future, Callable[..., Any], tuple]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        # Idle workers, the most recently busy last: a job goes to the worker whose OpenMP team
        # ran last (Condition.notify would wake the longest waiter), so one client's sentences stay
        # on one worker. Measured in-process at concurrency 1: one worker 219-242 ms a sentence,
        # two workers alternating 253-279 ms, two workers with this order still 259-279 ms: the
        # order keeps jobs on one team, but the gap to a one-worker pool has another cause, not found.
        self._idle: list[threading.Condition] = []
        self._running = 0
        self._closed = False
        self.threads_used: Counter[int] = Counter()   # torch threads per job -> jobs
        self.max_running = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ submitting

    def submit(self, fn: Callable[..., T], *args: Any, priority: int = SENTENCE) -> "Future[T]":
        future: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("render pool is shut down")
            heapq.heappush(self._queue, (priority, next(self._order), future, fn, args))
            if self._idle:
                self._idle.pop().notify()
        return future

    async def run(self, fn: Callable[..., T], *args: Any, priority: int = SENTENCE) -> T:
        """``fn(*args)`` on a worker; cancelling the awaiting task drops the job if it has not started."""
        return await asyncio.wrap_future(self.submit(fn, *args, priority=priority))

    async def iterate(self, chunks: Iterator[T], priority: int = STREAM) -> "AsyncIterator[T]":
        """An iterator whose every step (torch work) runs on a worker, as an async iterator."""
        done = object()
        while (item := await self.run(next, chunks, done, priority=priority)) is not done:
            yield item

    # ------------------------------------------------------------------ workers

    def _work(self) -> None:
        # torch fixes a thread's OpenMP team size on its first parallel op, from the last count any
        # thread set; doing that now keeps a later first op from undoing this worker's own setting.
        current = torch.get_num_threads()
        wake = threading.Condition(self._cond)   # this worker's own, over the pool's lock
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._idle.append(wake)
                    wake.wait()
                    if wake in self._idle:   # woken by shutdown, not handed a job
                        self._idle.remove(wake)
                if not self._queue:
                    return
                _, _, future, fn, args = heapq.heappop(self._queue)
                if not future.set_running_or_notify_cancel():
                    continue  # cancelled while queued: the caller is gone
                self._running += 1
                self.max_running = max(self.max_running, self._running)
                threads = self._threads_for(self._running, len(self._queue))
                self.threads_used[threads] += 1
            if threads != current:
                torch.set_num_threads(threads)  # this worker thread's OpenMP team only
                current = threads
            _job.threads = threads
            window = self.busy_elsewhere.mark()
            result, error = None, None
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
                error = exc
            self.busy_elsewhere.settle(window)
            # Counted out before the caller wakes: its next job must not see this one as running.
            with self._cond:
                self._running -= 1
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _threads_for(self, running: int, waiting: int) -> int:
        """Threads for a job starting now: the cores split over the jobs that will share them, and
        no more than the cores other processes leave free (rounded so that a core more than about
        two-thirds free counts as free)."""
        sharing = max(running, min(self.workers, running + waiting))
        free = int(self.cores - self.busy_elsewhere.cores() + 0.3)
        return max(1, min(self.cores // sharing, free))

    # ------------------------------------------------------------------ inspection, shutdown

    def stats(self) -> dict:
        with self._cond:
            return {"cores": self.cores, "workers": self.workers, "running": self._running,
                    "queued": len(self._queue), "max_running": self.max_running,
                    "threads_per_job": dict(self.threads_used)}

    def shutdown(self) -> None:
        """Stop taking jobs; workers finish what is queued, then exit."""
        with self._cond:
            self._closed = True
            for wake in self._idle:
                wake.notify()
            self._idle.clear()
