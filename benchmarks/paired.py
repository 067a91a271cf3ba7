"""Paired comparison of two methods on the same triples, from ``eradiff eval`` reports.

Each ``eradiff eval`` report keeps one row per triple (``per_image``) in triple order, so two
methods evaluated on the same triples can be compared triple by triple: the mean of A − B per
metric with a 95 % paired-bootstrap interval (resampling triples), and for the leak flag the
ratio of leak rates A / B with its interval. A difference is *resolved* when its interval
excludes 0 (a ratio: excludes 1). Prints a table and, with ``--json``, writes it.

    python benchmarks/paired.py REPORT_A.json:NAME_A REPORT_B.json:NAME_B [--json OUT] [--seed 0]

``NAME`` is the method's name in the report (``eradiff eval -m NAME=...``); when a report holds a
single method, ``:NAME`` may be left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eradiff.eval.report import TABLE_COLUMNS

KEYS = ("lpips_alex_box", "lpips_vgg_box", "dists_box", "psnr_box", "ssim_box")
LOWER_IS_BETTER = {key for key, header, _ in TABLE_COLUMNS if header.endswith("↓")}


def _rows(spec: str) -> tuple[str, list[dict[str, float]], dict]:
    path, _, name = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    report = json.loads(Path(path).read_text())
    methods = report["methods"]
    if not name:
        if len(methods) != 1:
            names = ", ".join(repr(m["name"]) for m in methods)
            raise SystemExit(f"error: {path} holds {len(methods)} methods ({names}); name one as {path}:NAME")
        return methods[0]["name"], methods[0]["per_image"], report["meta"]
    for m in methods:
        if m["name"] == name:
            return name, m["per_image"], report["meta"]
    raise SystemExit(f"error: no method {name!r} in {path} (has {', '.join(repr(m['name']) for m in methods)})")


def paired(
    a: list[dict[str, float]], b: list[dict[str, float]], *, draws: int = 4000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Per metric: mean of A − B and its 95 % bootstrap interval; ``leaked``: rate ratio A / B."""
    if len(a) != len(b) or not a:
        raise ValueError(f"the reports must hold the same, non-zero number of triples, got {len(a)} and {len(b)}")
    idx = np.random.default_rng(seed).integers(0, len(a), size=(draws, len(a)))
    out: dict[str, dict[str, float]] = {}
    for key in KEYS:
        if key not in a[0] or key not in b[0]:
            continue
        d = np.array([ra[key] - rb[key] for ra, rb in zip(a, b, strict=True)])
        boot = d[idx].mean(1)
        out[key] = {
            "mean": float(d.mean()), "lo": float(np.quantile(boot, 0.025)), "hi": float(np.quantile(boot, 0.975)),
            "a_better_share": float((d < 0).mean() if key in LOWER_IS_BETTER else (d > 0).mean()),
        }  # fmt: skip
    if "leaked" in a[0] and "leaked" in b[0]:
        la, lb = np.array([r["leaked"] for r in a]), np.array([r["leaked"] for r in b])
        num, den = la[idx].mean(1), lb[idx].mean(1)
        ratio = np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)
        out["leak_rate"] = {
            "a": float(la.mean()), "b": float(lb.mean()),
            "ratio": float(la.mean() / lb.mean()) if lb.mean() > 0 else float("nan"),
            "lo": float(np.nanquantile(ratio, 0.025)), "hi": float(np.nanquantile(ratio, 0.975)),
        }  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="REPORT.json[:NAME], the method whose differences are reported")
    p.add_argument("b", help="REPORT.json[:NAME], the reference")
    p.add_argument("--json", default=None, help="write the table here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    name_a, a, meta_a = _rows(args.a)
    name_b, b, meta_b = _rows(args.b)
    if meta_a.get("triples") != meta_b.get("triples") or meta_a.get("count") != meta_b.get("count"):
        print(f"warning: the reports name different triples ({meta_a.get('triples')} vs {meta_b.get('triples')})",
              file=sys.stderr)  # fmt: skip
    try:
        result = paired(a, b, seed=args.seed)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{name_a} − {name_b}, {len(a)} triples, mean [95 % paired-bootstrap interval]\n")
    print("| metric | A − B | A better on |\n| --- | ---: | ---: |")
    for key, r in result.items():
        if key == "leak_rate":
            ratio = f"{r['ratio']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"
            print(f"| leak rate A / B | {r['a']:.3f} / {r['b']:.3f} = {ratio} | |")
        else:
            print(f"| {key} | {r['mean']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}] | {100 * r['a_better_share']:.0f} % |")
    if args.json:
        payload = {"a": args.a, "b": args.b, "count": len(a), "result": result}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
