"""`eradiff serve` on the command line: one-line errors with exit codes, and a real start and stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from eradiff.cli import app
from eradiff.testing import assert_one_line_error, cached, tiny_pixel_file

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
runner = CliRunner()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return cached(tmp_path_factory.getbasetemp() / "tiny-pixel.safetensors", tiny_pixel_file)


def test_bad_options_exit_2(model_file):
    assert_one_line_error(runner.invoke(app, ["serve", "--backend", "tf"]), 2, "backend 'tf' is not available")
    assert_one_line_error(runner.invoke(app, ["serve", "--device", "tpu"]), 2, "device 'tpu' is not valid")
    assert_one_line_error(runner.invoke(app, ["serve", "--port", "70000"]), 2, "port must be in 0–65535")
    assert_one_line_error(runner.invoke(app, ["serve", "--queue", "0"]), 2, "queue must be ≥ 1, got 0")
    assert_one_line_error(runner.invoke(app, ["serve", "--backend", "onnx"]), 2, "needs --model FILE.onnx")


def test_unloadable_model_exits_1(tmp_path):
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "missing.safetensors")])
    assert_one_line_error(result, 1, "no such file or folder")


def test_busy_port_exits_1(model_file):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["serve", "--model", str(model_file), "--port", str(port)])
    assert_one_line_error(result, 1, f"cannot listen on 127.0.0.1:{port}")
    assert "pass another --port" in result.stderr


def test_serve_prints_the_url_answers_and_stops_on_ctrl_c(model_file):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eradiff.cli", "serve", "--model", str(model_file), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.fullmatch(r"eradiff serve: (http://127\.0\.0\.1:(\d+)/)\n", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = found.group(1)
        assert "tiny-pixel" in proc.stdout.readline()
        with urllib.request.urlopen(url + "api/health", timeout=30) as r:
            assert json.load(r)["status"] == "ok"
        with urllib.request.urlopen(url, timeout=30) as r:
            assert b"eradiff" in r.read()
        request = urllib.request.Request(url + "api/health", headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        assert info.value.code == 400  # DNS-rebinding guard on a loopback address
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
