"""`eradiff erase` end to end on tiny random models: outputs, batches, reports, and one-line errors."""

import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

import eradiff.pipeline.io as pio
from eradiff.cli import app
from eradiff.pipeline.windows import dilate_mask
from eradiff.testing import assert_one_line_error

runner = CliRunner()


def write_photo(path: Path, h=36, w=44, seed=0, mode="RGB") -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(a).convert(mode).save(path)
    return np.asarray(Image.open(path))


def write_mask(path: Path, h=36, w=44, box=(10, 20, 12, 30)) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(path)
    return m > 127


def erase_cli(*args, model=None):
    argv = ["erase", *map(str, args), "--steps", "2", "-q"]
    if model is not None:
        argv += ["--model", str(model)]
    return runner.invoke(app, argv)


def test_file_to_default_output_bit_identical_outside(tmp_path, pixel_file):
    image = write_photo(tmp_path / "photo.png")
    mask = write_mask(tmp_path / "mask.png")
    result = erase_cli(tmp_path / "photo.png", tmp_path / "mask.png", "--json", model=pixel_file)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "photo.erased.png"
    report = json.loads(result.stdout)
    assert report["images"][0]["output"] == str(out) and report["images"][0]["status"] == "ok"
    assert report["seed"] == 0 and report["model"]["family"] == "pixel" and report["summary"]["failed"] == 0
    assert report["images"][0]["report"]["windows"][0]["box"] == [0, 0, 44, 36]
    erased = np.asarray(Image.open(out))
    keep = ~dilate_mask(mask, 7)
    assert np.array_equal(erased[keep], image[keep])
    assert not np.array_equal(erased[mask], image[mask])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png", "photo.erased.png", "photo.png"]


def test_sd2_folder_end_to_end_deterministic_and_sra_switch(tmp_path, sd2_folder):
    write_photo(tmp_path / "p.png", 30, 30)
    write_mask(tmp_path / "m.png", 30, 30, (8, 22, 8, 22))
    outs = []
    for name, extra in (("a", []), ("b", []), ("c", ["--no-sra"])):
        result = erase_cli(tmp_path / "p.png", tmp_path / "m.png", "-o", tmp_path / f"{name}.png", *extra,
                           model=sd2_folder)  # fmt: skip
        assert result.exit_code == 0, result.stderr
        outs.append(np.asarray(Image.open(tmp_path / f"{name}.png")))
    assert np.array_equal(outs[0], outs[1]), "same seed, same output"
    assert not np.array_equal(outs[0], outs[2]), "SRA on vs off differ"


def test_folders_matched_by_stem_and_missing_mask_fails_that_image(tmp_path, pixel_file):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    for stem in ("a", "b", "c"):
        write_photo(tmp_path / "imgs" / f"{stem}.png", seed=ord(stem))
    write_mask(tmp_path / "masks" / "a.png")
    write_mask(tmp_path / "masks" / "b.jpg")
    result = erase_cli(tmp_path / "imgs", tmp_path / "masks", "--json", model=pixel_file)
    assert result.exit_code == 1, "an image without a mask fails the run"
    report = json.loads(result.stdout)
    assert [i["status"] for i in report["images"]] == ["ok", "ok", "failed"]
    assert "no mask named c.*" in report["images"][2]["error"]
    assert sorted(p.name for p in (tmp_path / "imgs-erased").iterdir()) == ["a.png", "b.png"]
    assert "error: no mask named c.*" in result.stderr


def test_one_mask_for_a_folder_with_format_and_compare(tmp_path, pixel_file):
    (tmp_path / "imgs").mkdir()
    write_photo(tmp_path / "imgs" / "x.jpg")
    write_photo(tmp_path / "imgs" / "y.png", 72, 88)  # same aspect: the mask is resized with a warning
    write_mask(tmp_path / "m.png")
    result = runner.invoke(app, ["erase", str(tmp_path / "imgs"), str(tmp_path / "m.png"), "-o",
                                 str(tmp_path / "out"), "--format", "png", "--compare", "--steps", "1", "--model",
                                 str(pixel_file)])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["x.compare.png", "x.png", "y.compare.png", "y.png"]
    assert Image.open(tmp_path / "out" / "x.compare.png").size == (44 * 2 + 8, 36)
    assert "resized (nearest)" in result.stderr


