"""Run a planned batch on an engine; keep the journal, the results manifest and the counts.

Engines turn item dicts into result rows, in any order:

- ``local``: one :class:`~eradiff.batch.worker.BatchWorker` in this process, items in order;
- ``ray``: Ray Data actors (:mod:`eradiff.batch.ray_engine`, imported only then).

:func:`run_batch` reads what a previous run finished (results file and journal), passes each
item its recorded digest, appends every row to the journal as it arrives, and at the end writes
the results file in the items' order. Each item gives exactly one row: done + skipped + failed
equals the number of items. Ctrl+C (``KeyboardInterrupt``) keeps the journal for the rerun and
leaves the results file as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .plan import Item
from .results import STATUSES, Journal, previous_rows, write_rows
from .worker import BatchWorker, WorkerConfig

EngineKind = Literal["local", "ray"]
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs.

    Attributes:
        address: ``"local"`` starts a Ray instance for this run (127.0.0.1 only) and stops it
            after; ``"auto"`` joins the cluster this machine belongs to; ``"ray://HOST:PORT"`` a
            remote one through Ray Client. A Ray already initialised in this process is used as it is.
        workers: actors in the pool (each loads the model once).
        cpus_per_worker: CPUs Ray reserves per actor.
        gpus_per_worker: GPUs Ray reserves per actor (0 = none).
        batch_size: items per call of an actor (and per Ray Data block).
    """

    address: str = "local"
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 4


@dataclass
class BatchOutcome:
    """What :func:`run_batch` did: every row in the items' order, the counts and the wall time."""

    rows: list[dict[str, Any]]
    seconds: float
    results: Path
    counts: dict[str, int] = field(default_factory=dict)


def local_rows(items: Iterable[dict[str, Any]], config: WorkerConfig) -> Iterator[dict[str, Any]]:
    """The local engine: one worker in this process (its model loads before the first item)."""
    worker = BatchWorker(config)
    for item in items:
        yield worker(item)


def run_batch(
    items: list[Item],
    config: WorkerConfig,
    *,
    results: Path,
    engine: EngineKind = "local",
    ray: RayOptions | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> BatchOutcome:
    """Erase ``items`` with ``engine``; write the journal while running and the results file at the end.

    Args:
        items: the plan (:func:`eradiff.batch.plan.plan`).
        config: what every worker shares.
        results: the results file (``.jsonl``, or ``.parquet``).
        engine: ``"local"`` or ``"ray"``.
        ray: the Ray engine's options (defaults if None).
        on_row: called with each row as it arrives (progress; tests).

    Returns:
        :class:`BatchOutcome`.

    Raises:
        KeyboardInterrupt: the journal is kept for the rerun.
        ValueError: an unknown engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not valid; choose one of {', '.join(ENGINES)}")
    started = time.perf_counter()
    previous = [] if config.overwrite else previous_rows(results)
    digests = {row["key"]: row["digest"] for row in previous}
    payload = [{**item.to_dict(), "previous": digests.get(item.key)} for item in items]
    planned = {item.key for item in items}
    journal = Journal(results, [row for row in previous if row["key"] in planned])
    by_key: dict[str, dict[str, Any]] = {}
    finished = False
    if engine == "local":
        rows = local_rows(payload, config)
    else:
        from .ray_engine import ray_rows

        rows = ray_rows(payload, config, ray or RayOptions())
    try:
        for row in rows:
            if row["key"] not in planned or row["key"] in by_key:
                continue  # never counted twice (an engine that retried an item it already reported)
            by_key[row["key"]] = row
            journal.append(row)
            if on_row is not None:
                on_row(row)
        lost = planned - by_key.keys()
        if lost:
            raise RuntimeError(f"the {engine} engine returned no row for {len(lost)} item(s), e.g. {min(lost)!r}")
        ordered = [by_key[item.key] for item in items]
        write_rows(results, ordered)
        finished = True
    finally:
        rows.close()  # the engine's own clean-up (a Ray instance it started) now, not at garbage collection
        journal.close(remove=finished)
    counts = {status: sum(row["status"] == status for row in ordered) for status in STATUSES}
    return BatchOutcome(rows=ordered, seconds=time.perf_counter() - started, results=results, counts=counts)


__all__ = ["ENGINES", "BatchOutcome", "EngineKind", "RayOptions", "local_rows", "run_batch"]
