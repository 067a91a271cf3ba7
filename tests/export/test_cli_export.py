"""``eradiff export`` on a tiny pixel checkpoint (the same path the built-in default takes)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from eradiff.cli import app
from eradiff.export.onnx import read_metadata
from eradiff.export.trt import trt_unavailable_reason
from eradiff.models.loading import save_pixel_model

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, pixel_model):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_pixel_model(pixel_model, path, dtype=torch.float32)
    return path


def test_export_onnx_writes_a_checked_graph_and_a_json_report(checkpoint, tmp_path):
    out = tmp_path / "tiny.onnx"
    res = runner.invoke(app, ["export", "--onnx", str(out), "--model", str(checkpoint), "--opset", "17", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)["onnx"]
    assert report["flavour"] == "portable" and report["opset"] == 17
    assert report["graph"]["softmax_after_add"] == report["self_attention_layers"] > 0
    assert read_metadata(out)["eradiff.family"] == "pixel"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export"], None),  # no arguments: help
        (["export", "--onnx", "x.onnx", "--flavour", "fast"], "flavour 'fast' is not valid"),
        (["export", "--onnx", "x.txt", "--model", "CKPT"], "must end in .onnx"),
        (["export", "--onnx", "x.onnx", "--min", "256"], "apply to --trt only"),
        (["export", "--onnx", "x.onnx", "--model", "CKPT", "--opset", "12"], "opset=12 is not valid"),
    ],
)
def test_invalid_options_exit_2_with_one_line(checkpoint, tmp_path, argv, message):
    argv = [a.replace("CKPT", str(checkpoint)).replace("x.", str(tmp_path / "x.")) for a in argv]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    if message is not None:
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], res.stderr
        assert "Traceback" not in res.output


def test_missing_default_model_is_one_line(tmp_path, monkeypatch):
    import eradiff.models.loading as loading

    monkeypatch.setattr(loading, "DEFAULT_MODEL_PATH", tmp_path / "absent.safetensors")
    res = runner.invoke(app, ["export", "--onnx", str(tmp_path / "d.onnx")])
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: the built-in default model is not shipped yet")
    assert "Traceback" not in res.output


@pytest.mark.skipif(trt_unavailable_reason() is None, reason="TensorRT and a CUDA GPU are present")
def test_export_trt_without_tensorrt_exits_2_with_one_line(checkpoint, tmp_path):
    res = runner.invoke(app, ["export", "--trt", str(tmp_path / "x.plan"), "--model", str(checkpoint)])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert ("TensorRT" in lines[0]) or ("CUDA" in lines[0])
    assert not (tmp_path / "x.plan").exists()


def _write_pair(folder):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) + rng.integers(0, 20, (48, 64, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / "photo.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[12:30, 20:44] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return folder / "photo.png", folder / "mask.png"


def test_erase_backend_onnx_gives_the_torch_image(checkpoint, tmp_path):
    """`eradiff erase --backend onnx` on an exported file equals `--backend torch` on the checkpoint
    (tolerance: see test_ort_backend — at most one uint8 level, on at most 0.1 % of values)."""
    import numpy as np
    from PIL import Image

    onnx_file = tmp_path / "tiny.onnx"
    assert (
        runner.invoke(app, ["export", "--onnx", str(onnx_file), "--model", str(checkpoint), "--opset", "17"]).exit_code
        == 0
    )
    photo, mask = _write_pair(tmp_path)
    common = [str(photo), str(mask), "--steps", "3", "--seed", "4", "--device", "cpu", "-q"]
    res_t = runner.invoke(app, ["erase", *common, "-o", str(tmp_path / "t.png"), "--model", str(checkpoint)])
    res_o = runner.invoke(app, ["erase", *common, "-o", str(tmp_path / "o.png"), "--model", str(onnx_file),
                                "--backend", "onnx", "--json"])  # fmt: skip
    assert res_t.exit_code == 0, res_t.output
    assert res_o.exit_code == 0, res_o.output
    assert json.loads(res_o.stdout)["model"]["backend"] == "onnx"
    a = np.asarray(Image.open(tmp_path / "t.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "o.png")).astype(int)
    assert np.abs(a - b).max() <= 1 and (a != b).mean() <= 1e-3


def test_erase_backend_errors_are_one_line(tmp_path):
    photo, mask = _write_pair(tmp_path)
    res = runner.invoke(app, ["erase", str(photo), str(mask), "--backend", "onnx", "-q"])
    assert res.exit_code == 2 and "--backend onnx needs --model FILE.onnx" in res.stderr
    res = runner.invoke(
        app, ["erase", str(photo), str(mask), "--backend", "onnx", "--model", str(tmp_path / "no.onnx")]
    )
    assert res.exit_code == 1 and "no such file" in res.stderr and "Traceback" not in res.output
    if trt_unavailable_reason() is not None:
        plan = tmp_path / "m.plan"
        plan.write_bytes(b"\0")
        (tmp_path / "m.plan.json").write_text(json.dumps({"metadata": {}}))
        res = runner.invoke(app, ["erase", str(photo), str(mask), "--backend", "trt", "--model", str(plan), "-q"])
        assert res.exit_code == 2, res.output
        errors = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and ("TensorRT" in errors[0] or "CUDA" in errors[0])
