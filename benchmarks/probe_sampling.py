"""Is the grain a sampling problem or a denoiser problem? (diagnostic, TRAIN split only)

Runs a model with sampling variants over pasted-object triples synthesized (seed 123) from the
**training** photos and stamps — never the validation split, so nothing here tunes the reported
results — and prints LPIPS-alex / DISTS / PSNR inside the mask box next to OpenCV Telea:

- the default chain (20 DDIM steps from pure noise);
- the chain cut short: at the first τ_i ≤ τ_end the DDIM step jumps straight to x̂_0 (the
  model's posterior-mean estimate at τ_end, free of the noise the last steps should remove);
- strength < 1 from the Telea fill (``init=telea``): Telea's output noised to a low level and
  denoised by the model. A model that denoises well can only improve on its own starting point.

Writes benchmarks/results/probe_sampling.json (or ``--out``).

    python benchmarks/probe_sampling.py [--model SPEC] [--count 24] [--out JSON]
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default", help="model spec for eradiff eval (default: the built-in model)")
    p.add_argument("--count", type=int, default=24, help="training-split triples")
    p.add_argument("--manifest", default=str(ROOT / "data" / "debian" / "manifest.json"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe_sampling.json"))
    args = p.parse_args()
    torch.set_num_threads(1)

    import eradiff.pipeline.sampler as sampler
    from eradiff.eval.methods import build_method
    from eradiff.eval.run import Metrics, image_metrics
    from eradiff.eval.triples import synthesize_triples
    from eradiff.train.sources import CutoutSource

    full_chain = sampler.sampling_timesteps

    def cut_chain(schedule, steps, strength, *, tau_end):  # the DDIM step at the first τ_i ≤ τ_end lands on x̂_0
        tau, prev = full_chain(schedule, steps, strength)
        if tau_end is None:
            return tau, prev
        below = (tau <= tau_end).nonzero()
        last = int(below[0]) if len(below) else len(tau) - 1
        tau, prev = tau[: last + 1].clone(), prev[: last + 1].clone()
        prev[-1] = -1
        return tau, prev

    source = CutoutSource.from_manifest(args.manifest, split="train")
    triples = synthesize_triples(source, count=args.count, seed=123)
    metrics = Metrics.load(set_level=False)
    m = args.model
    variants = [
        ("telea", "telea", None),
        ("20 steps (default)", f"{m}:steps=20", None),
        ("20 steps, x̂_0 at τ ≤ 100", f"{m}:steps=20", 100),
        ("20 steps, x̂_0 at τ ≤ 300", f"{m}:steps=20", 300),
        ("20 steps, x̂_0 at τ ≤ 500", f"{m}:steps=20", 500),
        ("1 step (x̂_0 from pure noise)", f"{m}:steps=1", None),
        ("from Telea, strength 0.6", f"{m}:steps=20,strength=0.6,init=telea", None),
        ("from Telea, strength 0.2", f"{m}:steps=20,strength=0.2,init=telea", None),
    ]
    cache: dict = {}
    rows = []
    print("| variant | LPIPS-a box | DISTS box | PSNR box |\n| --- | ---: | ---: | ---: |")
    for label, spec, end in variants:
        sampler.sampling_timesteps = functools.partial(cut_chain, tau_end=end)
        method = build_method(spec, model_cache=cache)
        per = [image_metrics(metrics, method(t.image, t.mask), t) for t in triples]
        row = {
            "variant": label,
            "spec": spec,
            "tau_end": end,
            "lpips_alex_box": float(np.mean([r["lpips_alex_box"] for r in per])),
            "dists_box": float(np.mean([r["dists_box"] for r in per])),
            "psnr_box": float(np.mean([r["psnr_box"] for r in per])),
        }
        rows.append(row)
        print(f"| {label} | {row['lpips_alex_box']:.4f} | {row['dists_box']:.4f} | {row['psnr_box']:.2f} |", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"model": m, "split": "train", "seed": 123, "count": args.count, "rows": rows}
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
