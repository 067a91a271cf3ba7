"""Where to run the model on a large image: crop windows around the mask, and their model size.

IOPaint's crop strategy: an image whose longer side is at most ``trigger`` pixels is processed
whole; a larger one is processed in windows, one per connected mask region grown by ``margin``
pixels on every side (clipped to the image), with overlapping windows merged until none overlap.
Each window is resized so that its longer side equals the model's native size and padded
(symmetric reflection) on the bottom/right to the model's size multiple; the result is cropped and
resized back. The cost of a large photo with a small mask is therefore that of one native-size
window plus the full-image mask operations (OpenCV, milliseconds).

Boxes are ``(x0, y0, x1, y1)`` with half-open pixel ranges [x0, x1) × [y0, y1).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from eradiff.options import CROP_MARGIN  # one definition, torch-free

Box = tuple[int, int, int, int]

CROP_TRIGGER = 800


def dilate_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a boolean mask by ``radius`` pixels with an elliptical (disc) kernel; radius 0 = copy."""
    if radius < 0:
        raise ValueError(f"radius must be ≥ 0, got {radius}")
    if radius == 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def boxes_overlap(a: Box, b: Box) -> bool:
    """True if the half-open boxes share at least one pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def union_box(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def merge_boxes(boxes: list[Box]) -> list[Box]:
    """Replace overlapping boxes by their bounding union, repeatedly, until no two overlap.

    The result covers every input box, and no two result boxes share a pixel. Sorted by (y0, x0).
    """
    current = [tuple(int(v) for v in b) for b in boxes]
    changed = True
    while changed:
        changed = False
        merged: list[Box] = []
        for box in current:
            for i, other in enumerate(merged):
                if boxes_overlap(box, other):
                    merged[i] = union_box(box, other)
                    changed = True
                    break
            else:
                merged.append(box)
        current = merged
    return sorted(current, key=lambda b: (b[1], b[0], b[3], b[2]))


def mask_windows(mask: np.ndarray, *, trigger: int = CROP_TRIGGER, margin: int = CROP_MARGIN) -> list[Box]:
    """The windows to process for a boolean mask (H, W): see the module docstring.

    The mask regions are found as connected components of the mask grown by ``margin`` with a
    square kernel (so each component's bounding box is already the grown, clipped box, and
    nearby specks form one component), then overlapping boxes are merged.

    Returns:
        Non-overlapping boxes covering every masked pixel with ``margin`` around it (clipped);
        ``[]`` for an empty mask.
    """
    if trigger < 1 or margin < 0:
        raise ValueError(f"trigger must be ≥ 1 and margin ≥ 0, got trigger={trigger}, margin={margin}")
    h, w = mask.shape
    if not mask.any():
        return []
    if max(h, w) <= trigger:
        return [(0, 0, w, h)]
    grown = mask.astype(np.uint8)
    if margin > 0:
        grown = cv2.dilate(grown, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * margin + 1, 2 * margin + 1)))
    count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    boxes = [
        (int(x), int(y), int(x + bw), int(y + bh))
        for x, y, bw, bh, _ in stats[1:count]  # label 0 is the background
    ]
    return merge_boxes(boxes)


@dataclass(frozen=True)
class WindowGeometry:
    """How one window maps to the model input.

    Attributes:
        box: the window in the image (x0, y0, x1, y1).
        size: (width, height) after resizing (longer side = native size).
        padded: (width, height) after padding to the size multiple.
    """

    box: Box
    size: tuple[int, int]
    padded: tuple[int, int]


def window_geometry(box: Box, *, native_size: int, size_multiple: int) -> WindowGeometry:
    """Resize the window so its longer side is ``native_size``, then pad up to ``size_multiple``."""
    if native_size < 1 or size_multiple < 1:
        raise ValueError(f"native_size and size_multiple must be ≥ 1, got {native_size}, {size_multiple}")
    w, h = box[2] - box[0], box[3] - box[1]
    if w < 1 or h < 1:
        raise ValueError(f"empty window {box}")
    scale = native_size / max(w, h)
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    pw, ph = -(-rw // size_multiple) * size_multiple, -(-rh // size_multiple) * size_multiple
    return WindowGeometry(box=box, size=(rw, rh), padded=(pw, ph))


def resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float image (h, w[, c]) to ``size`` = (width, height): area when shrinking, cubic else."""
    h, w = a.shape[:2]
    if (w, h) == size:
        return a.copy()
    shrink = size[0] < w and size[1] < h
    out = cv2.resize(a, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return out.reshape(size[1], size[0], *a.shape[2:])


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a boolean mask conservatively: a pixel is masked if any masked pixel touches it."""
    h, w = mask.shape
    if (w, h) == size:
        return mask.copy()
    shrink = size[0] < w and size[1] < h
    soft = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return soft > 0


def pad_to(a: np.ndarray, padded: tuple[int, int]) -> np.ndarray:
    """Pad (h, w[, c]) on the bottom and right to ``padded`` = (width, height), symmetric reflection."""
    h, w = a.shape[:2]
    pad = [(0, padded[1] - h), (0, padded[0] - w)] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, mode="symmetric")


__all__ = [
    "CROP_MARGIN",
    "CROP_TRIGGER",
    "Box",
    "WindowGeometry",
    "boxes_overlap",
    "dilate_mask",
    "mask_windows",
    "merge_boxes",
    "pad_to",
    "resize",
    "resize_mask",
    "union_box",
    "window_geometry",
]
