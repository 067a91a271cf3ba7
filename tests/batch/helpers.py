"""Helpers of the batch tests: small datasets on disk, and runners of the command and the library.

Every engine is run with one torch thread, so files are comparable bit for bit (the tiny model's
output can differ in the last bit between thread counts).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from eradiff.batch import WorkerConfig, plan, run_batch
from eradiff.cli import app
from eradiff.cli.batch import load_batch_model
from eradiff.options import EraseOptions

runner = CliRunner()
SHAPE = (36, 44)


def write_dataset(root: Path, n: int, *, seed: int = 0) -> tuple[Path, Path]:
    """``root/images/imNN.png`` with ``root/masks/imNN.png`` (a box that moves with NN); returns both folders."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"im{i:02d}.png")
        m = np.zeros((h, w), np.uint8)
        m[8 + i % 10 : 20 + i % 10, 4 + i % 20 : 18 + i % 20] = 255
        Image.fromarray(m).save(masks / f"im{i:02d}.png")
    return images, masks


def batch_cli(*args, model: Path):
    """``eradiff batch --model MODEL --steps 1 --threads 1 -q ARGS`` in this process (ARGS may override those)."""
    return runner.invoke(app, ["batch", "--model", str(model), "--steps", "1", "--threads", "1", "-q", *map(str, args)])


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def outputs(folder: Path) -> dict[str, bytes]:
    """Every image file in ``folder`` by name (results manifests and hidden files left out)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".png" and p.name[0] != "."}


def config_for(model: Path, **kwargs) -> WorkerConfig:
    """The WorkerConfig the command builds for ``--model MODEL --steps 1 --threads 1``."""
    load = functools.partial(load_batch_model, str(model), backend="torch", device="cpu", offline=True)
    return WorkerConfig(load=load, options=EraseOptions(steps=1), threads=1, settings=f"model={model}", **kwargs)


def run_library(source, masks, out: Path, model: Path, **kwargs):
    """``run_batch`` of the plan of SOURCE [MASKS] into OUT (results in OUT/results.jsonl)."""
    items = plan(str(source), None if masks is None else str(masks), out, seed=0)
    overwrite = kwargs.pop("overwrite", False)
    return run_batch(items, config_for(model, overwrite=overwrite), results=out / "results.jsonl", **kwargs)


def interrupt_after(n: int, seen: list[str]):
    """An ``on_row`` callback that records each row's key and raises KeyboardInterrupt at the n-th."""

    def on_row(row) -> None:
        seen.append(row["key"])
        if len(seen) == n:
            raise KeyboardInterrupt

    return on_row
