"""Mask bounding boxes and the square crops around them that the masked-region metrics use.

A box is ``(top, left, bottom, right)`` in pixels, half-open: rows ``top:bottom``, columns
``left:right`` (so ``x[..., top:bottom, left:right]`` is the crop).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool
from torch import Tensor

Box = tuple[int, int, int, int]


def mask_bbox(mask: Bool[Tensor, "h w"]) -> Box:
    """The tightest box holding every True pixel of ``mask``.

    Raises:
        ValueError: ``mask`` is not a 2-d boolean tensor, or it is all False.
    """
    if mask.ndim != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean (h, w) tensor, got {mask.dtype} {tuple(mask.shape)}")
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    if rows.numel() == 0:
        raise ValueError("mask is empty: there is no masked pixel to put a box around")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def square_box(box: Box, image_hw: tuple[int, int], *, margin: float = 0.1, min_side: int = 0) -> Box:
    """A square around ``box``, grown by ``margin`` and shifted to lie inside the image.

    Steps: 1. side s = ⌈max(box height, box width)·(1 + 2·margin)⌉, at least ``min_side``, at most
    min(H, W); 2. centre the square on the box centre; 3. shift it (never shrink it) so it lies
    inside the image. The result is square and holds ``box`` whenever s ≥ the box's sides.

    Args:
        box: ``(top, left, bottom, right)``, inside the image.
        image_hw: (H, W) of the image.
        margin: extra side length on each side, as a fraction of the box's longer side, ≥ 0.
        min_side: smallest side of the square (e.g. the input size a network needs), ≥ 0.
    """
    top, left, bottom, right = box
    height, width = image_hw
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(f"box={box} is empty or outside an image of size {image_hw}")
    if margin < 0 or min_side < 0:
        raise ValueError(f"margin and min_side must be ≥ 0, got margin={margin}, min_side={min_side}")
    side = math.ceil(max(bottom - top, right - left) * (1 + 2 * margin))
    side = min(max(side, min_side), height, width)
    new_top = min(max((top + bottom - side) // 2, 0), height - side)
    new_left = min(max((left + right - side) // 2, 0), width - side)
    return new_top, new_left, new_top + side, new_left + side


def crop(x: Tensor, box: Box) -> Tensor:
    """``x[..., top:bottom, left:right]``."""
    top, left, bottom, right = box
    return x[..., top:bottom, left:right]
