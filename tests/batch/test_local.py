"""`eradiff batch` on the local engine (no Ray): outputs, results manifest, resume, failures, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from eradiff.batch import item_seed
from eradiff.batch.results import journal_path
from eradiff.pipeline.windows import dilate_mask
from eradiff.testing import assert_one_line_error

from .helpers import batch_cli, interrupt_after, outputs, read_results, run_library, write_dataset


def test_folder_to_out_with_results_manifest(dataset40, local_reference, pixel_file, tmp_path):
    images, masks = dataset40
    result = batch_cli(images, masks, "-o", tmp_path / "out", model=pixel_file)
    assert result.exit_code == 0, result.stderr
    rows = read_results(tmp_path / "out" / "results.jsonl")
    assert [r["key"] for r in rows] == [f"im{i:02d}.png" for i in range(40)]
    assert {r["status"] for r in rows} == {"done"} and all(r["windows"] == 1 for r in rows)
    assert [r["seed"] for r in rows] == [item_seed(0, r["key"]) for r in rows]
    assert all(r["input"] == str(images / r["key"]) and r["error"] is None and r["worker"] for r in rows)
    assert outputs(tmp_path / "out") == local_reference, "same command, same bits"
    assert not journal_path(tmp_path / "out" / "results.jsonl").exists()
    image = np.asarray(Image.open(images / "im03.png"))
    mask = np.asarray(Image.open(masks / "im03.png")) > 127
    erased = np.asarray(Image.open(tmp_path / "out" / "im03.png"))
    keep = ~dilate_mask(mask, 7)
    assert np.array_equal(erased[keep], image[keep]) and not np.array_equal(erased[mask], image[mask])


def test_summary_counts_and_progress_go_to_stderr(dataset40, pixel_file, tmp_path):
    from typer.testing import CliRunner

    from eradiff.cli import app

    images, masks = dataset40
    argv = ["batch", str(images), str(masks), "-o", str(tmp_path / "out"), "--model", str(pixel_file), "--steps", "1"]
    result = CliRunner().invoke(app, [*argv, "--threads", "1"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "40 items: 40 done, 0 skipped, 0 failed" in result.stderr
    assert f"results: {tmp_path / 'out' / 'results.jsonl'}" in result.stderr


def test_rerun_skips_finished_items_without_rewriting_them(dataset40, pixel_file, tmp_path):
    images, masks = dataset40
    out = tmp_path / "out"
    assert batch_cli(images, masks, "-o", out, model=pixel_file).exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    (out / "im05.png").unlink()  # its output is gone: redone
    result = batch_cli(images, masks, "-o", out, model=pixel_file)
    assert result.exit_code == 0, result.stderr
    rows = {r["key"]: r for r in read_results(out / "results.jsonl")}
    assert [k for k, r in rows.items() if r["status"] == "done"] == ["im05.png"]
    assert sum(r["status"] == "skipped" for r in rows.values()) == 39
    assert all(out.joinpath(k).stat().st_mtime_ns == before[k] for k in rows if k != "im05.png")


def test_changed_input_or_settings_are_redone_and_overwrite_redoes_all(pixel_file, tmp_path):
    images, masks = write_dataset(tmp_path, 4)
    out = tmp_path / "out"
    assert batch_cli(images, masks, "-o", out, model=pixel_file).exit_code == 0
    shutil.copy(masks / "im00.png", masks / "im01.png")  # im01's mask changes
    assert batch_cli(images, masks, "-o", out, model=pixel_file).exit_code == 0
    rows = {r["key"]: r["status"] for r in read_results(out / "results.jsonl")}
    assert rows == {"im00.png": "skipped", "im01.png": "done", "im02.png": "skipped", "im03.png": "skipped"}
    assert batch_cli(images, masks, "-o", out, "--seed", "4", model=pixel_file).exit_code == 0
    assert {r["status"] for r in read_results(out / "results.jsonl")} == {"done"}, "another seed: another output"
    assert batch_cli(images, masks, "-o", out, "--seed", "4", "--overwrite", model=pixel_file).exit_code == 0
    assert {r["status"] for r in read_results(out / "results.jsonl")} == {"done"}


def test_corrupt_image_and_wrong_aspect_mask_fail_alone(pixel_file, tmp_path):
    images, masks = write_dataset(tmp_path, 6)
    (images / "im01.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    Image.fromarray(np.full((10, 44), 255, np.uint8)).save(masks / "im04.png")
    result = batch_cli(images, masks, "-o", tmp_path / "out", model=pixel_file)
    assert result.exit_code == 1
    rows = {r["key"]: r for r in read_results(tmp_path / "out" / "results.jsonl")}
    failed = {k: r["error"] for k, r in rows.items() if r["status"] == "failed"}
    assert set(failed) == {"im01.png", "im04.png"}
    assert failed["im01.png"].startswith(f"image {str(images / 'im01.png')!r}: ")
    wide = f"mask {str(masks / 'im04.png')!r} is 44×10 but the image is 44×36: the aspect ratios differ"
    assert failed["im04.png"] == wide
    assert sum(r["status"] == "done" for r in rows.values()) == 4
    assert sorted(outputs(tmp_path / "out")) == ["im00.png", "im02.png", "im03.png", "im05.png"]
    assert f"failed im01.png: {failed['im01.png']}" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_mask_copies_the_input_with_a_warning(pixel_file, tmp_path):
    images, masks = write_dataset(tmp_path, 2)
    Image.fromarray(np.zeros((36, 44), np.uint8)).save(masks / "im01.png")
    result = batch_cli(images, masks, "-o", tmp_path / "out", model=pixel_file)
    assert result.exit_code == 0, result.stderr
    row = read_results(tmp_path / "out" / "results.jsonl")[1]
    assert (row["status"], row["windows"]) == ("done", 0) and "mask is empty" in row["warnings"]
    assert (tmp_path / "out" / "im01.png").read_bytes() == (images / "im01.png").read_bytes()


def test_manifests_csv_jsonl_parquet_give_the_same_files(dataset40, local_reference, pixel_file, tmp_path):
    images, masks = dataset40
    rows = [{"image": str(images / f"im{i:02d}.png"), "mask": str(masks / f"im{i:02d}.png")} for i in range(0, 40, 7)]
    rows = rows[::-1]  # another order: the same bits
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "m.csv").write_text("image,mask\n" + "".join(f"{r['image']},{r['mask']}\n" for r in rows))
    kinds = ["csv", "jsonl"]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
        kinds.append("parquet")
    except ImportError:
        pass
    for kind in kinds:
        out = tmp_path / f"out-{kind}"
        result = batch_cli(tmp_path / f"m.{kind}", "-o", out, model=pixel_file)
        assert result.exit_code == 0, result.stderr
        files = outputs(out)
        assert sorted(files) == sorted(Path(r["image"]).name for r in rows)
        assert all(files[name] == local_reference[name] for name in files), kind


def test_memory_urls_and_parquet_results(pixel_file, tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    images, masks = write_dataset(tmp_path, 3)
    fs = fsspec.filesystem("memory")
    for folder in (images, masks):
        for p in folder.iterdir():
            fs.pipe(f"/batch-mem/{folder.name}/{p.name}", p.read_bytes())
    fs.pipe("/batch-mem/m.jsonl", b"".join(
        json.dumps({"image": f"images/im0{i}.png", "mask": f"masks/im0{i}.png", "output": f"s/{i}.png"}).encode()
        + b"\n" for i in range(3)))  # fmt: skip
    results = tmp_path / "r" / "results.parquet"
    result = batch_cli("memory://batch-mem/m.jsonl", "-o", tmp_path / "out", "--results", results, model=pixel_file)
    assert result.exit_code == 0, result.stderr
    rows = pq.read_table(results).to_pylist()
    assert [(r["key"], r["status"], r["input"]) for r in rows] == [
        (f"s/{i}.png", "done", f"memory://batch-mem/images/im0{i}.png") for i in range(3)
    ]
    assert [r["seed"] for r in rows] == [item_seed(0, f"s/{i}.png") for i in range(3)]
    assert sorted(p.name for p in (tmp_path / "out" / "s").iterdir()) == ["0.png", "1.png", "2.png"]
    rerun = batch_cli("memory://batch-mem/m.jsonl", "-o", tmp_path / "out", "--results", results, model=pixel_file)
    assert rerun.exit_code == 0 and {r["status"] for r in pq.read_table(results).to_pylist()} == {"skipped"}


def test_missing_url_input_fails_its_row(pixel_file, tmp_path):
    fs = fsspec.filesystem("memory")
    fs.pipe("/batch-missing/m.jsonl", b'{"image": "nothing.png", "mask": "nothing-mask.png"}\n')
    result = batch_cli("memory://batch-missing/m.jsonl", "-o", tmp_path / "out", model=pixel_file)
    assert result.exit_code == 1
    (row,) = read_results(tmp_path / "out" / "results.jsonl")
    assert row["status"] == "failed" and row["error"] == "image 'memory://batch-missing/nothing.png': no such file"


@pytest.mark.parametrize(
    "extra, code, match",
    [
        (["--engine", "spark"], 2, "engine 'spark' is not valid"),
        (["--workers", "2"], 2, "--workers need --engine ray"),
        (["--results", "r.csv"], 2, "must end in .jsonl or .parquet"),
        (["--steps", "0"], 2, "steps must be ≥ 1"),
        (["--batch-size", "0", "--engine", "ray"], 2, "--batch-size must be ≥ 1"),
        (["--format", "gif"], 2, "format 'gif' is not supported"),
        (["--seed", "-2"], 2, "seed must be ≥ 0"),
        (["--device", "tpu"], 2, "device 'tpu' is not valid"),
    ],
)
def test_option_errors_are_one_line(dataset40, pixel_file, tmp_path, extra, code, match):
    result = batch_cli(*dataset40, "-o", tmp_path / "out", *extra, model=pixel_file)
    assert_one_line_error(result, code, match)
    assert not (tmp_path / "out").exists(), "nothing written before the options are checked"


def test_source_and_model_errors_are_one_line(dataset40, pixel_file, tmp_path):
    images, masks = dataset40
    assert_one_line_error(batch_cli(tmp_path / "none", masks, "-o", tmp_path / "o", model=pixel_file), 1, "no such")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(batch_cli(images, masks, "-o", tmp_path / "file", model=pixel_file), 1, "is a file")
    result = batch_cli(images, masks, "-o", "s3://bucket/out", model=pixel_file)
    assert_one_line_error(result, 2, "OUT must be a local folder")
    assert_one_line_error(batch_cli(images, masks, "-o", tmp_path / "o", model=tmp_path / "no.safetensors"), 1, "no")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    assert_one_line_error(batch_cli(images, masks, "-o", tmp_path / "o2", model=broken), 1, "broken.safetensors")


def test_engine_ray_without_ray_exits_2_with_the_install_line(dataset40, pixel_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    result = batch_cli(*dataset40, "-o", tmp_path / "out", "--engine", "ray", model=pixel_file)
    assert_one_line_error(result, 2, 'pip install -e ".[ray]"')


def test_ctrl_c_keeps_the_journal_and_the_rerun_skips_what_it_recorded(pixel_file, tmp_path):
    images, masks = write_dataset(tmp_path, 12)
    out = tmp_path / "out"
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_library(images, masks, out, pixel_file, on_row=interrupt_after(5, seen))
    assert not (out / "results.jsonl").exists()
    assert [r["key"] for r in read_results(journal_path(out / "results.jsonl"))] == seen
    outcome = run_library(images, masks, out, pixel_file)
    assert outcome.counts == {"done": 7, "skipped": 5, "failed": 0}
    assert [r["key"] for r in outcome.rows if r["status"] == "skipped"] == seen
    assert read_results(out / "results.jsonl") == outcome.rows


def test_driver_killed_then_rerun_finishes_the_rest(pixel_file, tmp_path):
    """SIGKILL the command mid-run: no partial image; the rerun skips every recorded item."""
    images, masks = write_dataset(tmp_path, 30)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "eradiff.cli", "batch", str(images), str(masks), "-o", str(out), "--model",
            str(pixel_file), "--steps", "30", "--threads", "1", "-q"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = journal_path(out / "results.jsonl")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read().decode()
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded = {json.loads(line)["key"] for line in journal.read_text().splitlines() if line.endswith("}")}
    assert 3 <= len(recorded) < 30 and not (out / "results.jsonl").exists()
    for name in outputs(out):
        Image.open(out / name).load()  # every image there is whole (temporary files are hidden .part files)
    mtimes = {key: (out / key).stat().st_mtime_ns for key in recorded}
    result = batch_cli(images, masks, "-o", out, "--steps", "30", model=pixel_file)
    assert result.exit_code == 0, result.stderr
    rows = {r["key"]: r["status"] for r in read_results(out / "results.jsonl")}
    assert len(rows) == 30 and {k for k, s in rows.items() if s == "skipped"} == recorded
    assert all(s == "done" for k, s in rows.items() if k not in recorded)
    assert all((out / key).stat().st_mtime_ns == mtime for key, mtime in mtimes.items())
    assert not journal.exists()


def test_model_options_map_onto_erase_options_with_the_global_seed():
    from eradiff.cli._common import erase_options_from as erase_options
    from eradiff.options import EraseOptions

    args = {"steps": 3, "sampler": "dpmpp-2m", "strength": 0.5, "eta": 0.0, "dilate": 2, "feather": 1, "sra": False,
            "prompt": "p", "guidance_scale": 2.0, "init": "telea", "reimpose_known": False, "seed": -1,
            "workers": 4}  # fmt: skip
    assert erase_options(args, seed=9) == EraseOptions(
        steps=3, sampler="dpmpp-2m", strength=0.5, seed=9, dilate=2, feather=1, sra=False, prompt="p",
        guidance_scale=2.0, init="telea", reimpose_known=False,
    )  # fmt: skip
