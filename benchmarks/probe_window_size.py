"""Which erase window size suits the built-in model? (validation triples, LPIPS/PSNR in the box)

The pixel model erases each mask region in a window resized so its longer side is the model's
native size (256 px): a large box is shrunk, filled, and scaled back up, losing detail. This
probe runs the same weights with native sizes (= crop triggers) N ∈ SIZES and reports the box
metrics of ``eradiff eval`` (no FID) and the time per image, as one table + JSON.

    python benchmarks/probe_window_size.py MODEL.safetensors TRIPLES_DIR [SIZES] [OUT.json] [--shrink-only]

``--shrink-only`` probes another window policy: a window is only ever shrunk to the native size,
never enlarged (a box smaller than N is erased at the photo's own scale). The pipeline enlarges;
this swaps its ``window_geometry`` for the run, so it measures the policy without shipping it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from eradiff.eval.methods import ModelMethod
from eradiff.eval.run import Metrics, evaluate
from eradiff.eval.triples import load_triples
from eradiff.models.loading import load_model
from eradiff.options import EraseOptions


def shrink_only() -> None:
    """Make the erase pipeline keep windows smaller than the native size at their own scale."""
    erase_module = sys.modules["eradiff.pipeline.erase"]  # the module: eradiff.pipeline.erase is also a function
    resize_to = erase_module.window_geometry

    def geometry(box: Any, *, native_size: int, size_multiple: int) -> Any:
        side = max(box[2] - box[0], box[3] - box[1])
        return resize_to(box, native_size=min(native_size, side), size_multiple=size_multiple)

    erase_module.window_geometry = geometry


def main(
    path: str, triples_dir: str, sizes: str = "256,384,512", out: str | None = None, *, shrink: bool = False
) -> None:
    if shrink:
        shrink_only()
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
            policy = "shrink-only" if shrink else "resize to the native size"
            meta = {"policy": policy, "model": path, "triples": triples_dir, "count": len(triples)}
            json.dump({**meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--shrink-only"]
    main(*args[:4], shrink=len(args) < len(sys.argv) - 1)
