"""PSNR and SSIM per image, on the whole image or inside a box (torch, float64 inside).

| code name      | symbol                                                                        |
| -------------- | ----------------------------------------------------------------------------- |
| ``data_range`` | L, the span of possible values (1 for [0, 1] images, 255 for 8-bit)           |
| ``psnr``       | 10·log10(L² / MSE), MSE over all channels and pixels                          |
| ``ssim``       | mean over channels and valid pixels of SSIM(x, y) with an 11-tap Gaussian     |
|                | window (σ = 1.5, truncated at 3.5σ), C1 = (0.01L)², C2 = (0.03L)², population |
|                | (co)variances; the 5 border pixels the window does not cover are left out     |

``ssim`` equals scikit-image's ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L, channel_axis=...)`` and ``psnr`` its
``peak_signal_noise_ratio(x, y, data_range=L)``. With ``boxes`` each pair is first cropped to its
box (the crop is then treated as the image).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from eradiff.metrics.boxes import Box, crop

SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scipy.ndimage's truncate=3.5 → 5, an 11-tap window
_K1 = 0.01
_K2 = 0.03


def psnr(
    x: Float[Tensor, "b c h w"],
    y: Float[Tensor, "b c h w"],
    *,
    data_range: float = 1.0,
    boxes: Sequence[Box] | None = None,
    max_db: float | None = None,
) -> Float[Tensor, " b"]:
    """Peak signal-to-noise ratio per image pair, in dB; higher is more similar.

    Args:
        x: images, (b, c, h, w), values on a scale of span ``data_range``.
        y: images of the same shape.
        data_range: L > 0.
        boxes: one ``(top, left, bottom, right)`` per image to measure inside only, or None.
        max_db: cap for identical pairs (whose PSNR is +inf), or None to keep inf.

    Returns:
        PSNR, shape (b,), float64.
    """
    _check(x, y, data_range, boxes)
    mse = torch.stack([(xi - yi).square().mean() for xi, yi in _pairs(x, y, boxes)])
    values = 10 * torch.log10(data_range**2 / mse)  # MSE = 0 gives +inf
    return values if max_db is None else values.clamp(max=max_db)


def ssim(
    x: Float[Tensor, "b c h w"],
    y: Float[Tensor, "b c h w"],
    *,
    data_range: float = 1.0,
    boxes: Sequence[Box] | None = None,
) -> Float[Tensor, " b"]:
    """Structural similarity per image pair (Gaussian window, as scikit-image); 1 for identical images.

    Args:
        x: images, (b, c, h, w), h, w ≥ 11 (or each box at least 11×11).
        y: images of the same shape.
        data_range: L > 0.
        boxes: one ``(top, left, bottom, right)`` per image to measure inside only, or None.

    Returns:
        Mean SSIM, shape (b,), float64, in [−1, 1].

    References:
        Wang, Bovik, Sheikh, Simoncelli. Image quality assessment: from error visibility to
        structural similarity. IEEE TIP 2004.
    """
    _check(x, y, data_range, boxes)
    taps = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64, device=x.device)
    g = torch.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    g = g / g.sum()
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    values = []
    for xi, yi in _pairs(x, y, boxes):
        if min(xi.shape[-2:]) < 2 * SSIM_RADIUS + 1:
            raise ValueError(f"ssim needs images (or boxes) of at least 11×11 pixels, got {tuple(xi.shape[-2:])}")
        c = xi.shape[0]
        stack = torch.stack([xi, yi, xi * xi, yi * yi, xi * yi]).reshape(5 * c, 1, *xi.shape[-2:])
        blurred = F.conv2d(F.conv2d(stack, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
        ux, uy, uxx, uyy, uxy = blurred.reshape(5, c, *blurred.shape[-2:])
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        values.append(s.mean())
    return torch.stack(values)


def _check(x: Tensor, y: Tensor, data_range: float, boxes: Sequence[Box] | None) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"x and y must be (b, c, h, w) batches of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    if boxes is not None and len(boxes) != x.shape[0]:
        raise ValueError(f"boxes must hold one box per image ({x.shape[0]}), got {len(boxes)}")


def _pairs(x: Tensor, y: Tensor, boxes: Sequence[Box] | None) -> list[tuple[Tensor, Tensor]]:
    """Per-image (c, h, w) float64 pairs, cropped to their boxes."""
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    if boxes is None:
        return list(zip(x, y, strict=True))
    return [(crop(xi, box), crop(yi, box)) for xi, yi, box in zip(x, y, boxes, strict=True)]