def test_keeps_jpeg_format_and_random_seed_is_printed(tmp_path, pixel_file):
    write_photo(tmp_path / "p.jpg")
    write_mask(tmp_path / "m.png")
    result = erase_cli(tmp_path / "p.jpg", tmp_path / "m.png", "--seed", "-1", "--json", model=pixel_file)
    assert result.exit_code == 0, result.stderr
    seed = json.loads(result.stdout)["seed"]
    assert f"seed: {seed}" in result.stderr
    with Image.open(tmp_path / "p.erased.jpg") as out:
        assert out.format == "JPEG"


def test_empty_mask_copies_with_warning_exit_zero(tmp_path, pixel_file):
    image = write_photo(tmp_path / "p.png")
    Image.fromarray(np.zeros((36, 44), np.uint8)).save(tmp_path / "m.png")
    result = runner.invoke(app, ["erase", str(tmp_path / "p.png"), str(tmp_path / "m.png"), "--model",
                                 str(pixel_file), "--json"])  # fmt: skip
    assert result.exit_code == 0
    assert json.loads(result.stdout)["images"][0]["status"] == "copied"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.erased.png")), image)
    assert "nothing to erase" in result.stderr


@pytest.mark.parametrize(
    ("setup", "args", "code", "match"),
    [
        ("", ["nope.png", "m.png"], 1, "no such file or folder"),
        ("p", ["p.png", "nope.png"], 1, "mask 'nope.png': no such file"),
        ("pm", ["p.png", "m.png", "-o", "p.png"], 1, "would overwrite an input"),
        ("pm", ["p.png", "m.png", "-o", "m.png"], 1, "would overwrite an input"),
        ("pm", ["p.png", "m.png", "--backend", "tpu"], 2, "backend 'tpu' is not available"),
        ("pm", ["p.png", "m.png", "--device", "tpu"], 2, "device 'tpu' is not valid"),
        ("pm", ["p.png", "m.png", "--format", "gif"], 2, "format 'gif' is not supported"),
        ("pm", ["p.png", "m.png", "--strength", "0"], 2, "strength must be in (0, 1]"),
        ("pm", ["p.png", "m.png", "--seed", "-5"], 2, "seed must be"),
        ("pm", ["p.png", "m.png", "--model", "nowhere/none", "--offline"], 1, "cannot load model"),
        ("pm", ["p.png", "m.png", "--model", "./missing.safetensors"], 1, "no such file or folder"),
        ("pm", ["p.png", "m.png", "-o", "p.png/x.png"], 1, "is not a folder"),
        ("pm", ["p.png", "m.png", "-o", "dir/sub/x.bmpx"], 1, "unknown image suffix"),
    ],
)
def test_errors_are_one_line(tmp_path, pixel_file, monkeypatch, setup, args, code, match):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    if "p" in setup:
        write_photo(tmp_path / "p.png")
    if "m" in setup:
        write_mask(tmp_path / "m.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["erase", *args, "-q"] + ([] if "--model" in args else ["--model", str(pixel_file)])
    result = runner.invoke(app, argv)
    assert_one_line_error(result, code, match)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "hf") == before, "nothing written"


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("garbage", "not an image file"),
        ("truncated", "cannot be decoded"),
        ("aspect", "aspect ratios differ"),
        ("full", "covers the whole image"),
    ],
)
def test_per_image_errors_fail_the_run_without_output(tmp_path, pixel_file, kind, match):
    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png")
    if kind == "garbage":
        (tmp_path / "p.png").write_bytes(b"not a png at all")
    elif kind == "truncated":
        data = (tmp_path / "p.png").read_bytes()
        (tmp_path / "p.png").write_bytes(data[: len(data) // 2])
    elif kind == "aspect":
        write_mask(tmp_path / "m.png", 30, 30)
    else:
        Image.fromarray(np.full((36, 44), 255, np.uint8)).save(tmp_path / "m.png")
    result = erase_cli(tmp_path / "p.png", tmp_path / "m.png", model=pixel_file)
    assert_one_line_error(result, 1, match)
    assert not (tmp_path / "p.erased.png").exists()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=120))
