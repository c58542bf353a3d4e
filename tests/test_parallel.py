"""RenderPool: parallel CPU renders, torch threads per job, priorities, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from tts_engine.parallel import SENTENCE, STREAM, RenderPool, available_cores, cpu_budget
from tts_engine.settings import Settings


@pytest.fixture
def pool():
    pools: list[RenderPool] = []

    def make(cores: int, workers: int | None = None) -> RenderPool:
        pools.append(RenderPool(cores, workers))
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
