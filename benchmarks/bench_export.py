"""onnxruntime (CPU) vs eager torch for the default pixel-family UNet, with and without SRA.

The built-in default model (or, before it ships, its architecture with random weights) is
exported in both flavours, with SRA in the graph and without, and each
variant runs one denoising step at the native size (256 px → 64×64 cells) with a 20 % mask box.
Variants run interleaved, round after round, so machine load hits all alike; the tables report
per-round ratios (median and range). A second table times a whole ``erase`` (20 DDIM steps,
Telea conditioning, paste) on torch and on onnxruntime. Torch and onnxruntime get the same thread
count; ``--threads 1 2`` (the default) measures both, because the 2 cores here are shared with
other jobs and a second thread measures how each runtime copes with that as much as its kernels.
Wall and process-CPU times are both reported (CPU time moves less with the neighbours' load).

GPU section (only with CUDA + TensorRT): TensorRT fp16 engine vs torch fp16 eager per step, and
the engine's layer report (did attention fuse?).

Writes ``results/bench_export.json`` and ``results/bench_export.md``.

    python benchmarks/bench_export.py [--rounds 9] [--threads 1 2] [--erase-rounds 3] [--steps 20]
                                      [--keep DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from eradiff.models.family import PixelInpaintModel, PixelModelConfig, default_pixel_unet_config

HERE = Path(__file__).resolve().parent


def box_mask(h: int, w: int, fraction: float, batch: int = 1) -> torch.Tensor:
    side_h, side_w = round(h * fraction**0.5), round(w * fraction**0.5)
    M = torch.zeros(batch, h, w, dtype=torch.bool)
    M[:, (h - side_h) // 2 : (h - side_h) // 2 + side_h, (w - side_w) // 2 : (w - side_w) // 2 + side_w] = True
    return M


def interleaved(fns: dict, rounds: int, warmup: int = 1) -> dict[str, list[tuple[float, float]]]:
    """(wall s, process CPU s) of each variant, variants interleaved round after round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - w0, time.process_time() - c0))
    return times


def ratios(times: dict, num: str, den: str) -> dict[str, float]:
    """Per-round ratios num/den: median and range of wall time, median of CPU time."""
    wall = [a[0] / b[0] for a, b in zip(times[num], times[den], strict=True)]
    cpu = [a[1] / b[1] for a, b in zip(times[num], times[den], strict=True)]
    return {"median": statistics.median(wall), "min": min(wall), "max": max(wall), "cpu_median": statistics.median(cpu)}


def medians(times: dict) -> dict[str, dict[str, float]]:
    return {k: {"wall": statistics.median(w for w, _ in v), "cpu": statistics.median(c for _, c in v)}
            for k, v in times.items()}  # fmt: skip


def load_avg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def build_model(seed: int = 0) -> PixelInpaintModel:
    from eradiff.models.loading import DEFAULT_MODEL_PATH, load_model

    if DEFAULT_MODEL_PATH.is_file():
        model = load_model(None)
        model.unet.float().eval().requires_grad_(False)
        return model
    torch.manual_seed(seed)
    model = PixelInpaintModel(PixelModelConfig(unet=default_pixel_unet_config(), name="default-arch-random"))
    model.unet.eval().requires_grad_(False)
    return model


def export_all(model: PixelInpaintModel, folder: Path, *, reuse: bool = False) -> dict[str, dict]:
    from eradiff.export.onnx import export_onnx, read_metadata

    out = {}
    for flavour in ("portable", "trt"):
        for sra in (True, False):
            name = f"{flavour}-{'sra' if sra else 'nosra'}"
            path = folder / f"{name}.onnx"
            if reuse and path.is_file():
                opset = int(read_metadata(path)["eradiff.opset"])
                out[name] = {"path": path, "seconds": float("nan"), "opset": opset, "bytes": path.stat().st_size}
                continue
            t0 = time.perf_counter()
            result = export_onnx(model, folder / f"{name}.onnx", flavour=flavour, sra=sra)
            out[name] = {"path": result.path, "seconds": time.perf_counter() - t0, "opset": result.opset,
                         "bytes": result.path.stat().st_size}  # fmt: skip
            print(f"exported {name} (opset {result.opset}) in {out[name]['seconds']:.1f} s", flush=True)
    return out