def test_hypothesis_garbage_image_is_one_line_error(tmp_path, pixel_file, data):
    (tmp_path / "g.png").write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    write_mask(tmp_path / "m.png")
    result = erase_cli(tmp_path / "g.png", tmp_path / "m.png", model=pixel_file)
    assert_one_line_error(result, 1, "g.png")
    assert not (tmp_path / "g.erased.png").exists()


def test_failure_while_writing_leaves_no_partial_file(tmp_path, pixel_file, monkeypatch):
    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pio.os, "replace", disk_full)
    result = erase_cli(tmp_path / "p.png", tmp_path / "m.png", model=pixel_file)
    assert_one_line_error(result, 1, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "p.png"]


def test_interrupt_leaves_nothing(tmp_path, pixel_file, monkeypatch):
    erase_module = importlib.import_module("eradiff.pipeline.erase")  # the package re-exports the function

    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(erase_module, "erase", interrupted)
    result = erase_cli(tmp_path / "p.png", tmp_path / "m.png", model=pixel_file)
    assert_one_line_error(result, 130, "interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "p.png"]


def test_default_model_error_is_one_line(tmp_path, monkeypatch):
    import eradiff.models.loading as loading

    monkeypatch.setattr(loading, "DEFAULT_MODEL_PATH", tmp_path / "none.safetensors")
    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png")
    result = runner.invoke(app, ["erase", str(tmp_path / "p.png"), str(tmp_path / "m.png")])
    assert_one_line_error(result, 1, "not shipped yet")


def test_help_lists_the_options():
    result = runner.invoke(app, ["erase", "--help"])
    assert result.exit_code == 0
    for option in ("--model", "--steps", "--strength", "--seed", "--no-sra", "--device", "--offline", "--json",
                   "--compare", "--format", "--backend", "--dilate", "--prompt", "--guidance"):  # fmt: skip
        assert option in result.stdout


def test_output_file_permissions_follow_umask(tmp_path, pixel_file):
    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png")
    assert erase_cli(tmp_path / "p.png", tmp_path / "m.png", model=pixel_file).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p.erased.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_empty_mask_on_a_jpeg_copies_the_file_and_says_copied(tmp_path, pixel_file):
    """Nothing to erase: the output is the input file byte for byte (no JPEG re-encoding)."""
    write_photo(tmp_path / "p.jpg")
    Image.fromarray(np.zeros((36, 44), np.uint8)).save(tmp_path / "m.png")
    result = runner.invoke(app, ["erase", str(tmp_path / "p.jpg"), str(tmp_path / "m.png"), "--model",
                                 str(pixel_file), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "p.erased.jpg").read_bytes() == (tmp_path / "p.jpg").read_bytes()
    report = json.loads(result.stdout)
    assert report["images"][0]["status"] == "copied" and report["summary"]["copied"] == 1
    assert "copied p.jpg unchanged" in result.stderr and "erased" not in result.stderr.replace("p.erased.jpg", "")


def test_a_failed_image_is_one_line_without_quiet(tmp_path, pixel_file):
    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png", 30, 30)
    result = runner.invoke(app, ["erase", str(tmp_path / "p.png"), str(tmp_path / "m.png"), "--model",
                                 str(pixel_file), "--steps", "1"])  # fmt: skip
    assert_one_line_error(result, 1, "aspect ratios differ")


def test_a_batch_prints_each_error_once(tmp_path, pixel_file):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    for stem in ("a", "b"):
        write_photo(tmp_path / "imgs" / f"{stem}.png", seed=ord(stem))
    write_mask(tmp_path / "masks" / "a.png")
    result = runner.invoke(app, ["erase", str(tmp_path / "imgs"), str(tmp_path / "masks"), "--model",
                                 str(pixel_file), "--steps", "1"])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.count("no mask named b.*") == 1, result.stderr
    assert "2 images: 1 erased, 1 failed" in result.stderr


def test_hub_id_that_cannot_be_reached_fails_at_once_in_one_line(tmp_path):
    """No retries: one probe of the hub, then one line (the hub here is a closed local port)."""
    import socket
    import subprocess
    import sys
    import time

    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "eradiff.cli", "erase", str(tmp_path / "p.png"),
                          str(tmp_path / "m.png"), "--model", "some-owner/some-model"], capture_output=True,
                         text=True, env=env, timeout=120)  # fmt: skip
    seconds = time.monotonic() - t0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert (
        lines[0].startswith("error: model 'some-owner/some-model': the Hugging Face hub")
        and "cannot be reached" in lines[0]
    )
    assert seconds < 20, seconds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "p.png"]


