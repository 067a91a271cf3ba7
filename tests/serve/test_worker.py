"""ModelWorker: one job at a time, FIFO, bounded queue, cancellation, errors that do not stop it."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from eradiff.errors import InputError
from eradiff.pipeline.erase import EraseOptions, EraseReport, EraseResult
from eradiff.serve.worker import Job, ModelWorker, QueueFull


class FakeErase:
    """Records calls; steps through ``steps`` progress calls; can block until released."""

    def __init__(self, steps: int = 3) -> None:
        self.steps = steps
        self.calls: list[int] = []
        self.active = 0
        self.max_active = 0
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, model, pixels, mask, options, *, progress):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.entered.set()
            self.calls.append(options.seed)
            if options.seed == 666:
                raise InputError("bad pixels")
            if options.seed == 777:
                raise RuntimeError("boom\nsecond line")
            for step in range(1, self.steps + 1):
                assert self.release.wait(10)
                progress(1, 1, step, self.steps)
            report = EraseReport(seed=options.seed, steps_run=self.steps, sra=True, masked_pixels=1, dilated_pixels=1)
            return EraseResult(image=pixels, report=report)
        finally:
            with self.lock:
                self.active -= 1


def job(seed: int = 0) -> Job:
    return Job(pixels=np.zeros((4, 4, 3), np.uint8), mask=np.ones((4, 4), bool), options=EraseOptions(seed=seed),
               finish=lambda result: b"bytes-%d" % result.report.seed)  # fmt: skip


def wait_final(*jobs: Job, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not all(j.final for j in jobs):
        assert time.monotonic() < deadline, [j.state for j in jobs]
        time.sleep(0.01)


def hold_one_running(worker: ModelWorker, fake: FakeErase, *waiting_seeds: int) -> tuple[Job, list[Job]]:
    """Submit job(0) and wait until the worker is inside it (held by ``fake``), then queue the rest."""
    fake.release.clear()
    fake.entered.clear()
    running = job(0)
    worker.submit(running)
    assert fake.entered.wait(5)
    waiting = [job(seed) for seed in waiting_seeds]
    for j in waiting:
        worker.submit(j)
    return running, waiting


@pytest.fixture
def fake():
    return FakeErase()


@pytest.fixture
def worker(fake):
    w = ModelWorker(object(), capacity=2, erase_fn=fake)
    w.start()
    yield w
    fake.release.set()
    w.stop()


def test_jobs_run_one_at_a_time_in_order(worker, fake):
    jobs = [job(seed) for seed in range(2)]
    fake.release.clear()
    for j in jobs:
        worker.submit(j)
    fake.release.set()
    wait_final(*jobs)
    extra = [job(seed) for seed in range(2, 4)]
    for j in extra:
        worker.submit(j)
    wait_final(*extra)
    assert fake.calls == [0, 1, 2, 3] and fake.max_active == 1
    assert [j.result for j in jobs + extra] == [b"bytes-0", b"bytes-1", b"bytes-2", b"bytes-3"]
    assert all(j.state == "done" and j.step == 3 and j.steps == 3 for j in jobs)
    assert jobs[0].pixels is None  # arrays freed once done
    assert set(jobs[0].timings()) == {"queue", "erase", "encode"}
    assert worker.stats() == {"running": 0, "waiting": 0, "capacity": 2, "completed": 4, "failed": 0}


def test_a_full_queue_raises_queue_full_with_retry_after(worker, fake):
    running, waiting = hold_one_running(worker, fake, 1, 2)
    assert [worker.position(j) for j in waiting] == [1, 2]
    assert not worker.has_room()
    with pytest.raises(QueueFull, match="queue is full") as info:
        worker.submit(job(3))
    assert 1 <= info.value.retry_after <= 600
    fake.release.set()
    wait_final(running, *waiting)
    assert worker.has_room() and 3 not in fake.calls


def test_cancel_waiting_and_running_jobs(worker, fake):
    running, (waiting,) = hold_one_running(worker, fake, 1)
    worker.cancel(waiting)
    assert waiting.state == "cancelled" and worker.position(waiting) is None
    worker.cancel(running)
    fake.release.set()
    wait_final(running)
    assert running.state == "cancelled" and running.result is None and running.error.code == "cancelled"
    after = job(5)
    worker.submit(after)
    wait_final(after)
    assert after.state == "done" and fake.calls == [0, 5]


def test_errors_become_job_errors_and_the_worker_goes_on(worker):
    bad_input, bug, good = job(666), job(777), job(1)
    for j in (bad_input, bug, good):
        worker.submit(j)
        wait_final(j)
    assert (bad_input.state, bad_input.error.status, bad_input.error.code) == ("error", 422, "bad_input")
    assert bad_input.error.message == "bad pixels"
    assert (bug.error.status, bug.error.code, bug.error.message) == (500, "internal", "RuntimeError: boom")
    assert good.state == "done" and worker.alive
    assert worker.stats()["failed"] == 2


def test_stop_cancels_waiting_jobs(fake):
    w = ModelWorker(object(), capacity=4, erase_fn=fake)
    w.start()
    running, (waiting,) = hold_one_running(w, fake, 1)
    fake.release.set()
    w.stop()
    assert waiting.state == "cancelled" and waiting.error.code == "shutting_down"
    assert running.final and not w.alive
    with pytest.raises(QueueFull):
        w.submit(job(2))


def test_asyncio_listeners_are_woken_by_progress(worker, fake):
    j = job(0)
    seen: list[tuple[str, int]] = []

    async def follow():
        worker.submit(j)
        while not j.final:
            await j.changed(5)
            seen.append((j.state, j.step))

    asyncio.run(asyncio.wait_for(follow(), 10))
    assert seen[-1] == ("done", 3)


def test_changed_since_a_version_counts_changes_made_before_the_call():
    j = job(0)
    seen = j.version
    j.notify()  # a change between reading the job and starting to wait
    assert asyncio.run(j.changed(5.0, since=seen)) is True
    assert asyncio.run(j.changed(0.05, since=j.version)) is False
    assert asyncio.run(j.changed(0.05)) is False  # without since, only later changes count


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity must be ≥ 1, got 0"):
        ModelWorker(object(), capacity=0)


def test_wait_cancels_when_the_client_disconnects(worker, fake):
    running, (waiting,) = hold_one_running(worker, fake, 1)
    checks = []

    async def disconnected():
        checks.append(1)
        return len(checks) >= 2

    asyncio.run(waiting.wait(poll=0.01, disconnected=disconnected))
    assert not waiting.final and waiting.cancel_requested
    worker.cancel(waiting)
    assert waiting.state == "cancelled" and worker.position(waiting) is None
    fake.release.set()
    wait_final(running)
    assert fake.calls == [0]
