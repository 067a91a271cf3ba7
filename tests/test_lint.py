"""The code base is ruff-clean (lint and format), so CI catches style drift with the tests."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    return [exe]


def test_ruff_check_is_clean():
    res = subprocess.run(
        [*_ruff(), "check", "eradiff", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format_is_clean():
    res = subprocess.run(
        [*_ruff(), "format", "--check", "eradiff", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_core_imports_only_torch_and_jaxtyping():
    code = (
        "import sys, eradiff.core; "
        "bad = [m for m in ('diffusers', 'accelerate', 'typer', 'onnx', 'PIL', 'cv2', 'numpy.random') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "", f"eradiff.core pulled in: {res.stdout.strip()}"
