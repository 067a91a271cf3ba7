"""The Ray engine on a real local Ray (2 CPUs, 127.0.0.1): same bits as local, actor death, interrupt, resume.

One Ray instance serves this module; each run starts its own actor pool (each actor loads the
tiny model once).
"""

from __future__ import annotations

import builtins
import collections
import json
import os
import signal

import pytest

from eradiff.batch import RayOptions
from eradiff.batch.results import journal_path

from .helpers import interrupt_after, outputs, read_results, run_library

pytest.importorskip("ray")
pytest.importorskip("ray.data")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
_PRINT_AT_IMPORT = builtins.print


@pytest.fixture(scope="module")
def ray_local():
    from eradiff.batch.ray_engine import start_local

    ray = start_local(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


def _pid(row) -> int:
    return int(row["worker"].rsplit(":", 1)[1])


def test_parquet_manifest_of_file_urls_on_two_workers_equals_local(ray_local, dataset40, local_reference, pixel_file,
                                                                   tmp_path):  # fmt: skip
    images, masks = dataset40
    rows = [{"image": f"file://{images}/im{i:02d}.png", "mask": f"file://{masks}/im{i:02d}.png"} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows[::-1]), tmp_path / "m.parquet")
    out = tmp_path / "out"
    ray = RayOptions(workers=2, batch_size=3)
    outcome = run_library(tmp_path / "m.parquet", None, out, pixel_file, engine="ray", ray=ray)
    assert outcome.counts == {"done": 40, "skipped": 0, "failed": 0}
    assert outputs(out) == local_reference, "bit-identical to the local engine"
    results = read_results(out / "results.jsonl")
    assert [r["key"] for r in results] == [f"im{i:02d}.png" for i in range(39, -1, -1)], "the manifest's order"
    assert len({r["worker"] for r in results}) == 2, "both actors worked"
    assert all(r["worker"].split(":")[1] != str(os.getpid()) for r in results)


def test_an_actor_killed_mid_run_is_replaced_and_every_item_done_once(ray_local, dataset40, local_reference,
                                                                      pixel_file, tmp_path):  # fmt: skip
    images, masks = dataset40
    killed = []

    def kill_one_actor(row):
        if len(killed) == 0:
            killed.append(_pid(row))
            os.kill(killed[0], signal.SIGKILL)

    out = tmp_path / "out"
    ray = RayOptions(workers=2, batch_size=2)
    outcome = run_library(images, masks, out, pixel_file, engine="ray", ray=ray, on_row=kill_one_actor)
    assert outcome.counts == {"done": 40, "skipped": 0, "failed": 0}
    counted = collections.Counter(r["key"] for r in read_results(out / "results.jsonl"))
    assert len(counted) == 40 and set(counted.values()) == {1}
    assert outputs(out) == local_reference
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # the actor is gone; the rest ran on the other actor and its replacement


def test_interrupted_driver_then_rerun_skips_what_was_finished(ray_local, dataset40, local_reference, pixel_file,
                                                               tmp_path):  # fmt: skip
    images, masks = dataset40
    out = tmp_path / "out"
    seen: list[str] = []
    ray = RayOptions(workers=2, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_library(images, masks, out, pixel_file, engine="ray", ray=ray, on_row=interrupt_after(8, seen))
    journal = [json.loads(line) for line in journal_path(out / "results.jsonl").read_text().splitlines()]
    assert [r["key"] for r in journal] == seen and not (out / "results.jsonl").exists()
    mtimes = {key: (out / key).stat().st_mtime_ns for key in seen}
    outcome = run_library(images, masks, out, pixel_file, engine="ray", ray=ray)
    assert outcome.counts["skipped"] == 8 and outcome.counts["done"] == 32 and outcome.counts["failed"] == 0
    assert sorted(r["key"] for r in outcome.rows if r["status"] == "skipped") == sorted(seen)
    assert all((out / key).stat().st_mtime_ns == mtime for key, mtime in mtimes.items()), "not recomputed"
    assert outputs(out) == local_reference


def test_a_model_that_cannot_load_stops_the_batch_with_one_line(ray_local, dataset40, tmp_path):
    from eradiff.batch.worker import WorkerStartError

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    with pytest.raises(WorkerStartError) as info:
        run_library(*dataset40, tmp_path / "out", broken, engine="ray", ray=RayOptions(workers=1))
    message = str(info.value)
    assert "could not load the model" in message and "broken.safetensors" in message and "\n" not in message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [], "nothing written, no journal left"


def test_ray_batches_leave_builtins_print_alone(ray_local):
    """Run last in this module: none of the batches above may have patched print (Ray's tqdm_ray does
    by default, which broke an unrelated test of the suite that pickles ``print``)."""
    assert builtins.print is _PRINT_AT_IMPORT
