"""Erase whole datasets: plan the items, run them on an engine, keep a resumable results manifest.

``eradiff batch`` is the command line over this package; nothing here imports torch or ray at
import time (the worker loads the model, :mod:`eradiff.batch.ray_engine` imports ray).

| name                         | what                                                                 |
| ---------------------------- | -------------------------------------------------------------------- |
| ``plan``                     | SOURCE [MASKS] → items: folders (paired as by ``eradiff erase``) or a manifest |
| ``Item``                     | one image: key (output path under OUT), image, mask, output, seed    |
| ``item_seed``                | an item's seed from the global seed and its key (never its position) |
| ``WorkerConfig``             | what every worker shares: model loader, options, format, threads     |
| ``BatchWorker``              | one item → one result row: digest, skip, erase, atomic write         |
| ``run_batch``                | items → rows on the ``local`` or ``ray`` engine; journal, results, counts |
| ``RayOptions``               | address, workers, CPUs/GPUs per worker, batch size                   |
| ``FIELDS``                   | the columns of the results manifest                                  |
"""

from .plan import Item, PlanError, item_seed, plan
from .results import FIELDS, STATUSES
from .run import ENGINES, BatchOutcome, RayOptions, run_batch
from .worker import BatchWorker, WorkerConfig

__all__ = [
    "ENGINES",
    "FIELDS",
    "STATUSES",
    "BatchOutcome",
    "BatchWorker",
    "Item",
    "PlanError",
    "RayOptions",
    "WorkerConfig",
    "item_seed",
    "plan",
    "run_batch",
]