def bench_steps(model, files, *, rounds: int, threads: int, batch: int) -> dict:
    from eradiff.export.ort_backend import OrtUNetBackend

    torch.set_num_threads(threads)
    size = model.native_size // model.factor
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, model.unet.config.in_channels, size, size, generator=g)
    t = torch.full((batch,), 500, dtype=torch.int64)
    mask = box_mask(size, size, 0.2, batch)
    backends = {k: OrtUNetBackend(v["path"], providers="cpu", threads=threads) for k, v in files.items()}
    torch_backend = model.backend

    def torch_step(sra: bool):
        def run():
            with torch.inference_mode():
                torch_backend(x, t, mask, sra=sra, encoder_hidden_states=None)

        return run

    def ort_step(name: str, sra: bool):
        def run():
            backends[name](x, t, mask, sra=sra, encoder_hidden_states=None)

        return run

    fns = {
        "torch_sra": torch_step(True),
        "torch_nosra": torch_step(False),
        "ort_portable_sra": ort_step("portable-sra", True),
        "ort_portable_nosra": ort_step("portable-nosra", False),
        "ort_trt_sra": ort_step("trt-sra", True),
        "ort_trt_nosra": ort_step("trt-nosra", False),
    }
    # parity first: the timed graphs compute what torch computes
    with torch.inference_mode():
        ref = torch_backend(x, t, mask, sra=True, encoder_hidden_states=None)
    parity = {k: float((backends[k](x, t, mask, sra=True, encoder_hidden_states=None) - ref).abs().max())
              for k in ("portable-sra", "trt-sra")}  # fmt: skip
    times = interleaved(fns, rounds)
    return {
        "threads": threads,
        "size_cells": size,
        "batch": batch,
        "median_s": medians(times),
        "times_s": times,
        "speedup_vs_torch": {
            "portable_sra": ratios(times, "torch_sra", "ort_portable_sra"),
            "trt_flavour_sra": ratios(times, "torch_sra", "ort_trt_sra"),
            "portable_nosra": ratios(times, "torch_nosra", "ort_portable_nosra"),
        },
        "sra_cost": {
            "torch": ratios(times, "torch_sra", "torch_nosra"),
            "ort_portable": ratios(times, "ort_portable_sra", "ort_portable_nosra"),
            "ort_trt_flavour": ratios(times, "ort_trt_sra", "ort_trt_nosra"),
        },
        "max_abs_diff_vs_torch": parity,
    }


