"""Real multi-process training: two CPU processes (accelerate launch, gloo) against one process.

``train.batch_size`` is the global batch and every sample's t, γ, ε is seeded by its global index,
so two processes with half the batch each must reach the same parameters as one process (up to
float summation order in the gradient all-reduce), and only the main process writes.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from eradiff.train.config import load_config
from eradiff.train.loop import train

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny-test.yaml"
OVERRIDES = [
    "log.progress=false",
    "log.sample_every=2",
    "log.sample_steps=2",
    "log.tensorboard=false",
    "log.every=1",
    "train.max_steps=4",
    "checkpoint.every=2",
    "checkpoint.keep_last=5",
    "data.size=24",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    two = tmp_path / "two"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "eradiff.cli", "train", "--config", str(TINY), "--output", str(two),
        *[a for o in OVERRIDES for a in ("--set", o)],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert json.loads((two / "run.json").read_text())["processes"] == 2

    torch.set_num_threads(1)
    one = tmp_path / "one"
    train(load_config(TINY, [*OVERRIDES, f"output_dir={one}"]))

    for run in (one, two):
        names = sorted(p.name for p in run.iterdir())
        assert names == ["ckpt-00000002", "ckpt-00000004", "config.yaml", "metrics.jsonl", "model.safetensors",
                         "run.json", "samples"], names  # fmt: skip
        assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000002.png", "step-00000004.png"]
        steps = [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4]  # one writer: no duplicated rows
    state = json.loads((two / "ckpt-00000004" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    for name in ("unet.safetensors", "ema.safetensors"):
        a = load_file(str(one / "ckpt-00000004" / name))
        b = load_file(str(two / "ckpt-00000004" / name))
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0, msg=k)
    loss_one = [json.loads(r)["loss"] for r in (one / "metrics.jsonl").read_text().splitlines()]
    loss_two = [json.loads(r)["loss"] for r in (two / "metrics.jsonl").read_text().splitlines()]
    assert loss_one == pytest.approx(loss_two, rel=1e-4)
