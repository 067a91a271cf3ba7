"""Pasting generated pixels back: a feathered alpha, and a blend that cannot touch unmasked pixels.

| name            | meaning                                                                    |
| --------------- | -------------------------------------------------------------------------- |
| ``mask``        | the user's mask M (True = erase)                                           |
| ``dilated``     | M grown by ``dilate`` pixels: the region the model regenerates             |
| ``alpha``       | paste weight: 1 on M, ramping from 1 to 0 over ``feather`` px inside the   |
|                 | dilated ring, exactly 0 outside ``dilated``                                |

The blend rounds α·generated + (1 − α)·original only where α > 0 and copies the original integer
values everywhere else, so every pixel outside the dilated mask is bit-identical to the input.
"""

from __future__ import annotations

import cv2
import numpy as np


def feather_alpha(mask: np.ndarray, dilated: np.ndarray, *, feather: int) -> np.ndarray:
    """The paste weight α (H, W) float32 in [0, 1] (see the module docstring).

    Args:
        mask: the user's mask, (H, W) bool.
        dilated: the dilated mask, (H, W) bool, a superset of ``mask``.
        feather: ramp width in pixels (0: a hard edge at the dilated boundary).
    """
    if feather < 0:
        raise ValueError(f"feather must be ≥ 0, got {feather}")
    if mask.shape != dilated.shape:
        raise ValueError(f"mask {mask.shape} and dilated {dilated.shape} must have the same shape")
    if feather == 0:
        return dilated.astype(np.float32)
    distance = cv2.distanceTransform(dilated.astype(np.uint8), cv2.DIST_L2, 5)  # to the nearest unmasked pixel
    alpha = np.minimum(distance / np.float32(feather), np.float32(1.0))
    alpha[mask] = 1.0
    alpha[~dilated] = 0.0
    return alpha.astype(np.float32)


def blend(original: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """α·generated + (1 − α)·original, rounded, only where α > 0; the original elsewhere.

    Args:
        original: integer pixels (h, w) or (h, w, c), uint8 or uint16.
        generated: float pixels of the same shape on the same scale (0…255 or 0…65535).
        alpha: (h, w) float in [0, 1].

    Returns:
        Pixels of ``original``'s shape and dtype.
    """
    if original.shape != generated.shape:
        raise ValueError(f"generated {generated.shape} must have the shape of original {original.shape}")
    if alpha.shape != original.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} must have the image's height and width {original.shape[:2]}")
    top = np.iinfo(original.dtype).max
    out = original.copy()
    sel = alpha > 0
    a = alpha[sel].astype(np.float64)
    if original.ndim == 3:
        a = a[:, None]
    mixed = a * generated[sel].astype(np.float64) + (1.0 - a) * original[sel].astype(np.float64)
    out[sel] = np.clip(np.rint(mixed), 0, top).astype(original.dtype)
    return out


__all__ = ["blend", "feather_alpha"]
