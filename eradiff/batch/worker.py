"""The step every engine runs for one item: read, digest, skip or erase, write atomically, one row.

A :class:`BatchWorker` loads its model once (``config.load()``, before its first item) and turns item
dicts (:meth:`eradiff.batch.plan.Item.to_dict` plus ``previous``, the digest a previous run
recorded) into result rows (:mod:`eradiff.batch.results`). An item that fails on its own (missing,
corrupt or truncated file, a mask of another aspect ratio, an unwritable output) becomes a
``failed`` row with a one-line message; only a model that cannot load (before the first item) or
Ctrl+C stop the worker.

Digest: sha256 of the settings that decide the output bits (the erase options but the seed, the
model spec and backend, the format), the item's seed, and the image and mask bytes. The output is
written to a temporary file beside it and renamed into place (never a partial file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eradiff.errors import EraDiffError, InputError
from eradiff.options import EraseOptions

from .plan import local_path

_CHUNK = 1 << 20


class WorkerStartError(RuntimeError):
    """The workers could not start (the model did not load, no Ray cluster to join): the batch stops.

    The message is one line.
    """


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a batch shares (picklable: Ray sends it to each actor).

    Attributes:
        load: returns the model; called once per worker (a ``functools.partial`` of a module-level
            function, so that it pickles).
        options: the erase options; each item's seed replaces ``options.seed``.
        fmt: output format key, or None for the output suffix's.
        threads: torch CPU threads per worker.
        overwrite: redo items a previous run finished.
        settings: what else decides the output bits (model spec, backend), for the digest.
    """

    load: Callable[[], Any]
    options: EraseOptions
    fmt: str | None = None
    threads: int = 1
    overwrite: bool = False
    settings: str = ""

    def fingerprint(self) -> str:
        """The settings part of every item's digest."""
        options = dataclasses.asdict(self.options)
        options.pop("seed")
        return json.dumps({"options": options, "fmt": self.fmt, "settings": self.settings}, sort_keys=True)


def worker_name() -> str:
    """``HOST:PID`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _hash_file(path: Path, h: Any) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


class _LocalInputs:
    """Local paths of an item's image and mask: as they are, or fetched from a URL into a temporary folder."""

    def __init__(self, image: str, mask: str) -> None:
        self.locations = {"image": image, "mask": mask}
        self._tmp: str | None = None

    def __enter__(self) -> _LocalInputs:
        self.paths = {what: self._fetch(what, location) for what, location in self.locations.items()}
        return self

    def _fetch(self, what: str, location: str) -> Path:
        path = local_path(location)
        if path is not None:
            if not path.is_file():
                raise InputError(f"{what} {location!r}: no such file")
            return path
        import fsspec

        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="eradiff-batch-")
        name = location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or what
        target = Path(self._tmp) / what / name
        target.parent.mkdir()
        try:
            with fsspec.open(location, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except FileNotFoundError as exc:
            raise InputError(f"{what} {location!r}: no such file") from exc
        return target

    def tell(self, message: str) -> str:
        """A message with temporary paths replaced by the locations they were fetched from."""
        for what, path in self.paths.items():
            message = message.replace(str(path), self.locations[what])
        return message

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


class BatchWorker:
    """Erases items one at a time with one model (see the module docstring).

    Args:
        config: the batch's :class:`WorkerConfig`.
        name: this worker in result rows (default ``HOST:PID``).
    """

    def __init__(self, config: WorkerConfig, *, name: str | None = None) -> None:
        self.config = config
        self.name = name or worker_name()
        self._fingerprint = config.fingerprint()
        self._model: Any = None

    def model(self) -> Any:
        """The model, loaded on first use with ``config.threads`` torch threads.

        Raises:
            whatever ``config.load`` raises: a model that cannot load stops the batch.
        """
        if self._model is None:
            import torch

            torch.set_num_threads(self.config.threads)
            self._model = self.config.load()
        return self._model

    def digest(self, seed: int, image: Path, mask: Path) -> str:
        h = hashlib.sha256(f"{self._fingerprint}\0{seed}\0".encode())
        for path in (image, mask):
            _hash_file(path, h)
            h.update(b"\0")
        return h.hexdigest()

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        """The result row of one item (never raises for a problem of the item itself)."""
        model = self.model()
        started = time.perf_counter()
        row = {"key": item["key"], "input": item["image"], "mask": item["mask"], "output": item["output"],
               "status": "failed", "error": item.get("error"), "seed": int(item["seed"]), "windows": None,
               "seconds": None, "worker": self.name, "digest": None, "warnings": None}  # fmt: skip
        if row["error"] is None:
            from eradiff.pipeline.files import failure_message  # torch is loaded by now (the model)

            try:
                self._erase(model, item, row)
            except Exception as exc:  # one line per failed item; the batch goes on
                row["error"] = failure_message(exc, image=item["image"], output=item["output"])
        row["status"] = row["status"] if row["error"] is None else "failed"
        row["seconds"] = round(time.perf_counter() - started, 4)
        return row

    def _erase(self, model: Any, item: dict[str, Any], row: dict[str, Any]) -> None:
        from eradiff.pipeline.files import erase_file
        from eradiff.pipeline.io import atomic_write

        output = Path(item["output"])
        with _LocalInputs(item["image"], item["mask"]) as inputs:
            row["digest"] = self.digest(row["seed"], inputs.paths["image"], inputs.paths["mask"])
            if not self.config.overwrite and item.get("previous") == row["digest"] and output.is_file():
                row["status"] = "skipped"
                return
            options = dataclasses.replace(self.config.options, seed=row["seed"])
            try:
                made = erase_file(model, inputs.paths["image"], inputs.paths["mask"], options, output=output,
                                  fmt=self.config.fmt)  # fmt: skip
            except EraDiffError as exc:
                raise type(exc)(inputs.tell(str(exc))) from exc
            output.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(output, made.data)
        row["status"] = "done"
        row["windows"] = len(made.result.report.windows)
        row["warnings"] = "; ".join(inputs.tell(w) for w in made.warnings) or None


__all__ = ["BatchWorker", "WorkerConfig", "WorkerStartError", "worker_name"]
