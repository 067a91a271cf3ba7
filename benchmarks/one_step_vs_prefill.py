"""Is the built-in model's one-step x̂_0 better than the classical prefill it is a residual over? (MSE)

Issue 12's check, on an ``eradiff eval`` report that holds the model (run with ``dilate=0`` as
``eradiff eval`` does, so every method changes the same pixels) and the classical method the model
fills from (PatchMatch for the shipped model). Inside the mask's box both methods leave the
pixels outside the mask equal to the ground truth, so the box MSE compares the holes;
it is recovered per triple from the box PSNR (MSE ∝ 10^(−PSNR/10)). Prints the mean MSE of
each, the ratio with a 95 % paired-bootstrap interval, the share of triples where the model is
better, and writes JSON.

    python benchmarks/one_step_vs_prefill.py REPORT.json MODEL_NAME PREFILL_NAME [OUT.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(report: str, model: str, prefill: str, out: str | None = None) -> dict:
    methods = {m["name"]: m for m in json.loads(Path(report).read_text())["methods"]}
    missing = [n for n in (model, prefill) if n not in methods]
    if missing:
        raise SystemExit(f"error: {report} has no method {missing[0]!r}; it has {sorted(methods)}")

    def mse(name: str) -> np.ndarray:
        return np.array([10 ** (-row["psnr_box"] / 10) for row in methods[name]["per_image"]])

    a, b = mse(model), mse(prefill)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(a), size=(2000, len(a)))
    ratios = a[idx].mean(1) / b[idx].mean(1)
    result = {
        "report": report, "model": model, "prefill": prefill, "triples": len(a),
        "mse_model": float(a.mean()), "mse_prefill": float(b.mean()),
        "ratio": float(a.mean() / b.mean()),
        "ratio_ci95": [float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))],
        "model_better_share": float((a < b).mean()),
        "passed": bool(np.quantile(ratios, 0.975) < 1.0),
    }  # fmt: skip
    print(f"| {'method':<14} | box MSE (PSNR scale) |\n| --- | ---: |")
    print(f"| {model:<14} | {result['mse_model']:.3e} |\n| {prefill:<14} | {result['mse_prefill']:.3e} |")
    lo, hi = result["ratio_ci95"]
    verdict = "PASS" if result["passed"] else "FAIL"
    share = 100 * result["model_better_share"]
    print(f"ratio {result['ratio']:.3f} (95 % CI {lo:.3f}–{hi:.3f}); model better: {share:.0f} % → {verdict}")
    if out:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(*sys.argv[1:5])
