"""How much can SRA change the built-in model? The attention mass it removes, per layer.

SRA (Eq. 10–11) forbids a masked query to attend to a masked key. Its effect on a layer is
bounded by how much attention the masked queries of that layer put on masked keys under plain
attention: if that mass is small, SRA on and SRA off compute nearly the same thing. For each
triple this runs the real ``erase()`` (the model's defaults, erase windows included) and, in
every self-attention layer, measures with plain softmax attention (what SRA would take away):

- ``mass``: the mean over masked queries (and heads) of their attention on masked keys;
- ``masked``: the share of the layer's tokens that are masked (any-pixel rule, as SRA uses);
- ``change``: the layer's output change relative to its input, ‖out − in‖ / ‖in‖ (how much the
  layer does at all).

It also reports the erase output with SRA on vs off: the mean absolute difference in the hole
(0–255 scale). Means over the triples; prints a table and writes JSON.

    python benchmarks/probe_sra_mass.py [--model PATH] [--triples runs/sel60] [--count 16]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from diffusers.models.attention_processor import Attention

from eradiff.core import tokens_mask
from eradiff.eval.triples import load_triples
from eradiff.models.loading import load_model
from eradiff.options import EraseOptions
from eradiff.pipeline.erase import erase

ROOT = Path(__file__).resolve().parents[1]


def _probe(model, rows: dict[str, list[tuple[float, float, float]]]):
    """Forward hooks on every self-attention layer that append (mass, masked share, change)."""
    state = model.backend.state

    def hook(name: str):
        def f(mod: Attention, args, kwargs, out):
            h = args[0]
            b, c, hh, ww = h.shape
            if state.mask is None or b != 1:
                return
            m = tokens_mask(state.mask.to(h.device), hh * ww)[0]
            if not m.any() or m.all():
                return
            x = h.reshape(b, c, hh * ww)
            x = (mod.group_norm(x) if mod.group_norm is not None else x).transpose(1, 2)
            heads = mod.heads
            q = mod.to_q(x).view(b, -1, heads, c // heads).transpose(1, 2)
            k = mod.to_k(x).view(b, -1, heads, c // heads).transpose(1, 2)
            p = torch.softmax((q @ k.transpose(-1, -2)).float() * mod.scale, dim=-1)[0]  # (heads, n, n)
            mass = p[:, m][:, :, m].sum(-1).mean().item()
            change = ((out - h).norm() / h.norm()).item()
            rows[name].append((mass, m.float().mean().item(), change))

        return f

    return [
        mod.register_forward_hook(hook(n), with_kwargs=True)
        for n, mod in model.unet.named_modules()
        if isinstance(mod, Attention) and not mod.is_cross_attention
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the built-in model)")
    p.add_argument("--triples", default=str(ROOT / "runs" / "sel60"))
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe_sra_mass.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    triples = load_triples(args.triples)[: args.count]
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    diffs = []
    for t in triples:
        outs = {}
        for sra in (True, False):
            hooks = _probe(model, rows) if sra else []
            with torch.no_grad():
                outs[sra] = erase(model, t.image, t.mask, EraseOptions(seed=0, sra=sra)).image.astype(np.float64)
            for h in hooks:
                h.remove()
        diffs.append(np.abs(outs[True] - outs[False])[t.mask].mean())
    layers = {
        name: {k: float(np.mean([r[i] for r in v])) for i, k in enumerate(("mass", "masked", "change"))}
        for name, v in rows.items()
    }
    print(f"{'layer':28s} {'mass on masked keys':>20s} {'masked share':>13s} {'|Δ|/|in|':>9s}")
    for name, v in layers.items():
        print(f"{name:28s} {v['mass']:20.3f} {v['masked']:13.3f} {v['change']:9.3f}")
    print(
        f"erase output, SRA on vs off: mean |Δ| in the hole {np.mean(diffs):.3f} (0–255), max over triples "
        f"{np.max(diffs):.3f}; {len(triples)} triples"
    )
    result = {"model": args.model or "default", "triples": args.triples, "count": len(triples), "layers": layers,
              "hole_abs_diff_on_vs_off": {"mean": float(np.mean(diffs)), "max": float(np.max(diffs))}}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
