"""One worker thread per model: a bounded queue of erase jobs, run one at a time.

The model object is only ever touched by the worker thread, so requests never use it
concurrently. ``submit`` refuses a job when ``capacity`` jobs already wait (the running one not
counted) by raising :class:`QueueFull`, which carries a Retry-After estimate.

A :class:`Job` is the unit both HTTP routes share: ``POST /api/erase`` waits for it,
``POST /api/jobs`` returns its id and the page follows its progress. Progress and completion are
pushed to asyncio listeners with ``loop.call_soon_threadsafe`` (no polling).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from eradiff.errors import EraDiffError, first_line
from eradiff.pipeline.erase import EraseOptions, EraseResult, erase

JobState = Literal["queued", "running", "done", "error", "cancelled"]
FINAL_STATES = ("done", "error", "cancelled")


class QueueFull(Exception):
    """The queue holds ``capacity`` waiting jobs; try again after ``retry_after`` seconds."""

    def __init__(self, capacity: int, retry_after: int) -> None:
        super().__init__(f"the erase queue is full ({capacity} waiting); retry in {retry_after} s")
        self.capacity = capacity
        self.retry_after = retry_after


class JobCancelled(Exception):
    """Raised inside the progress callback to stop a cancelled job between denoising steps."""


@dataclass
class JobError:
    """Why a job failed: HTTP status, a machine-readable code and a one-line message."""

    status: int
    code: str
    message: str


@dataclass
class Job:
    """One erase request: inputs, progress, and the encoded result or the error.

    ``finish`` is a function ``EraseResult → bytes`` run on the worker thread after the erase
    (encoding the result in the input's format), so a job is complete when its bytes exist.
    """

    pixels: np.ndarray
    mask: np.ndarray
    options: EraseOptions
    finish: Callable[[EraseResult], bytes]
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    meta: dict[str, Any] = field(default_factory=dict)
    state: JobState = "queued"
    window: int = 0
    windows: int = 0
    step: int = 0
    steps: int = 0
    result: bytes | None = None
    report: dict[str, Any] | None = None
    error: JobError | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    erased: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    version: int = field(default=0, repr=False)  # incremented by every notify()
    _listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def timings(self) -> dict[str, float]:
        """Seconds spent queued, erasing and encoding (those that have happened)."""
        t: dict[str, float] = {}
        if self.started is not None:
            t["queue"] = self.started - self.created
        if self.started is not None and self.erased is not None:
            t["erase"] = self.erased - self.started
        if self.erased is not None and self.finished is not None:
            t["encode"] = self.finished - self.erased
        return t

    def snapshot(self, position: int | None = None) -> dict[str, Any]:
        """A JSON-ready view of the job for the page (no pixels, no bytes)."""
        d: dict[str, Any] = {"id": self.id, "state": self.state, "seed": self.options.seed}
        if self.state == "queued" and position is not None:
            d["position"] = position
        if self.state in ("running", "done"):
            d.update(window=self.window, windows=self.windows, step=self.step, steps=self.steps)
        if self.error is not None:
            d["error"] = {"status": self.error.status, "code": self.error.code, "message": self.error.message}
        if self.report is not None:
            d["report"] = self.report
        d["timings"] = {k: round(v, 4) for k, v in self.timings().items()}
        return d

    # -- change notification to asyncio listeners ----------------------------------------------

    def notify(self) -> None:
        with self._lock:
            self.version += 1
            listeners = list(self._listeners)
        for loop, event in listeners:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the listener's loop is closed
                pass

    async def changed(self, timeout: float, *, since: int | None = None) -> bool:
        """Wait until the job changes (progress, state) or ``timeout`` s pass; True if it changed.

        ``since``: a ``version`` read earlier; a change after that read counts even if it happened
        before this call (so a caller that read the job, then waits, misses nothing).
        """
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if since is not None and self.version != since:
                return True
            self._listeners.add(entry)
        try:
            await asyncio.wait_for(entry[1].wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                self._listeners.discard(entry)

    async def wait(self, *, poll: float = 0.5, disconnected: Callable[[], Any] | None = None) -> None:
        """Wait until the job is final; if ``await disconnected()`` turns true, cancel it and return."""
        while not self.final:
            await self.changed(poll)
            if not self.final and disconnected is not None and await disconnected():
                self.cancel_requested = True
                return


class ModelWorker:
    """A daemon thread that owns ``model`` and runs queued jobs one at a time.

    Args:
        model: the loaded erasure model (used from the worker thread only).
        capacity: how many jobs may wait behind the running one, ≥ 1.
        erase_fn: the erase function (the pipeline's :func:`~eradiff.pipeline.erase.erase`).
    """

    def __init__(self, model: Any, *, capacity: int = 8, erase_fn: Callable[..., EraseResult] = erase) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.model = model
        self.capacity = capacity
        self._erase = erase_fn
        self._pending: deque[Job] = deque()
        self._cv = threading.Condition()
        self._running: Job | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._durations: deque[float] = deque(maxlen=16)
        self.completed = 0
        self.failed = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="eradiff-model-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel waiting jobs, let the running one stop at its next step, join the thread."""
        with self._cv:
            self._stopping = True
            pending, self._pending = list(self._pending), deque()
            if self._running is not None:
                self._running.cancel_requested = True
            self._cv.notify_all()
        for job in pending:
            self._end(job, "cancelled", JobError(503, "shutting_down", "the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- queue --------------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue ``job``; raises :class:`QueueFull` when ``capacity`` jobs already wait."""
        with self._cv:
            if self._stopping:
                raise QueueFull(self.capacity, 5)
            if len(self._pending) >= self.capacity:
                raise QueueFull(self.capacity, self.retry_after())
            self._pending.append(job)
            self._cv.notify()
        job.notify()

    def has_room(self) -> bool:
        with self._cv:
            return not self._stopping and len(self._pending) < self.capacity

    def retry_after(self) -> int:
        """Seconds until a slot frees (the running job ends): the mean of recent jobs, 1 to 600."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 2.0
        return int(min(600, max(1, math.ceil(mean))))

    def position(self, job: Job) -> int | None:
        """1-based place of a queued job (1 = next), None if not waiting."""
        with self._cv:
            for i, queued in enumerate(self._pending):
                if queued is job:
                    return i + 1
        return None

    def cancel(self, job: Job) -> None:
        """Drop a waiting job, or ask the running one to stop at its next denoising step."""
        with self._cv:
            try:
                self._pending.remove(job)
                removed = True
            except ValueError:
                removed = False
            job.cancel_requested = True
        if removed:
            self._end(job, "cancelled", JobError(409, "cancelled", "the job was cancelled"))

    def stats(self) -> dict[str, Any]:
        with self._cv:
            return {
                "running": int(self._running is not None),
                "waiting": len(self._pending),
                "capacity": self.capacity,
                "completed": self.completed,
                "failed": self.failed,
            }

    # -- the thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                self._running = job
            try:
                self._run(job)
            finally:
                with self._cv:
                    self._running = None
                for queued in self._snapshot_pending():
                    queued.notify()  # positions moved up

    def _snapshot_pending(self) -> list[Job]:
        with self._cv:
            return list(self._pending)

    def _run(self, job: Job) -> None:
        job.state, job.started = "running", time.monotonic()
        job.notify()

        def progress(window: int, windows: int, step: int, steps: int) -> None:
            if job.cancel_requested:
                raise JobCancelled
            job.window, job.windows, job.step, job.steps = window, windows, step, steps
            job.notify()

        try:
            if job.cancel_requested:
                raise JobCancelled
            # no warnings.catch_warnings() here: it swaps process-wide state under the decoding threads
            result = self._erase(self.model, job.pixels, job.mask, job.options, progress=progress)
            job.erased = time.monotonic()
            job.report = result.report.to_dict()
            job.result = job.finish(result)
        except JobCancelled:
            self._end(job, "cancelled", JobError(409, "cancelled", "the job was cancelled"))
            return
        except EraDiffError as exc:
            self._end(job, "error", JobError(422, "bad_input", first_line(exc)))
            return
        except Exception as exc:  # a bug or an out-of-memory: reported, the worker goes on
            self._end(job, "error", JobError(500, "internal", f"{type(exc).__name__}: {first_line(exc)}"))
            return
        finally:
            job.pixels = job.mask = None  # type: ignore[assignment]  (free the arrays early)
        self._durations.append(time.monotonic() - job.started)
        self._end(job, "done", None)

    def _end(self, job: Job, state: JobState, error: JobError | None) -> None:
        job.finished = time.monotonic()
        if job.erased is None and job.started is not None:
            job.erased = job.finished
        job.state, job.error = state, error
        if state == "done":
            self.completed += 1
        elif state == "error":
            self.failed += 1
        job.notify()


__all__ = ["FINAL_STATES", "Job", "JobCancelled", "JobError", "ModelWorker", "QueueFull"]
