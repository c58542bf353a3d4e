"""RenderPool: parallel CPU renders, torch threads per job, priorities, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from tts_engine.parallel import SENTENCE, STREAM, BusyElsewhere, RenderPool, available_cores, cpu_budget
from tts_engine.settings import Settings


class QuietMachine:
    """BusyElsewhere stand-in: other processes keep ``busy`` cores busy (the real one reads /proc/stat,
    which on a shared test box would make thread counts depend on the neighbours)."""

    def __init__(self, busy: float = 0.0) -> None:
        self.busy = busy

    def cores(self) -> float:
        return self.busy

    def mark(self) -> None:
        return None

    def settle(self, start: None) -> None:
        pass


@pytest.fixture
def pool():
    pools: list[RenderPool] = []

    def make(cores: int, workers: int | None = None, busy: float = 0.0) -> RenderPool:
        pools.append(RenderPool(cores, workers, busy_elsewhere=QuietMachine(busy)))
        return pools[-1]

    yield make
    for p in pools:
        p.shutdown()


def torch_threads_after(event: threading.Event | None = None) -> int:
    if event is not None:
        assert event.wait(10)
    return torch.get_num_threads()


def test_budget_defaults_to_the_cores_and_honours_torch_threads():
    assert cpu_budget(None) == available_cores() >= 1
    assert cpu_budget(3) == 3
    assert Settings(torch_threads=None).render_workers is None  # derived in the pool, not hard-coded


def test_a_job_alone_gets_every_core(pool):
    p = pool(cores=2)
    assert asyncio.run(p.run(torch_threads_after)) == 2
    assert p.stats()["threads_per_job"] == {2: 1}


def test_concurrent_jobs_get_one_core_each_and_run_side_by_side(pool):
    p = pool(cores=2)
    both_started = threading.Barrier(2, timeout=10)

    def job() -> int:
        both_started.wait()  # fails (BrokenBarrierError) unless the two really run at once
        return torch.get_num_threads()

    async def burst():
        return await asyncio.gather(p.run(job), p.run(job))

    torch.get_num_threads()  # this thread's team size is now its own
    torch.set_num_threads(2)
    assert asyncio.run(burst()) == [1, 1]
    assert p.stats()["max_running"] == 2
    # The workers set their own threads' counts: this thread's setting is untouched.
    assert torch.get_num_threads() == 2


def test_errors_reach_the_caller(pool):
    p = pool(cores=1)

    def boom():
        raise ValueError("bad ids")

    with pytest.raises(ValueError, match="bad ids"):
        asyncio.run(p.run(boom))
    assert asyncio.run(p.run(lambda: 5)) == 5  # the worker survived


def test_stream_chunks_go_ahead_of_queued_sentences(pool):
    p = pool(cores=1, workers=1)
    gate = threading.Event()
    order: list[str] = []
    blocker = p.submit(gate.wait, 10)
    sentence = p.submit(order.append, "sentence", priority=SENTENCE)
    chunk = p.submit(order.append, "chunk", priority=STREAM)
    gate.set()
    for f in (blocker, sentence, chunk):
        f.result(10)
    assert order == ["chunk", "sentence"]


def test_a_cancelled_caller_drops_its_queued_job(pool):
    p = pool(cores=1, workers=1)
    gate = threading.Event()
    ran: list[str] = []

    async def scenario():
        blocker = asyncio.ensure_future(p.run(gate.wait, 10))
        queued = asyncio.ensure_future(p.run(ran.append, "late"))
        await asyncio.sleep(0.05)
        queued.cancel()
        await asyncio.sleep(0.05)  # the cancellation reaches the pool's future on the loop's next turn
        gate.set()
        await blocker
        await asyncio.sleep(0.05)
        return await p.run(lambda: "after")

    assert asyncio.run(scenario()) == "after"
    assert ran == []


def test_iterate_runs_every_step_on_a_worker(pool):
    p = pool(cores=2)
    caller = threading.get_ident()

    def steps():
        for i in range(3):
            yield i, threading.get_ident()

    async def collect():
        return [x async for x in p.iterate(steps())]

    got = asyncio.run(collect())
    assert [i for i, _ in got] == [0, 1, 2]
    assert all(ident != caller for _, ident in got)


def test_shut_down_pool_refuses_new_work(pool):
    p = pool(cores=1)
    p.shutdown()
    with pytest.raises(RuntimeError):
        p.submit(lambda: 1)


@pytest.mark.parametrize("files, want", [
    ({"cpu.max": "150000 100000\n"}, 2),                      # cgroup v2, 1.5 CPUs -> 2
    ({"cpu.max": "max 100000\n"}, None),                      # v2 unlimited
    ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),   # v1 unlimited
    ({}, None),                                               # no cgroup files
])
def test_container_cpu_quota_caps_the_cores(tmp_path, files, want):
    from tts_engine.parallel import cgroup_cpu_quota

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(str(tmp_path)) == want


def test_jobs_can_read_their_thread_count(pool):
    from tts_engine.parallel import job_threads

    p = pool(cores=2)
    assert job_threads() is None  # not a pool job
    assert asyncio.run(p.run(job_threads)) == 2


@pytest.mark.parametrize("busy, want", [(0.0, 2), (0.25, 2), (0.6, 1), (1.0, 1), (3.0, 1)])
def test_a_job_alone_gets_only_the_cores_others_leave_free(pool, busy, want):
    """Two OpenMP threads with one core taken by another process are slower than one thread."""
    p = pool(cores=2, busy=busy)
    assert asyncio.run(p.run(torch_threads_after)) == want


def test_busy_elsewhere_measures_other_processes_during_renders(tmp_path, monkeypatch):
    import os
    import time as time_module

    stat = tmp_path / "stat"
    ticks = BusyElsewhere.__init__.__globals__["_CLOCK_TICKS"]
    clock = {"t": 100.0}
    own = {"cpu": 10.0}
    monkeypatch.setattr(time_module, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(os, "times", lambda: os.times_result((own["cpu"], 0.0, 0.0, 0.0, 0.0)))

    def write(user_s: float, idle_s: float) -> None:  # cpu  user nice system idle iowait irq softirq steal
        stat.write_text(f"cpu  {int(user_s * ticks)} 0 0 {int(idle_s * ticks)} 0 0 0 0 0 0\ncpu0 ...\n")

    write(100.0, 500.0)
    probe = BusyElsewhere(stat_path=str(stat))
    assert probe.cores() == 0.0
    # A one-second render: the machine was busy 1.5 CPU-seconds, 0.5 of them this process's.
    start = probe.mark()
    clock["t"] += 1.0
    own["cpu"] += 0.5
    write(101.5, 500.5)
    probe.settle(start)
    assert probe.cores() == pytest.approx(0.5, abs=0.02)   # smoothed: half of the 1.0 seen
    # Busy time between renders (the service's own pipeline, the client) is not counted.
    write(150.0, 500.5)
    clock["t"] += 5.0
    assert probe.cores() == pytest.approx(0.5, abs=0.02)
    # A render during which nothing else ran brings the estimate down.
    start = probe.mark()
    clock["t"] += 1.0
    own["cpu"] += 2.0
    write(152.0, 500.5)
    probe.settle(start)
    assert probe.cores() == pytest.approx(0.25, abs=0.02)


def test_busy_elsewhere_without_proc_stat_is_zero(tmp_path):
    assert BusyElsewhere(stat_path=str(tmp_path / "missing")).cores() == 0.0
