"""Speed of the built-in default model on this machine (issue 5 targets).

Measures, interleaving repeats and reporting medians:

1. one denoising step (UNet call with SRA), batch 1, at 256×256 (the target's size) and at the
   model's native window size;
2. `erase()` end to end with the default options on a 1024×768 photo with one object
   (examples/photo.jpg resized to 1024×768 with its mask), including reading nothing from disk.

Targets: ≤ 0.25 s per step, ≤ 5 s end to end. Prints a table and writes
benchmarks/results/default_model.{json,md}.

    python benchmarks/bench_default_model.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=None, help="model spec (default: the built-in model)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from eradiff.models.loading import load_model
    from eradiff.pipeline.erase import EraseOptions, erase

    model = load_model(args.model)
    photo = Image.open(ROOT / "examples" / "photo.jpg").convert("RGB").resize((1024, 768), Image.BICUBIC)
    mask = Image.open(ROOT / "examples" / "mask.png").convert("L").resize((1024, 768), Image.NEAREST)
    image, M = np.asarray(photo).copy(), np.asarray(mask) > 127

    def step_input(n: int):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, n, n, generator=g) * 2 - 1
        Mn = torch.zeros(1, n, n, dtype=torch.bool)
        Mn[:, n // 3 : n // 2, n // 3 : 2 * n // 3] = True
        cond = model.condition(x, Mn)
        return model.encode(x, cond), cond

    n = model.native_size
    sizes = sorted({256, n})
    t = torch.tensor([500])
    with torch.no_grad():
        inputs = {k: step_input(k) for k in sizes}
        for z, cond in inputs.values():
            model.model_output(z, t, cond, sra=True)  # warm-up
        erase(model, image, M, EraseOptions())
        steps: dict[int, list[float]] = {k: [] for k in sizes}
        e2e = []
        for _ in range(args.repeats):
            for k, (z, cond) in inputs.items():
                t0 = time.perf_counter()
                model.model_output(z, t, cond, sra=True)
                steps[k].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = erase(model, image, M, EraseOptions())
            e2e.append(time.perf_counter() - t0)
    step_s = {k: statistics.median(v) for k, v in steps.items()}
    e2e_s = statistics.median(e2e)
    opts = EraseOptions().for_model(model)
    doc = {
        "model": model.name,
        "native_size": n,
        "threads": args.threads,
        "repeats": args.repeats,
        "step_seconds_median": {str(k): v for k, v in step_s.items()},
        "step_seconds_all": {str(k): v for k, v in steps.items()},
        "erase_1024x768_seconds_median": e2e_s,
        "erase_1024x768_seconds_all": e2e,
        "erase_steps": opts.steps,
        "windows": [list(w.box) for w in result.report.windows],
        "targets": {"step_seconds": 0.25, "erase_seconds": 5.0},
        "machine": f"{platform.machine()} {platform.processor() or ''} ({torch.get_num_threads()} threads)".strip(),
        "torch": torch.__version__,
    }
    table = "\n".join(
        [
            "| measure | median | target |",
            "| --- | ---: | ---: |",
            *(
                f"| one denoising step at {k}×{k} (SRA on) | {v:.3f} s | {'≤ 0.25 s' if k == 256 else '–'} |"
                for k, v in step_s.items()
            ),  # fmt: skip
            f"| erase 1024×768, one object, defaults ({opts.steps} steps) | {e2e_s:.2f} s | ≤ 5 s |",
        ]
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "default_model.json").write_text(json.dumps(doc, indent=2))
    (OUT / "default_model.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
