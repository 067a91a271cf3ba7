"""SRA cost in a real UNet: step time with SRA (bias and split forms) vs the stock processor.

An SD2-inpainting-architecture ``UNet2DConditionModel`` (random weights; ``--width 320`` is the
real 865 M-parameter SD2 UNet) runs one denoising step on 64×64 latents (N = 4096 tokens at the
top level) with a 20 % mask box, the way the sampler calls it (mask set through the SRA state on
every call). Variants run interleaved, round after round, so machine load hits all of them alike;
the table reports per-round ratios to the stock step (median) for wall time and for process CPU
time, and the ratio of the fastest rounds. A second table times one top-level attention call
(SDPA alone) in each form. One torch thread by default: on a shared machine a descheduled
OpenMP thread stalls the others, which swamps a 5 % effect. Writes ``bench_sra.json`` next to this script.

    python benchmarks/bench_sra.py                 # real SD2 width, 5 rounds
    python benchmarks/bench_sra.py --width 128 --rounds 9
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from eradiff.core import sra_bias
from eradiff.models.sra import SRAState, install_sra, split_attention
from eradiff.testing import sd2_unet_config

HERE = Path(__file__).resolve().parent


def box_mask(size: int, fraction: float) -> torch.Tensor:
    side = round(size * fraction**0.5)
    M = torch.zeros(1, size, size, dtype=torch.bool)
    o = (size - side) // 2
    M[:, o : o + side, o : o + side] = True
    return M


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def summarize(times: dict[str, list[tuple[float, float]]], base: str) -> dict[str, dict[str, float]]:
    out = {}
    for name, runs in times.items():
        walls = [w for w, _ in runs]
        cpus = [c for _, c in runs]
        base_w = [w for w, _ in times[base]]
        base_c = [c for _, c in times[base]]
        out[name] = {
            "median_wall_s": statistics.median(walls),
            "min_wall_s": min(walls),
            "median_ratio_wall": statistics.median(a / b for a, b in zip(walls, base_w, strict=True)),
            "median_ratio_cpu": statistics.median(a / b for a, b in zip(cpus, base_c, strict=True)),
            "ratio_of_min_wall": min(walls) / min(base_w),
        }
    return out


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'variant':<12} {'median s':>9} {'min s':>8} {'ratio (wall)':>13} {'ratio (cpu)':>12} {'min/min':>8}")
    for name, r in rows.items():
        print(f"{name:<12} {r['median_wall_s']:9.3f} {r['min_wall_s']:8.3f} {r['median_ratio_wall']:13.3f} "
              f"{r['median_ratio_cpu']:12.3f} {r['ratio_of_min_wall']:8.3f}")  # fmt: skip


def bench_unet(width: int, rounds: int, latent: int, fraction: float, batch: int) -> dict:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**sd2_unet_config(width=width, sample_size=latent)).eval()
    params = sum(p.numel() for p in unet.parameters())
    stock = dict(unet.attn_processors)
    state = install_sra(unet)
    sra = dict(unet.attn_processors)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 9, latent, latent, generator=g)
    t = torch.full((batch,), 500)
    emb = torch.randn(batch, 77, 1024, generator=g)
    M = box_mask(latent, fraction)

    def stock_step():
        unet.set_attn_processor(dict(stock))
        return unet(x, t, encoder_hidden_states=emb).sample

    def sra_step(mode: str):
        def step():
            unet.set_attn_processor(dict(sra))
            if state.mode != mode:
                state.set_mode(mode)
            with state.use(M.clone()):  # a fresh (equal) mask tensor per step, as the sampler passes
                return unet(x, t, encoder_hidden_states=emb).sample

        return step

    variants = {"stock": stock_step, "sra-bias": sra_step("bias"), "sra-split": sra_step("split")}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    with torch.inference_mode():
        outs = {k: f() for k, f in variants.items()}  # warm-up, and the caches of the SRA variants
        agree = float((outs["sra-split"] - outs["sra-bias"]).abs().max())
        for _ in range(rounds):
            for name, f in variants.items():
                times[name].append(timed(f))
    return {
        "width": width, "parameters": params, "latent": latent, "tokens_top_level": latent * latent,
        "mask_fraction": float(M.float().mean()), "batch": batch, "rounds": rounds,
        "max_abs_diff_split_vs_bias": agree, "variants": summarize(times, "stock"),
        "raw_seconds": {k: [[round(w, 4), round(c, 4)] for w, c in v] for k, v in times.items()},
    }  # fmt: skip


def bench_attention(rounds: int, n: int, fraction: float, batch: int, heads: int, d: int) -> dict:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(batch, heads, n, d, generator=g) for _ in range(3))
    side = round(n**0.5)
    M = box_mask(side, fraction)
    m = M.flatten(1).repeat(batch, 1)
    bias = sra_bias(m, dtype=q.dtype)
    state = SRAState()
    state.set_mode("split")
    state.set(M)
    plan = state.split_plan(n, batch, q.device)
    variants = {
        "stock": lambda: F.scaled_dot_product_attention(q, k, v),
        "sra-bias": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
        "sra-split": lambda: split_attention(q, k, v, plan),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with torch.inference_mode():
        for f in variants.values():
            f()
        for _ in range(rounds):
            for name, f in variants.items():
                times[name].append(timed(f))
    return {"n": n, "batch": batch, "heads": heads, "head_dim": d, "rounds": rounds,
            "variants": summarize(times, "stock")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=320, help="UNet base width (320 = SD2)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--mask", type=float, default=0.2, help="masked fraction of the latent grid")
    parser.add_argument("--batch", type=int, default=1, help="UNet batch (2 = classifier-free guidance)")
    parser.add_argument("--attention-rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    parser.add_argument("--out", type=Path, default=HERE / "bench_sra.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heads = args.width // 64
    attention = bench_attention(args.attention_rounds, args.latent**2, args.mask, args.batch, heads, 64)
    title = f"one top-level attention call (N={args.latent**2}, heads={heads}, d=64, batch={args.batch})"
    print_table(f"{title}, {args.attention_rounds} interleaved rounds", attention["variants"])
    unet = bench_unet(args.width, args.rounds, args.latent, args.mask, args.batch)
    title = (
        f"UNet step, SD2 architecture at width {args.width} ({unet['parameters'] / 1e6:.0f} M parameters), "
        f"{args.latent}×{args.latent} latents, {unet['mask_fraction']:.0%} mask, batch {args.batch}"
    )
    print_table(f"{title}, {args.rounds} interleaved rounds", unet["variants"])
    print(f"max |split − bias| on the UNet output: {unet['max_abs_diff_split_vs_bias']:.2e}")
    result = {
        "benchmark": "sra", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.platform(), "processor": platform.processor(), "unet": unet, "attention": attention,
        "target": "UNet step with SRA ≤ 1.05× the stock processor",
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
