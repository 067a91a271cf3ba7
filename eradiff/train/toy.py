"""A procedural material source for tests, benchmarks and smoke runs (``data.source: toy``).

Backgrounds are smooth colour gradients with a few low-frequency waves; objects are filled
ellipses or rectangles of a random colour with a soft stripe texture. Both come from the draw's
``numpy.random.Generator`` only, so a :class:`~eradiff.train.data.PairDataset` over this source
is as deterministic as one over photos, and goes through the same synthesis code.
"""

from __future__ import annotations

import cv2
import numpy as np

from eradiff.train.sources import Material, MaterialSource

__all__ = ["ToySource"]


class ToySource(MaterialSource):
    """Procedural (background, object) material.

    Args:
        background_size: side of the square backgrounds, pixels (≥ the crop size).
        object_size: (lo, hi) side of the object before synthesis rescales it, pixels.
        items: what ``len()`` reports (the epoch length when the data set size is not given).
    """

    def __init__(self, *, background_size: int = 64, object_size: tuple[int, int] = (12, 32), items: int = 64) -> None:
        super().__init__(min_area=1, cache_size=0)
        if background_size < 8:
            raise ValueError(f"background_size must be ≥ 8, got {background_size}")
        lo, hi = object_size
        if not 2 <= lo <= hi:
            raise ValueError(f"object_size must satisfy 2 ≤ lo ≤ hi, got {object_size}")
        if items < 1:
            raise ValueError(f"items must be ≥ 1, got {items}")
        self.background_size = background_size
        self.object_size = (lo, hi)
        self.items = items

    def __len__(self) -> int:
        return self.items

    def draw(self, rng: np.random.Generator) -> Material:
        s = self.background_size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        c0, c1 = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy + 1.5) / 3.0
        freq, phase = rng.uniform(1, 4), rng.uniform(0, 2 * np.pi)
        wave = 12.0 * np.sin(2 * np.pi * freq * (xx + 0.5 * yy) + phase)
        bg = c0 + (c1 - c0) * ramp[..., None] + wave[..., None]
        background = np.clip(np.rint(bg), 0, 255).astype(np.uint8)

        h, w = (int(v) for v in rng.integers(self.object_size[0], self.object_size[1] + 1, size=2))
        alpha = np.zeros((h, w), np.uint8)
        if rng.random() < 0.5:
            cv2.ellipse(alpha, (((w - 1) / 2, (h - 1) / 2), (float(w), float(h)), 0.0), 255, -1)
        else:
            alpha[:] = 255
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        stripes = 25.0 * np.sin(np.arange(w, dtype=np.float32) * rng.uniform(0.3, 1.2))[None, :, None]
        obj = np.empty((h, w, 4), np.uint8)
        obj[..., :3] = np.clip(np.rint(colour + stripes), 0, 255)
        obj[..., 3] = alpha
        obj[alpha == 0] = 0
        return Material(background=background, obj_rgba=obj, background_mask=None, key="toy")
