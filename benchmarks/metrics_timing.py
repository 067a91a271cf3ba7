"""Time per image of every eradiff.metrics metric and classical baseline, at one resolution, in one run.

    python benchmarks/metrics_timing.py [--size 256] [--batch 4] [--repeats 3] [--out benchmarks/results]

Writes ``metrics_timing.json`` and ``metrics_timing.md``: seconds per image (best of ``repeats``
batches, after one warm-up) and the ratio to LPIPS-alex measured in the same run. Needs the metric
weights (``python -m eradiff.metrics.weights --fetch``). The numbers depend on the CPU and its load;
compare ratios, not seconds, across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from eradiff.baselines import inpaint_classical
from eradiff.metrics import (
    DISTS,
    LPIPS,
    InceptionFeatures,
    ObjectLeak,
    fid_from_features,
    kid_from_features,
    local_crops,
    psnr,
    ssim,
)


def _best_per_image(fn, n_images: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) / n_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    b, s = args.batch, args.size
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(b, 3, s, s, generator=g), torch.rand(b, 3, s, s, generator=g)
    mask = torch.zeros(b, s, s, dtype=torch.bool)
    mask[:, s // 4 : s // 2, s // 3 : 2 * s // 3] = True
    lpips_alex, lpips_vgg, dists, inception, leak = (
        LPIPS("alex"),
        LPIPS("vgg"),
        DISTS(),
        InceptionFeatures(),
        ObjectLeak(),
    )
    f1, f2 = torch.randn(1000, 2048, generator=g), torch.randn(1000, 2048, generator=g)
    image = (x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    mask_np = mask[0].numpy()

    rows: dict[str, float] = {}
    with torch.no_grad():
        rows["lpips_alex"] = _best_per_image(lambda: lpips_alex(x, y), b, args.repeats)
        rows["lpips_vgg"] = _best_per_image(lambda: lpips_vgg(x, y), b, args.repeats)
        rows["dists"] = _best_per_image(lambda: dists(x, y), b, args.repeats)
        rows["inception_features"] = _best_per_image(lambda: inception(x), b, args.repeats)
        rows["local_crops+inception"] = _best_per_image(lambda: inception(local_crops(x, mask)), b, args.repeats)
        rows["psnr"] = _best_per_image(lambda: psnr(x, y), b, args.repeats)
        rows["ssim"] = _best_per_image(lambda: ssim(x, y), b, args.repeats)
        rows["object_leak(lpips_alex)"] = _best_per_image(lambda: leak(x, y, x, mask), b, args.repeats)
    rows["fid_from_features(1000 vs 1000, d=2048), per call"] = _best_per_image(lambda: fid_from_features(f1, f2), 1, 1)
    rows["kid_from_features(1000 vs 1000, 100 subsets), per call"] = _best_per_image(
        lambda: kid_from_features(f1, f2, generator=torch.Generator().manual_seed(0)), 1, 1
    )
    for method in ("telea", "ns", "biharmonic", "patchmatch"):
        rows[f"inpaint_{method}"] = _best_per_image(
            lambda m=method: inpaint_classical(image, mask_np, method=m), 1, args.repeats
        )

    base = rows["lpips_alex"]
    result = {
        "size": s,
        "batch": b,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min": os.getloadavg()[0],
        "seconds_per_image": rows,
        "ratio_to_lpips_alex": {k: v / base for k, v in rows.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics_timing.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"| metric ({s}×{s}, batch {b}) | s / image | × LPIPS-alex |",
        "| --- | --- | --- |",
        *(f"| {k} | {v:.4f} | {v / base:.2f} |" for k, v in rows.items()),
    ]
    (args.out / "metrics_timing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
