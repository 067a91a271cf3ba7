"""Run methods over triples and measure them (the engine under ``eradiff eval``).

Per image and method (all images 8-bit RGB, metrics on [0, 1]):

| key               | what                                                                          |
| ----------------- | ----------------------------------------------------------------------------- |
| ``psnr_box``      | PSNR in the mask's square box B (bbox grown by 10 %, ≥ 64 px, inside the image) |
| ``ssim_box``      | SSIM in B                                                                     |
| ``lpips_alex_box``| LPIPS (AlexNet) in B                                                          |
| ``lpips_vgg_box`` | LPIPS (VGG16) in B                                                            |
| ``dists_box``     | DISTS in B                                                                    |
| ``*_img``         | PSNR, SSIM and LPIPS-alex on the whole image; LPIPS-vgg and DISTS on the whole |
|                   | image only with ``whole_image_vgg=True`` (≈0.4 TFLOP per 1024×683 image each)  |
| ``leaked``        | the output in B is closer (LPIPS-alex) to the input with the object than to the ground truth |
| ``leak_ratio``    | d(out, gt) / d(out, input) in B                                               |
| ``seconds``       | wall time of the method on this image                                          |

Per method over the set: the means of the above, ``leak_rate``, and FID / KID (whole images) and
Local FID / Local KID (the square crops around each mask resized to 299, as
:func:`eradiff.metrics.fid.local_crops`) between the outputs and the ground truths. With a few
hundred images FID is biased upward and noisy; KID is unbiased — compare methods on one set only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eradiff.eval.methods import Method, timed
from eradiff.eval.triples import Triple
from eradiff.metrics.boxes import crop, mask_bbox, square_box
from eradiff.metrics.fid import InceptionFeatures, fid_from_features, kid_from_features, local_crops
from eradiff.metrics.pixel import psnr, ssim

BOX_MARGIN = 0.1
BOX_MIN_SIDE = 64
PER_IMAGE_KEYS = (
    "psnr_box", "ssim_box", "lpips_alex_box", "lpips_vgg_box", "dists_box",
    "psnr_img", "ssim_img", "lpips_alex_img", "lpips_vgg_img", "dists_img",
    "leak_ratio", "seconds",
)  # fmt: skip
PSNR_CAP_DB = 100.0


@dataclass
class Metrics:
    """Metric networks, built once (weights load offline, see :mod:`eradiff.metrics.weights`)."""

    lpips_alex: Any
    lpips_vgg: Any
    dists: Any
    inception: Any

    @classmethod
    def load(cls, *, set_level: bool = True) -> Metrics:
        from eradiff.metrics.dists import DISTS
        from eradiff.metrics.lpips import LPIPS

        return cls(
            lpips_alex=LPIPS("alex", input_range="[0,1]"),
            lpips_vgg=LPIPS("vgg", input_range="[0,1]"),
            dists=DISTS(input_range="[0,1]"),
            inception=InceptionFeatures() if set_level else None,
        )


@dataclass
class MethodResult:
    name: str
    rows: list[dict[str, float]] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 255


@torch.no_grad()
def image_metrics(
    metrics: Metrics, out: np.ndarray, triple: Triple, *, whole_image_vgg: bool = False
) -> dict[str, float]:
    """The per-image metrics of one output (see the module table)."""
    o, g, x = _to_tensor(out), _to_tensor(triple.gt), _to_tensor(triple.image)
    m = torch.from_numpy(triple.mask)
    box = square_box(mask_bbox(m), tuple(m.shape), margin=BOX_MARGIN, min_side=BOX_MIN_SIDE)
    ob, gb, xb = crop(o, box), crop(g, box), crop(x, box)
    row = {
        "psnr_box": float(psnr(ob, gb, max_db=PSNR_CAP_DB)[0]),
        "ssim_box": float(ssim(ob, gb)[0]),
        "lpips_alex_box": float(metrics.lpips_alex(ob, gb)[0]),
        "lpips_vgg_box": float(metrics.lpips_vgg(ob, gb)[0]),
        "dists_box": float(metrics.dists(ob, gb)[0]),
        "psnr_img": float(psnr(o, g, max_db=PSNR_CAP_DB)[0]),
        "ssim_img": float(ssim(o, g)[0]),
        "lpips_alex_img": float(metrics.lpips_alex(o, g)[0]),
    }
    if whole_image_vgg:
        row["lpips_vgg_img"] = float(metrics.lpips_vgg(o, g)[0])
        row["dists_img"] = float(metrics.dists(o, g)[0])
    d_gt = float(metrics.lpips_alex(ob, gb)[0])
    d_obj = float(metrics.lpips_alex(ob, xb)[0])
    row["leaked"] = float(d_obj < d_gt)
    row["leak_ratio"] = d_gt / (d_obj + 1e-8)
    return row


@torch.no_grad()
def _features(net: InceptionFeatures, images: Sequence[np.ndarray], batch: int = 8) -> torch.Tensor:
    feats = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        feats.append(torch.cat([net(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]) for a in chunk]))
    return torch.cat(feats)


@torch.no_grad()
def _local_features(net: InceptionFeatures, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> torch.Tensor:
    feats = []
    for a, m in zip(images, masks, strict=True):
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
        c = local_crops(t, torch.from_numpy(m)[None], margin=BOX_MARGIN, min_side=BOX_MIN_SIDE)
        feats.append(net(c))
    return torch.cat(feats)


def evaluate(
    methods: Sequence[Method],
    triples: Sequence[Triple],
    *,
    metrics: Metrics,
    keep_outputs: int = 4,
    progress: Callable[[str, int, int], None] | None = None,
    kid_subsets: int = 50,
    whole_image_vgg: bool = False,
) -> list[MethodResult]:
    """Run every method on every triple; return per-image rows and per-method summaries.

    Args:
        methods: what to evaluate.
        triples: the evaluation set (≥ 2 for FID/KID).
        metrics: metric networks (``metrics.inception`` None skips the set-level metrics).
        keep_outputs: how many outputs to keep per method (for the example grid).
        progress: called as ``progress(method_name, done, total)``.
        kid_subsets: KID subsets (subset size min(100, n)).
        whole_image_vgg: also LPIPS-vgg and DISTS on whole images (slow on a CPU).
    """
    results = []
    real_feats = real_local = None
    if metrics.inception is not None and len(triples) >= 2:
        real_feats = _features(metrics.inception, [t.gt for t in triples])
        real_local = _local_features(metrics.inception, [t.gt for t in triples], [t.mask for t in triples])
    for method in methods:
        res = MethodResult(method.name)
        outs = []
        for i, t in enumerate(triples):
            out, seconds = timed(method, t.image, t.mask)
            if out.shape != t.gt.shape or out.dtype != np.uint8:
                raise RuntimeError(f"{method.name} returned {out.dtype} {out.shape} for a {t.gt.shape} uint8 image")
            row = image_metrics(metrics, out, t, whole_image_vgg=whole_image_vgg)
            row["seconds"] = seconds
            res.rows.append(row)
            outs.append(out)
            if i < keep_outputs:
                res.outputs.append(out)
            if progress is not None:
                progress(method.name, i + 1, len(triples))
        summary = {k: float(np.mean([r[k] for r in res.rows])) for k in PER_IMAGE_KEYS if k in res.rows[0]}
        summary["leak_rate"] = float(np.mean([r["leaked"] for r in res.rows]))
        if real_feats is not None:
            g = torch.Generator().manual_seed(0)
            fake = _features(metrics.inception, outs)
            fake_local = _local_features(metrics.inception, outs, [t.mask for t in triples])
            size = min(100, len(triples))
            summary["fid"] = fid_from_features(fake, real_feats)
            summary["kid"] = kid_from_features(fake, real_feats, subsets=kid_subsets, subset_size=size, generator=g)[0]
            summary["local_fid"] = fid_from_features(fake_local, real_local)
            summary["local_kid"] = kid_from_features(
                fake_local, real_local, subsets=kid_subsets, subset_size=size, generator=g
            )[0]
        res.summary = summary
        results.append(res)
    return results
