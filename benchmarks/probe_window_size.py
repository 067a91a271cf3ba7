"""Which erase window size suits the built-in model? (validation triples, LPIPS/PSNR in the box)

The pixel model erases each mask region in a window resized so its longer side is the model's
native size (256 px): a large box is shrunk, filled, and scaled back up, losing detail. This
probe runs the same weights with native sizes (= crop triggers) N ∈ SIZES and reports the box
metrics of ``eradiff eval`` (no FID) and the time per image, as one table + JSON.

    python benchmarks/probe_window_size.py MODEL.safetensors TRIPLES_DIR [SIZES] [OUT.json]
"""

from __future__ import annotations

import json
import sys

from eradiff.eval.methods import ModelMethod
from eradiff.eval.run import Metrics, evaluate
from eradiff.eval.triples import load_triples
from eradiff.models.loading import load_model
from eradiff.options import EraseOptions


def main(path: str, triples_dir: str, sizes: str = "256,384,512", out: str | None = None) -> None:
    triples = load_triples(triples_dir)
    methods = []
    for n in (int(s) for s in sizes.split(",")):
        model = load_model(path)
        model.native_size = model.crop_trigger = n
        methods.append(ModelMethod(f"native {n}", model, EraseOptions(dilate=0, seed=0)))
    results = evaluate(methods, triples, metrics=Metrics.load(set_level=False), keep_outputs=0)
    keys = ("lpips_alex_box", "lpips_vgg_box", "dists_box", "psnr_box", "seconds")
    print("| window | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    rows = {}
    for r in results:
        rows[r.name] = {k: round(r.summary[k], 4) for k in keys}
        print(f"| {r.name} | " + " | ".join(f"{r.summary[k]:.4f}" for k in keys) + " |")
    if out:
        with open(out, "w") as f:
            json.dump({"model": path, "triples": triples_dir, "count": len(triples), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
