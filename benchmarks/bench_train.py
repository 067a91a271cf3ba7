"""Training cost: one step of ``cro`` vs ``standard`` on the same model and batch, and samples/s
for 1 vs 2 processes, each measured in one run.

    python benchmarks/bench_train.py [--repeats 9] [--steps 30] [--skip-processes] [--out benchmarks/results]

Part 1 (step time). For each model, one full optimizer step (conditioning, encode, draw t/γ/ε,
forward, loss, backward, AdamW) is timed with ``eradiff.train.loop.micro_step`` on one fixed batch,
alternating ``cro`` and ``standard`` (the order flips every repeat) after two warm-up steps each;
the reported ratio is the median of the per-repeat ratios cro/standard (target ≤ 1.15). CRO costs
one more forward-noised state and, in latent space, one more VAE encode (of x_obj).

| model        | what                                                                     |
| ------------ | ------------------------------------------------------------------------ |
| pixel-tiny   | ``configs/tiny-test.yaml`` (UNet2DModel 16/32, factor 2), 32 px, batch 8 |
| pixel-default| the built-in family's UNet (``default_pixel_unet_config(4)``), 128 px, batch 8 |
| latent-tiny  | tiny SD2-inpainting architecture (``eradiff.testing``), 64 px, batch 4    |

Part 2 (processes). ``eradiff train`` on ``configs/tiny-test.yaml`` (toy data, real loop with
data synthesis) for ``--steps`` steps: one process (1 and 2 intra-op threads) and two processes
(``accelerate launch --multi_gpu --num_processes 2``, gloo on CPU, 1 thread each); samples/s is
the mean of the metrics rows after the first (warm-up) window.

Writes ``bench_train.json`` and ``bench_train.md``. On a shared CPU the seconds move with the
load; compare the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny-test.yaml"


def _setup(name: str, tmp: Path):
    """(model, batch) for one of the models of the module table."""
    from eradiff.train.build import build_datasets, build_model, to_device_batch
    from eradiff.train.config import load_config

    if name == "pixel-tiny":
        cfg = load_config(TINY)
    elif name == "pixel-default":
        cfg = load_config(TINY, ["model={family: pixel, factor: 4}", "data.crop_size=128"])
    else:
        from eradiff.testing import tiny_sd2_inpaint_folder

        folder = tiny_sd2_inpaint_folder(tmp / "tiny-sd2", sample_size=32)
        cfg = load_config(TINY, ["model={family: latent, base_model: " + str(folder) + "}", "data.crop_size=64"])
    batch_size = 4 if name == "latent-tiny" else 8
    torch.manual_seed(0)
    model = build_model(cfg.model, crop_size=cfg.data.crop_size)
    data, _ = build_datasets(cfg)
    items = [data[i] for i in range(batch_size)]
    batch = to_device_batch({k: torch.stack([it[k] for it in items]) for k in items[0]}, torch.device("cpu"))
    return cfg, model, batch


def bench_steps(name: str, repeats: int, tmp: Path) -> dict:
    from eradiff.train.build import build_objective
    from eradiff.train.config import ObjectiveConfig
    from eradiff.train.loop import micro_step

    cfg, model, (x_ori, x_obj, M) = _setup(name, tmp)
    optimizer = torch.optim.AdamW(model.unet.parameters(), lr=1e-5)
    objectives = {k: build_objective(ObjectiveConfig(kind=k), model.schedule) for k in ("cro", "standard")}

    def step(kind: str) -> float:
        gens = [torch.Generator().manual_seed(i) for i in range(len(x_ori))]
        start = time.perf_counter()
        micro_step(
            model, model.unet, objectives[kind], x_ori, x_obj, M, gens,
            encode_obj=kind == "cro", gamma_max=100, mask_weight=1.0, sra=True, backward=torch.Tensor.backward,
        )  # fmt: skip
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for kind in ("cro", "standard", "cro", "standard"):
        step(kind)
    times: dict[str, list[float]] = {"cro": [], "standard": []}
    ratios = []
    for r in range(repeats):
        order = ("cro", "standard") if r % 2 == 0 else ("standard", "cro")
        got = {kind: step(kind) for kind in order}
        for kind, t in got.items():
            times[kind].append(t)
        ratios.append(got["cro"] / got["standard"])
    return {
        "model": name,
        "batch": len(x_ori),
        "size": x_ori.shape[-1],
        "parameters": sum(p.numel() for p in model.unet.parameters()),
        "cro_s": statistics.median(times["cro"]),
        "standard_s": statistics.median(times["standard"]),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "repeats": repeats,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_processes(steps: int, tmp: Path) -> list[dict]:
    every = max(1, steps // 3)
    common = [
        "--config", str(TINY), "--max-steps", str(steps), "--set", "log.progress=false", "--set", "log.sample_every=0",
        "--set", "log.tensorboard=false", "--set", f"log.every={every}", "--set", "checkpoint.every=0",
        "--set", "data.size=512",
    ]  # fmt: skip
    runs = [("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("2 processes, 1 thread each", 2, 1)]
    rows = []
    for label, procs, threads in runs:
        out = tmp / f"p{procs}t{threads}"
        if procs == 1:
            cmd = [sys.executable, "-m", "eradiff.cli", "train", *common, "--output", str(out)]
        else:
            cmd = [
                sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(procs),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port()), "-m", "eradiff.cli", "train", *common, "--output", str(out),
            ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
        start = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if res.returncode != 0:
            raise RuntimeError(f"{label} failed:\n{res.stderr[-2000:]}")
        metrics = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
        steady = [m["samples_per_s"] for m in metrics[1:]] or [metrics[-1]["samples_per_s"]]
        rows.append(
            {
                "run": label,
                "processes": procs,
                "threads_per_process": threads,
                "samples_per_s": statistics.mean(steady),
                "wall_s": wall,
            }
        )
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["speedup_vs_1x1"] = r["samples_per_s"] / base
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--models", default="pixel-tiny,pixel-default,latent-tiny")
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        steps = [bench_steps(name, args.repeats, tmp) for name in args.models.split(",")]
        procs = [] if args.skip_processes else bench_processes(args.steps, tmp)
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_1min": [load_before[0], os.getloadavg()[0]],
        },
        "step_time": steps,
        "processes": procs,
    }
    load = result["machine"]["load_average_1min"]
    lines = [
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, 1-minute load average {load[0]:.1f} before and "
        f"{load[1]:.1f} after the run (other jobs share the machine).",
        "",
        "## Step time, cro vs standard (same model, batch, seeds; median of interleaved repeats)",
        "",
        "| model | params | batch × size | cro s/step | standard s/step | ratio (median) | ratio range |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in steps:
        lines.append(
            f"| {r['model']} | {r['parameters'] / 1e6:.2f} M | {r['batch']} × {r['size']} | {r['cro_s']:.3f} | "
            f"{r['standard_s']:.3f} | {r['ratio_median']:.3f} | {r['ratio_min']:.2f}–{r['ratio_max']:.2f} |"
        )
    if procs:
        lines += [
            "",
            f"## Samples/s, `eradiff train` on configs/tiny-test.yaml ({args.steps} steps, global batch 8)",
            "",
            "| run | samples/s | speed-up vs 1 process × 1 thread | wall s |",
            "| --- | --- | --- | --- |",
        ]
        for r in procs:
            lines.append(f"| {r['run']} | {r['samples_per_s']:.1f} | {r['speedup_vs_1x1']:.2f}× | {r['wall_s']:.1f} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_train.json").write_text(json.dumps(result, indent=1))
    (args.out / "bench_train.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
