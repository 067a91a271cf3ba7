"""A short run of ``benchmarks/bench_serve.py``: concurrent clients against a real uvicorn (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from serve_helpers import ROOT

pytest.importorskip("httpx", reason="the load test's clients use httpx")


@pytest.mark.slow
def test_short_load_run_loses_nothing_and_keeps_memory_stable(tmp_path):
    out = tmp_path / "bench_serve.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), "--clients", "6", "--seconds", "6",
           "--rounds", "2", "--queue", "2", "--out", str(out)]  # fmt: skip
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    )
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads(out.read_text())
    assert result["passed"] and all(result["checks"].values()), result["checks"]
    assert sum(r["images"] for r in result["rounds"]) > 0
    assert sum(r["busy_503"] for r in result["rounds"]) > 0
