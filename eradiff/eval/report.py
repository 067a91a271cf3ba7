"""Eval output: a terminal table, a JSON report and a PNG figure (bar chart + example grid)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eradiff.eval.run import MethodResult
from eradiff.eval.triples import Triple

TABLE_COLUMNS = (
    ("lpips_alex_box", "LPIPS-a box ↓", "{:.4f}"),
    ("lpips_vgg_box", "LPIPS-v box ↓", "{:.4f}"),
    ("dists_box", "DISTS box ↓", "{:.4f}"),
    ("psnr_box", "PSNR box ↑", "{:.2f}"),
    ("ssim_box", "SSIM box ↑", "{:.4f}"),
    ("lpips_alex_img", "LPIPS-a img ↓", "{:.4f}"),
    ("fid", "FID ↓", "{:.2f}"),
    ("kid", "KID ↓", "{:.4f}"),
    ("local_fid", "Local FID ↓", "{:.2f}"),
    ("local_kid", "Local KID ↓", "{:.4f}"),
    ("leak_rate", "leak rate ↓", "{:.3f}"),
    ("seconds", "s/img", "{:.2f}"),
)


def rich_table(results: Sequence[MethodResult], *, title: str = "eradiff eval"):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("method")
    cols = [c for c in TABLE_COLUMNS if any(c[0] in r.summary for r in results)]
    for _, header, _ in cols:
        table.add_column(header, justify="right")
    for r in results:
        table.add_row(r.name, *[fmt.format(r.summary[k]) if k in r.summary else "—" for k, _, fmt in cols])
    return table


def markdown_table(results: Sequence[MethodResult]) -> str:
    cols = [c for c in TABLE_COLUMNS if any(c[0] in r.summary for r in results)]
    lines = ["| method | " + " | ".join(h for _, h, _ in cols) + " |", "| --- |" + " ---: |" * len(cols)]
    for r in results:
        cells = [fmt.format(r.summary[k]) if k in r.summary else "—" for k, _, fmt in cols]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(results: Sequence[MethodResult], path: str | Path, *, meta: dict[str, Any]) -> None:
    doc = {
        "meta": meta,
        "methods": [{"name": r.name, "summary": r.summary, "per_image": r.rows} for r in results],
    }
    _atomic_write(Path(path), json.dumps(doc, indent=2).encode())


def write_figure(
    results: Sequence[MethodResult],
    triples: Sequence[Triple],
    path: str | Path,
    *,
    metric: str = "lpips_alex_box",
    examples: int = 3,
) -> None:
    """Bar chart of ``metric`` (and Local FID when present) above a grid of example outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = min(examples, len(triples), *(len(r.outputs) for r in results))
    has_local = all("local_fid" in r.summary for r in results)
    cols = len(results) + 2
    fig = plt.figure(figsize=(2.2 * cols, 3.2 + 2.2 * examples))
    grid = fig.add_gridspec(1 + examples, cols, height_ratios=[1.4] + [1] * examples)
    names = [r.name for r in results]
    bars = [(metric, "LPIPS-alex in mask box (lower is better)")] + (
        [("local_fid", "Local FID (lower is better)")] if has_local else []
    )
    span = cols // len(bars)
    for j, (key, label) in enumerate(bars):
        ax = fig.add_subplot(grid[0, j * span : (j + 1) * span if j < len(bars) - 1 else cols])
        vals = [r.summary.get(key, np.nan) for r in results]
        ax.bar(range(len(vals)), vals, color=["#c44" if "telea" in n or "ns" == n else "#48c" for n in names])
        ax.set_xticks(range(len(vals)), names, rotation=35, ha="right", fontsize=7)
        ax.set_title(label, fontsize=9)
    for i in range(examples):
        t = triples[i]
        box = _crop_box(t.mask)
        panels = [("input", _outline(t.image, t.mask)), ("ground truth", t.gt)] + [
            (r.name, r.outputs[i]) for r in results
        ]
        for j, (label, img) in enumerate(panels):
            ax = fig.add_subplot(grid[1 + i, j])
            ax.imshow(img[box[0] : box[2], box[1] : box[3]])
            ax.set_axis_off()
            if i == 0:
                ax.set_title(label, fontsize=7)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _crop_box(mask: np.ndarray, margin: float = 0.6) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    side = int(max(ys.max() - ys.min(), xs.max() - xs.min()) * (1 + 2 * margin)) + 1
    side = max(64, min(side, h, w))
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    top = int(np.clip(cy - side // 2, 0, h - side))
    left = int(np.clip(cx - side // 2, 0, w - side))
    return top, left, top + side, left + side


def _outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import cv2

    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (255, 0, 255), 2)
    return out
