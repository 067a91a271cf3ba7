"""The `eradiff` program itself: --version and -h, OpenMP waiting and --threads, checks before torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import eradiff
from eradiff.cli import app
from eradiff.cli.threads import default_threads, passive_wait_default, usable_cores

runner = CliRunner()
COMPUTING = ("erase", "serve", "eval", "export")


def run_cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m eradiff.cli ARGV`` in a fresh process (what a user's shell runs)."""
    return subprocess.run([sys.executable, "-m", "eradiff.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=timeout)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the OpenMP variables the test runner may carry."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    return {**env, **extra}


def test_version_and_short_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"eradiff {eradiff.__version__}"
    for argv in (["-h"], ["erase", "-h"], ["serve", "-h"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, (argv, result.output)
        assert "Usage:" in result.stdout and "--help" in result.stdout


@pytest.mark.parametrize("command", COMPUTING)
def test_computing_commands_take_threads(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "--threads" in text and "cores this process may use" in text and "OMP_WAIT_POLICY=PASSIVE" in text


def test_passive_waiting_is_a_default_the_user_can_override(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_wait_default()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_wait_default()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_default_threads_follow_the_environment_then_the_affinity(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    for value in ("", "0", "four"):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert default_threads() == usable_cores()
    if hasattr(os, "sched_getaffinity"):
        assert usable_cores() == len(os.sched_getaffinity(0))


def test_the_command_line_imports_no_torch_before_a_command_runs():
    code = "import sys, eradiff.cli; print(sorted(m for m in ('torch', 'diffusers', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_erase_sets_passive_waiting_and_threads_in_a_fresh_process(tmp_path, pixel_file):
    """The JSON report says what torch's pool ran with: the defaults, then the user's choices."""
    a = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "p.png")
    m = np.zeros((24, 32), np.uint8)
    m[8:16, 8:20] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    argv = ["erase", str(tmp_path / "p.png"), str(tmp_path / "m.png"), "--model", str(pixel_file), "--steps", "1",
            "--json", "-q", "-o", str(tmp_path / "out.png")]  # fmt: skip
    default = run_cli(*argv, env=clean_env())
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["runtime"] == {"threads": usable_cores(), "omp_wait_policy": "PASSIVE"}
    chosen = run_cli(*argv, "--threads", "1", env=clean_env(OMP_WAIT_POLICY="ACTIVE"))
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout)["runtime"] == {"threads": 1, "omp_wait_policy": "ACTIVE"}


def test_bad_paths_and_options_fail_before_torch_is_imported(tmp_path):
    """Each case fails with its one-line error in a process that never imported torch."""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "p.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.png")
    cases = [
        (["nope.png", "m.png"], 1, "no such file or folder"),
        (["p.png", "nope.png"], 1, "no such file or folder"),
        (["p.png", "m.png", "--format", "gif"], 2, "format 'gif' is not supported"),
        (["p.png", "m.png", "--device", "tpu"], 2, "device 'tpu' is not valid"),
        (["p.png", "m.png", "--threads", "0"], 2, "threads must be ≥ 1"),
        (["p.png", "m.png", "--seed", "-5"], 2, "seed must be"),
        (["p.png", "m.png", "-o", "noext"], 1, "has no image suffix"),
        (["p.png", "m.png", "-o", "x.bmpx"], 1, "unknown image suffix"),
        (["p.png", "m.png", "--model", "./missing.safetensors"], 1, "no such file or folder"),
        (["p.png", "m.png", "--backend", "onnx"], 2, "needs --model FILE.onnx"),
        (["p.png", "m.png", "--steps", "0"], 2, "steps must be ≥ 1"),
        (["p.png", "m.png", "--strength", "1.5"], 2, "strength must be in (0, 1]"),
        (["p.png", "m.png", "--init", "lama"], 2, "init='lama' is not valid"),
        (["p.png", "m.png", "--sampler", "euler"], 2, "sampler='euler' is not valid"),
        (["p.png", "m.png", "--sampler", "dpmpp-2m", "--eta", "0.5"], 2, "needs sampler='ddim'"),
    ]
    script = (
        "import json, sys\n"
        "from eradiff.cli import main\n"
        "sys.argv = ['eradiff', 'erase', *json.loads(sys.argv[1])]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(json.dumps([code, 'torch' in sys.modules]))\n"
    )
    for argv, code, match in cases:
        out = subprocess.run([sys.executable, "-c", script, json.dumps(argv)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)  # fmt: skip
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], (argv, out.stderr)
        assert json.loads(out.stdout.splitlines()[-1]) == [code, False], (argv, out.stdout)
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["m.png", "p.png"]
