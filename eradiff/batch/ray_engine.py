"""The Ray engine: Ray Data streams the items through a pool of actors that each load the model once.

``ray`` is imported here only, when the engine runs (``pip install -e ".[ray]"``).

1. Connect (:func:`connect`): reuse a Ray already initialised in this process; else start a local
   instance on 127.0.0.1 for this run (``address="local"``), or join a cluster (``"auto"``,
   ``"ray://HOST:PORT"``).
2. ``ray.data.from_items`` of the planned items, one block per batch (at most ``MAX_BLOCKS``
   blocks), then ``map_batches`` with the callable class :class:`RayBatchWorker` on an actor
   pool of ``workers`` actors (``ActorPoolStrategy(size=N)``, the successor of
   ``concurrency=N``), ``num_cpus`` / ``num_gpus`` per actor. Each actor wraps one
   :class:`~eradiff.batch.worker.BatchWorker`: the model loads once, in the constructor; the
   actor reads inputs and writes outputs itself (atomically) and returns only the small rows.
3. The driver iterates the rows as they stream in (execution is streaming: a bounded number of
   blocks is in flight however many items there are).

Fault tolerance: actors run with ``max_restarts=-1`` and ``max_task_retries=-1``, so an
actor that dies (killed, out of memory) is restarted (its model loaded again) and the batches it
held are retried; a retried batch rewrites the same bits atomically, and only the successful
attempt's rows reach the driver.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from typing import Any

from .run import RayOptions
from .worker import BatchWorker, WorkerConfig, WorkerStartError

INSTALL_HINT = 'pip install -e ".[ray]"'
# A block is one actor task: its rows reach the driver together, and a dead actor's blocks are
# redone whole. One batch per block, up to this many blocks (1 M items at batch 4: 100 per block).
MAX_BLOCKS = 10_000


class RayUnavailable(ImportError):
    """Ray (with Ray Data) is not installed."""


def import_ray(*, loopback: bool = False) -> Any:
    """``ray`` with ``ray.data``; ``loopback`` keeps a Ray started by this process on 127.0.0.1.

    Ray picks the node address when a local instance starts: normally this machine's network
    address, or 127.0.0.1 when clusters are disabled (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    read by ray at import and by the processes it starts). Usage statistics are off unless the
    user turned them on, and Ray may not patch ``builtins.print``.

    Raises:
        RayUnavailable: ray or ray.data cannot be imported.
    """
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's progress-bar manager would otherwise replace builtins.print in this process (for good);
    # the command draws its own bar, and a library caller's print must stay print.
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayUnavailable(f"--engine ray needs Ray, which is not installed here: {INSTALL_HINT}") from exc
    if loopback and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        from ray._private import ray_constants  # imported before this call (e.g. by a test): same setting

        ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


def start_local(*, num_cpus: int, num_gpus: int | None = None) -> Any:
    """Start a Ray instance on 127.0.0.1 in this process (no dashboard); returns ``ray``."""
    ray = import_ray(loopback=True)
    ray.init(
        address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
        _node_ip_address="127.0.0.1", logging_level=logging.ERROR, log_to_driver=False,
    )  # fmt: skip
    return ray


def connect(options: RayOptions) -> bool:
    """Initialise Ray for a batch; True when this call did (and the caller shuts it down)."""
    ray = import_ray(loopback=options.address == "local")
    if ray.is_initialized():
        return False
    if options.address == "local":
        cpus = max(1, math.ceil(options.workers * options.cpus_per_worker))
        start_local(num_cpus=cpus)
    else:
        try:
            ray.init(address=options.address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as exc:  # ConnectionError, a malformed address, a Ray Client version mismatch…
            from eradiff.errors import first_line

            raise WorkerStartError(f"cannot join the Ray cluster at {options.address!r}: {first_line(exc)}") from exc
    return True


def _restart_args(ray: Any) -> dict[str, int]:
    """``max_restarts=-1, max_task_retries=-1`` where Ray Data needs them passed.

    Ray Data ≥ 2.60 gives its actor pools exactly these by default and deprecates passing them
    (``ray_remote_args``); earlier releases get them explicitly.
    """
    from packaging.version import Version

    return {} if Version(ray.__version__) >= Version("2.60") else {"max_restarts": -1, "max_task_retries": -1}


class RayBatchWorker:
    """The callable class of ``map_batches``: one model per actor, a pyarrow batch of items → rows.

    A model that cannot load does not raise in the actor (Ray would restart it forever and print
    each traceback): every call answers one row with the empty key and the error, and the driver
    stops the batch with that one line (:class:`WorkerStartError`).
    """

    def __init__(self, config: WorkerConfig) -> None:
        from eradiff.errors import first_line

        self.worker = BatchWorker(config)
        self.load_error: str | None = None
        try:
            self.worker.model()  # once per actor, before the first batch
        except Exception as exc:
            self.load_error = first_line(exc)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from .results import arrow_schema

        if self.load_error is not None:
            rows = [{"key": "", "status": "failed", "error": self.load_error, "worker": self.worker.name}]
        else:
            rows = [self.worker(item) for item in batch.to_pylist()]
        return pa.Table.from_pylist(rows, schema=arrow_schema())


def ray_rows(items: list[dict[str, Any]], config: WorkerConfig, options: RayOptions) -> Iterator[dict[str, Any]]:
    """The Ray engine: rows of ``items`` as the actors finish them (any order)."""
    started = connect(options)
    ray = import_ray()
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the command draws its own bar
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        # a small dataset is split so that every worker gets some of it (items are independent)
        per_call = max(1, min(options.batch_size, math.ceil(len(items) / options.workers)))
        blocks = max(1, min(math.ceil(len(items) / per_call), MAX_BLOCKS))
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            RayBatchWorker,
            fn_constructor_kwargs={"config": config},
            batch_size=per_call,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=options.workers),
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker or None,
            **_restart_args(ray),
        )
        for row in dataset.iter_rows():
            if row["key"] == "":
                raise WorkerStartError(f"a Ray worker ({row['worker']}) could not load the model: {row['error']}")
            yield dict(row)
    finally:
        if started:
            ray.shutdown()


__all__ = ["INSTALL_HINT", "RayBatchWorker", "RayUnavailable", "connect", "import_ray", "ray_rows", "start_local"]