def bench_erase(model, files, *, rounds: int, threads: int, steps: int) -> dict:
    from eradiff.export.ort_backend import load_onnx_model
    from eradiff.pipeline.erase import EraseOptions, erase

    torch.set_num_threads(threads)
    ort_model = load_onnx_model(files["portable-sra"]["path"], providers="cpu", threads=threads)
    n = model.native_size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:n, 0:n]
    img = np.stack([xx * 255 // n, yy * 255 // n, (xx + yy) * 127 // n], -1).astype(np.int32)
    img = np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    mask = box_mask(n, n, 0.1)[0].numpy()
    options = EraseOptions(steps=steps, seed=0)
    outputs = {}

    def run(name, m):
        def fn():
            outputs[name] = erase(m, img, mask, options).image

        return fn

    times = interleaved({"torch": run("torch", model), "ort_portable": run("ort", ort_model)}, rounds, warmup=0)
    diff = np.abs(outputs["torch"].astype(int) - outputs["ort"].astype(int))
    return {
        "threads": threads, "image": n, "steps": steps, "median_s": medians(times), "times_s": times,
        "speedup": ratios(times, "torch", "ort_portable"), "max_uint8_diff": int(diff.max()),
    }  # fmt: skip


def bench_gpu(model, files, folder: Path, *, rounds: int) -> dict | None:
    """TensorRT fp16 vs torch fp16 per step (CUDA + TensorRT only)."""
    from eradiff.export.trt import build_engine, default_profile, load_trt_model, trt_unavailable_reason

    reason = trt_unavailable_reason()
    if reason is not None:
        print(f"GPU section skipped: {reason}")
        return {"skipped": reason}
    from eradiff.export.onnx import read_metadata

    out: dict = {"device": torch.cuda.get_device_name(0)}
    size = model.native_size // model.factor
    x = torch.randn(1, model.unet.config.in_channels, size, size, device="cuda", dtype=torch.float16)
    t = torch.full((1,), 500, device="cuda")
    mask = box_mask(size, size, 0.2).cuda()
    unet16 = PixelInpaintModel(model.config, unet=__import__("copy").deepcopy(model.unet)).to("cuda", torch.float16)
    fns = {}

    def sync(fn):
        def run():
            fn()
            torch.cuda.synchronize()

        return run

    for sra in (True, False):
        fns[f"torch_fp16_{'sra' if sra else 'nosra'}"] = sync(
            lambda sra=sra: unet16.backend(x, t, mask, sra=sra, encoder_hidden_states=None)
        )
    engines = {}
    for name in ("trt-sra", "portable-sra", "trt-nosra"):
        meta = read_metadata(files[name]["path"])
        plan = folder / f"{name}.plan"
        try:
            result = build_engine(files[name]["path"], plan, profile=default_profile(meta), fp16=True,
                                  timing_cache=folder / "timing.cache")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - report and go on (e.g. TensorRT < 10.14 and Attention)
            out[f"{name}_error"] = str(exc)
            continue
        engines[name] = load_trt_model(plan)
        out[f"{name}_layers"] = result.summary
        out[f"{name}_build_s"] = result.seconds
        sra = name.endswith("-sra")
        fns[f"trt_{name}"] = sync(
            lambda m=engines[name], sra=sra: m.backend(x, t, mask, sra=sra, encoder_hidden_states=None)
        )
    with torch.inference_mode():
        times = interleaved(fns, rounds, warmup=3)
    out["median_s"] = medians(times)
    out["times_s"] = times
    if "trt_trt-sra" in times:
        out["speedup_trt_fp16_vs_torch_fp16"] = ratios(times, "torch_fp16_sra", "trt_trt-sra")
    if "trt_trt-sra" in times and "trt_trt-nosra" in times:
        out["sra_cost_trt"] = ratios(times, "trt_trt-sra", "trt_trt-nosra")
    return out


def markdown(result: dict) -> str:
    first = result["steps"][0]
    lines = [
        f"{result['machine']}; load average {result['load_before']:.1f} before, {result['load_after']:.1f} after "
        "(the 2 cores are shared with other jobs, so wall times move; ratios are per interleaved round).",
        "",
        f"Pixel-family UNet {result['model']} ({result['params_m']:.1f} M parameters), one denoising step at "
        f"{first['size_cells']}×{first['size_cells']} cells (256 px), batch {first['batch']}, 20 % mask box; "
        f"{result['rounds']} interleaved rounds. Torch and onnxruntime get the same thread count.",
        "",
        "| threads | variant | median wall s/step | median CPU s/step |",
        "| --- | --- | --- | --- |",
    ]
    for s in result["steps"]:
        lines += [f"| {s['threads']} | {k} | {v['wall']:.4f} | {v['cpu']:.4f} |" for k, v in s["median_s"].items()]
    lines += [
        "",
        "| threads | ratio | median (wall) | range (wall) | median (CPU) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in result["steps"]:
        for k, r in s["speedup_vs_torch"].items():
            lines.append(f"| {s['threads']} | speed-up of onnxruntime ({k}) over torch | {r['median']:.2f}× | "
                         f"{r['min']:.2f}–{r['max']:.2f} | {r['cpu_median']:.2f}× |")  # fmt: skip
        for k, r in s["sra_cost"].items():
            lines.append(f"| {s['threads']} | SRA cost, {k} (SRA / no SRA) | {r['median']:.3f} | "
                         f"{r['min']:.3f}–{r['max']:.3f} | {r['cpu_median']:.3f} |")  # fmt: skip
    lines += ["", f"Largest |onnxruntime − torch| on this step: {first['max_abs_diff_vs_torch']}."]
    for e in result.get("erase", []):
        lines += [
            "", f"End to end, {e['threads']} thread(s): `erase` of a {e['image']} px image, {e['steps']} DDIM steps, "
            "Telea conditioning.", "",
            "| backend | median wall s | median CPU s |", "| --- | --- | --- |",
            *[f"| {k} | {v['wall']:.2f} | {v['cpu']:.2f} |" for k, v in e["median_s"].items()],
            f"| speed-up | {e['speedup']['median']:.2f}× ({e['speedup']['min']:.2f}–{e['speedup']['max']:.2f}) | "
            f"{e['speedup']['cpu_median']:.2f}× |",
            "", f"Largest uint8 difference between the two images: {e['max_uint8_diff']}.",
        ]  # fmt: skip
    exports = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in result["exports"].items())
    lines += ["", f"Export times: {exports}."]
    g = result.get("gpu") or {}
    lines += ["", "GPU: " + (g["skipped"] if "skipped" in g else json.dumps(g, default=str))]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--erase-rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep", type=Path, default=None, help="keep the exported files in this folder")
    parser.add_argument("--reuse", action="store_true", help="with --keep: reuse files exported by an earlier run")
    args = parser.parse_args()
    load_before = load_avg()
    model = build_model()
    params = sum(p.numel() for p in model.unet.parameters()) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = export_all(model, folder, reuse=args.reuse)
        steps = []
        for threads in args.threads:
            steps.append(bench_steps(model, files, rounds=args.rounds, threads=threads, batch=args.batch))
            print(json.dumps({k: steps[-1][k] for k in ("median_s", "speedup_vs_torch", "sra_cost")}, indent=1),
                  flush=True)  # fmt: skip
        erase_results = [
            bench_erase(model, files, rounds=args.erase_rounds, threads=threads, steps=args.steps)
            for threads in args.threads[:1]
        ]
        gpu = bench_gpu(model, files, folder, rounds=args.rounds) if torch.cuda.is_available() else {
            "skipped": "no CUDA GPU"}  # fmt: skip
    result = {
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"onnxruntime {__import__('onnxruntime').__version__}",
        "threads": args.threads, "rounds": args.rounds, "params_m": params, "model": model.name,
        "load_before": load_before, "load_after": load_avg(),
        "exports": {k: {kk: str(vv) if isinstance(vv, Path) else vv for kk, vv in v.items()} for k, v in files.items()},
        "steps": steps, "erase": erase_results, "gpu": gpu,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_export.json").write_text(json.dumps(result, indent=1, default=str))
    text = markdown(result)
    (args.out / "bench_export.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