def test_hub_id_in_the_cache_loads_from_it_when_the_hub_cannot_be_reached(tmp_path, sd2_folder):
    import shutil
    import socket
    import subprocess
    import sys

    write_photo(tmp_path / "p.png", 30, 30)
    write_mask(tmp_path / "m.png", 30, 30, (8, 22, 8, 22))
    repo = tmp_path / "hf" / "hub" / "models--some-owner--tiny-sd2"
    revision = "0" * 40
    shutil.copytree(sd2_folder, repo / "snapshots" / revision, ignore=shutil.ignore_patterns(".done"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-m", "eradiff.cli", "erase", str(tmp_path / "p.png"),
                          str(tmp_path / "m.png"), "--model", "some-owner/tiny-sd2", "--steps", "1", "--json", "-q"],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["model"]["family"] == "latent"
    assert (tmp_path / "p.erased.png").is_file()


def test_output_without_suffix_is_refused_and_help_says_folders_are_created(tmp_path, pixel_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_photo(tmp_path / "p.jpg")
    write_mask(tmp_path / "m.png")
    result = runner.invoke(app, ["erase", "p.jpg", "m.png", "-o", "result", "--model", str(pixel_file), "-q"])
    assert_one_line_error(result, 1, "'result' has no image suffix")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "p.jpg"]
    assert runner.invoke(app, ["erase", "p.jpg", "m.png", "-o", "new/sub/", "--model", str(pixel_file),
                               "--steps", "1", "-q"]).exit_code == 0  # fmt: skip
    assert (tmp_path / "new" / "sub" / "p.jpg").is_file()
    help_text = " ".join(runner.invoke(app, ["erase", "--help"]).stdout.replace("│", " ").split())
    assert "missing folders are created" in help_text


def test_sampler_option_reaches_the_pipeline(tmp_path, pixel_file):
    write_photo(tmp_path / "p.png")
    write_mask(tmp_path / "m.png")
    outputs = {}
    for sampler in ("ddim", "dpmpp-2m"):
        out = tmp_path / f"{sampler}.png"
        result = erase_cli(tmp_path / "p.png", tmp_path / "m.png", "--sampler", sampler, "--steps", "3", "--json",
                           "-o", out, model=pixel_file)  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["options"]["sampler"] == sampler
        outputs[sampler] = np.asarray(Image.open(out))
    assert not np.array_equal(outputs["ddim"], outputs["dpmpp-2m"])


@pytest.mark.parametrize("method", ["telea", "patchmatch"])
def test_model_can_name_a_classical_fill(tmp_path, method):
    image = write_photo(tmp_path / "p.png")
    mask = write_mask(tmp_path / "m.png")
    result = runner.invoke(app, ["erase", str(tmp_path / "p.png"), str(tmp_path / "m.png"), "--model", method,
                                 "--json", "-q", "-o", str(tmp_path / "out.png")])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"]["family"] == "classical" and report["model"]["name"] == method
    out = np.asarray(Image.open(tmp_path / "out.png"))
    grown = dilate_mask(mask, 7)
    assert np.array_equal(out[~grown], image[~grown]) and not np.array_equal(out[mask], image[mask])
