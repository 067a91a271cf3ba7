"""`eradiff train`: option handling, one-line errors with exit codes, resume from a checkpoint folder."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eradiff.cli import app

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny-test.yaml"
QUIET = ["--set", "log.progress=false", "--set", "log.sample_every=0", "--set", "log.tensorboard=false"]


def _run(*args: str):
    return CliRunner().invoke(app, ["train", *args])


def test_help_lists_the_options():
    res = _run("--help")
    assert res.exit_code == 0
    for option in ("--config", "--resume", "--output", "--max-steps", "--set"):
        assert option in res.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        ([], 2, "error: --config is required"),
        (["--config", "nowhere.yaml"], 2, "error: cannot read config nowhere.yaml"),
        (["--config", str(TINY), "--set", "train.bach_size=2"], 2, "error: unknown key train.bach_size"),
        (["--config", str(TINY), "--set", "optim.lr"], 2, "error: --set expects key=value"),
        (["--config", str(TINY), "--resume", "/nonexistent/ckpt"], 1, "error: --resume /nonexistent/ckpt: no such"),
    ],
)
def test_errors_are_one_line_with_exit_codes(args, code, message):
    res = _run(*args)
    assert res.exit_code == code
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), res.stderr


def test_train_then_resume_from_a_checkpoint_folder_alone(tmp_path):
    run = tmp_path / "run"
    res = _run("--config", str(TINY), "--output", str(run), "--max-steps", "2", *QUIET, "--set", "checkpoint.every=1")
    assert res.exit_code == 0, res.stderr
    assert "trained to step 2" in res.stderr and str(run / "model.safetensors") in res.stderr
    # no --config, no --output: the checkpoint's own config.yaml and run folder are used
    res = _run("--resume", str(run / "ckpt-00000002"), "--max-steps", "3")
    assert res.exit_code == 0, res.stderr
    assert "trained to step 3" in res.stderr
    steps = [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3]  # log.every=5 in the tiny config: rows at the end of each call
    assert (run / "ckpt-00000003" / "state.json").is_file()
