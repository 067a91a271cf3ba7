"""Is the built-in model's one-step x̂_0 better than the classical prefill it refines? (MSE, val pairs)

Issue 12's check, at the model's own resolution: validation pairs synthesized from the held-out
photos and stamps exactly as training pairs are (128 px crops, ``data.synthesis`` of the stage-2
config), the model's prefill (PatchMatch for the shipped model) computed on each, and the model's
one-step x̂_0 from pure noise (τ = 999, re-imposition as in ``erase``). Reports the mean squared
error inside the hole (pixels in [−1, 1]) of both, the ratio with a 95 % paired-bootstrap interval
and the share of pairs where the model is better; PASS when the interval lies below 1. Prints a
table and writes ``benchmarks/results/one_step_vs_prefill.json``.

    python benchmarks/one_step_vs_prefill.py [--model PATH] [--pairs 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from eradiff.models.loading import load_model
from eradiff.pipeline.erase import EraseOptions, erase_tensors
from eradiff.train.config import load_config
from eradiff.train.data import PairDataset
from eradiff.train.sources import CutoutSource

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the built-in model)")
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--manifest", default=str(ROOT / "data" / "debian" / "manifest.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    synthesis = load_config(ROOT / "configs" / "default-stage2.yaml").data.synthesis_config()
    source = CutoutSource.from_manifest(args.manifest, split="val")
    pairs = PairDataset(source, synthesis, seed=10_000 + args.seed, length=args.pairs, fill=model.fill)
    mse_model, mse_fill = [], []
    for i in range(args.pairs):
        item = pairs[i]
        M = item["mask"][0] > 0.5
        x_obj, x_ori, fill = item["x_obj"][None], item["x_ori"][None], item["fill"][None]
        gen = [torch.Generator().manual_seed(args.seed * 100_003 + i)]
        out = erase_tensors(model, x_obj, M[None], EraseOptions(steps=1), generators=gen)
        hole = M[None, None].expand_as(x_ori)
        mse_model.append(float(((out.clamp(-1, 1) - x_ori)[hole] ** 2).mean()))
        mse_fill.append(float(((fill - x_ori)[hole] ** 2).mean()))
    a, b = np.array(mse_model), np.array(mse_fill)
    idx = np.random.default_rng(0).integers(0, len(a), size=(2000, len(a)))
    ratios = a[idx].mean(1) / b[idx].mean(1)
    lo, hi = float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))
    result = {
        "model": args.model or "default", "prefill": model.fill, "pairs": len(a), "seed": args.seed,
        "crop_size": synthesis.crop_size, "mse_model": float(a.mean()), "mse_prefill": float(b.mean()),
        "ratio": float(a.mean() / b.mean()), "ratio_ci95": [lo, hi],
        "model_better_share": float((a < b).mean()), "passed": hi < 1.0,
    }  # fmt: skip
    print("| hole MSE ([−1, 1] scale) | value |\n| --- | ---: |")
    print(f"| one-step x̂_0 | {a.mean():.4e} |\n| {model.fill} prefill | {b.mean():.4e} |")
    verdict = "PASS" if result["passed"] else "FAIL"
    share = 100 * (a < b).mean()
    print(f"ratio {result['ratio']:.3f} (95 % CI {lo:.3f}–{hi:.3f}); model better on {share:.0f} %: {verdict}")
    out_file = ROOT / "benchmarks" / "results" / "one_step_vs_prefill.json"
    out_file.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
