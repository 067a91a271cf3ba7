"""Erase latency and peak memory vs image size at a fixed mask box (512² … 4096²).

Each measurement runs in a fresh subprocess: it loads the built-in default model (or, before it
is shipped, its architecture with random weights: speed does not depend on them), builds a size×size
photo-like image with a fixed 96×96 mask box at its centre, warms up once on a small image, then
times one :func:`eradiff.pipeline.erase` call. The peak resident memory is reset with
``/proc/self/clear_refs`` just before the call, so "+MiB" is the call's own peak above the memory
already held (model, image). Sizes run interleaved, round after round. The table reports the
median time per size, its ratio to 512² (target for 4096²: ≤ 1.3×) and the peaks. Writes
``bench_erase_sizes.json`` next to this script.

    python benchmarks/bench_erase_sizes.py               # 3 rounds, 10 steps
    python benchmarks/bench_erase_sizes.py --rounds 5 --steps 20
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (512, 1024, 2048, 4096)
BOX = 96


def status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(model_path: str, size: int, steps: int, threads: int) -> dict:
    """One measurement (runs in the subprocess)."""
    import numpy as np
    import torch

    from eradiff.models.loading import load_model
    from eradiff.pipeline.erase import EraseOptions, erase

    torch.set_num_threads(threads)
    model = load_model(model_path)
    options = EraseOptions(steps=steps)
    x = np.arange(size, dtype=np.float32)
    base = ((np.sin(x / 37.0)[None, :] + np.cos(x / 23.0)[:, None] + 2.0) * 63.0).astype(np.uint8)
    image = np.repeat(base[..., None], 3, axis=2)
    del base
    mask = np.zeros((size, size), bool)
    o = (size - BOX) // 2
    mask[o : o + BOX, o : o + BOX] = True
    warm = np.zeros((64, 64), bool)
    warm[20:40, 20:40] = True
    erase(model, image[:64, :64].copy(), warm, options)
    before = status_kib("VmRSS")
    exact_peak = reset_peak()
    t0 = time.perf_counter()
    result = erase(model, image, mask, options)
    seconds = time.perf_counter() - t0
    peak = status_kib("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "size": size, "seconds": seconds, "peak_rss_mib": peak / 1024, "rss_before_mib": before / 1024,
        "peak_above_before_mib": max(0, peak - before) / 1024, "image_mib": image.nbytes / 2**20,
        "peak_is_of_the_call": exact_peak,
        "windows": [list(w.box) for w in result.report.windows],
        "model_inputs": [list(w.model_size) for w in result.report.windows],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each measurement")
    parser.add_argument("--model", default=None, help="model file (default: the built-in model, else random weights)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out", type=Path, default=HERE / "bench_erase_sizes.json")
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "SIZE", "STEPS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, size, steps, threads = args.child
        print(json.dumps(child(model, int(size), int(steps), int(threads))))
        return

    import torch

    from eradiff.models.family import PixelInpaintModel, PixelModelConfig, default_pixel_unet_config
    from eradiff.models.loading import save_pixel_model

    runs: dict[int, list[dict]] = {s: [] for s in args.sizes}
    from eradiff.models.loading import DEFAULT_MODEL_PATH

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is not None or DEFAULT_MODEL_PATH.is_file():
            model_path = Path(args.model) if args.model is not None else DEFAULT_MODEL_PATH
            model_label = model_path.name
        else:
            model_path = Path(tmp) / "pixel-default-architecture.safetensors"
            torch.manual_seed(0)
            model = PixelInpaintModel(PixelModelConfig(unet=default_pixel_unet_config(4)))
            save_pixel_model(model, model_path)
            model_label = "default architecture, random weights"
        for r in range(args.rounds):
            for size in args.sizes:
                cmd = [sys.executable, __file__, "--child", str(model_path), str(size), str(args.steps),
                       str(args.threads)]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                runs[size].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1}/{args.rounds} size {size}: {runs[size][-1]['seconds']:.2f} s", file=sys.stderr)
    base = statistics.median(x["seconds"] for x in runs[args.sizes[0]])
    rows = []
    for size in args.sizes:
        secs = [x["seconds"] for x in runs[size]]
        first = runs[size][0]
        per_round = [x["seconds"] / y["seconds"] for x, y in zip(runs[size], runs[args.sizes[0]], strict=True)]
        rows.append({
            "size": size, "median_s": statistics.median(secs), "min_s": min(secs),
            "ratio_to_first": statistics.median(secs) / base, "median_round_ratio": statistics.median(per_round),
            "peak_rss_mib": max(x["peak_rss_mib"] for x in runs[size]),
            "peak_above_before_mib": max(x["peak_above_before_mib"] for x in runs[size]),
            "image_mib": first["image_mib"], "windows": first["windows"], "model_inputs": first["model_inputs"],
        })  # fmt: skip
    print(f"\nerase() latency, pixel model ({model_label}), {args.steps} DDIM steps, "
          f"{BOX}×{BOX} mask box, {args.threads} thread(s), {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'size':>6} {'median s':>9} {'min s':>7} {'× 512²':>7} {'round ×':>8} {'peak MiB':>9} "
          f"{'+MiB':>7} {'image MiB':>9}  window → model input")  # fmt: skip
    for row in rows:
        print(f"{row['size']:>6} {row['median_s']:9.2f} {row['min_s']:7.2f} {row['ratio_to_first']:7.3f} "
              f"{row['median_round_ratio']:8.3f} {row['peak_rss_mib']:9.0f} {row['peak_above_before_mib']:7.0f} "
              f"{row['image_mib']:9.1f}  {row['windows']} → {row['model_inputs']}")  # fmt: skip
    result = {
        "benchmark": "erase_sizes", "model": model_label, "steps": args.steps, "threads": args.threads,
        "rounds": args.rounds,
        "mask_box": BOX, "machine": platform.platform(), "python": sys.version.split()[0], "rows": rows,
        "raw": {str(k): v for k, v in runs.items()},
        "target": "4096² erase() ≤ 1.3× the 512² time",
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
