"""``benchmarks/paired.py``: the paired bootstrap behind the paired-difference tables of RESULTS."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("paired", ROOT / "benchmarks" / "paired.py")
paired_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired_mod)


def _rows(values: list[float], leaked: list[float]) -> list[dict[str, float]]:
    return [{"lpips_vgg_box": v, "psnr_box": 30 - v, "leaked": k} for v, k in zip(values, leaked, strict=True)]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40),
    st.floats(-0.5, 0.5),
)
def test_a_constant_shift_is_the_mean_and_the_whole_interval(values: list[float], c: float) -> None:
    leaked = [float(i % 2) for i in range(len(values))]
    r = paired_mod.paired(_rows([v + c for v in values], leaked), _rows(values, leaked), draws=200)
    for key, sign in (("lpips_vgg_box", 1), ("psnr_box", -1)):
        assert r[key]["mean"] == pytest.approx(sign * c, abs=1e-9)
        assert r[key]["lo"] == pytest.approx(sign * c, abs=1e-9)
        assert r[key]["hi"] == pytest.approx(sign * c, abs=1e-9)


def test_interval_brackets_the_mean_and_the_leak_ratio() -> None:
    rng = np.random.default_rng(0)
    b = rng.uniform(0.1, 0.3, 200)
    a = b - 0.01 + rng.normal(0, 0.02, 200)
    la = (rng.uniform(size=200) < 0.25).astype(float)
    lb = (rng.uniform(size=200) < 0.75).astype(float)
    r = paired_mod.paired(_rows(list(a), list(la)), _rows(list(b), list(lb)))
    v = r["lpips_vgg_box"]
    assert v["lo"] < v["mean"] < v["hi"] < 0  # resolved: A lower
    leak = r["leak_rate"]
    assert leak["ratio"] == pytest.approx(la.mean() / lb.mean())
    assert leak["lo"] < leak["ratio"] < leak["hi"] < 1


def test_unequal_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same, non-zero number"):
        paired_mod.paired(_rows([0.1, 0.2], [0, 1]), _rows([0.1], [0]))


def test_cli_names_a_missing_method_in_one_line(tmp_path: Path) -> None:
    report = {
        "meta": {"triples": "t", "count": 2},
        "methods": [
            {"name": "x", "per_image": _rows([0.1, 0.2], [0, 1])},
            {"name": "y", "per_image": _rows([0.2, 0.3], [1, 1])},
        ],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    script = str(ROOT / "benchmarks" / "paired.py")
    bad = subprocess.run([sys.executable, script, f"{path}:z", f"{path}:y"], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error: no method 'z'")
    assert "Traceback" not in bad.stderr
    ok = subprocess.run([sys.executable, script, f"{path}:x", f"{path}:y", "--json", str(tmp_path / "o.json")],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    out = json.loads((tmp_path / "o.json").read_text())["result"]
    assert out["lpips_vgg_box"]["mean"] == pytest.approx(-0.1)
    assert out["leak_rate"]["ratio"] == pytest.approx(0.5)
