"""Sample grids during training: erasures of a fixed validation batch, written as one PNG.

:func:`erase_preview` runs the erase pipeline's window-level call
(:func:`eradiff.pipeline.erase.erase_tensors`: DDIM, η = 0 from Gaussian noise, the known region
re-imposed every step) on whole crops, without windows, and pastes x_obj back outside the mask.
It shows how training goes; ``eradiff erase`` is the real tool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from eradiff.models.family import ErasureModel

__all__ = ["erase_preview", "save_grid"]


@torch.no_grad()
def erase_preview(model: ErasureModel, x_obj: Tensor, M: Tensor, *, steps: int, seed: int, sra: bool = True) -> Tensor:
    """Erase the masked region of ``x_obj`` with the erase pipeline's window-level call.

    1. :func:`eradiff.pipeline.erase.erase_tensors` with ``steps`` DDIM steps (η = 0, strength 1,
       the known region re-imposed every step), sample i drawing from seed + i;
    2. paste x_obj back outside M.

    Args:
        model: an erasure model on its device, in eval mode.
        x_obj: images (b, 3, H, W) in [−1, 1].
        M: masks (b, H, W) bool, True = erase.
        steps: DDIM steps n ≥ 1.
        seed: base seed of the per-sample CPU generators.
        sra: Self-Rectifying Attention on or off.

    Returns:
        (b, 3, H, W) in [−1, 1].
    """
    from eradiff.pipeline.erase import EraseOptions, erase_tensors

    options = EraseOptions(steps=steps, sra=sra, reimpose_known=True)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(x_obj.shape[0])]
    x = erase_tensors(model, x_obj.float(), M, options, generators=generators)
    return torch.where(M[:, None], x, x_obj.float())


def save_grid(path: Path, columns: list[Tensor]) -> None:
    """Write a PNG grid: one row per sample, one column per (b, 3, H, W) tensor in [−1, 1].

    Masks may be passed as (b, 1, H, W) or (b, H, W) in {0, 1} and are shown in grey.
    """
    from PIL import Image

    cols = []
    for c in columns:
        c = c.detach().float().cpu()
        if c.ndim == 3:
            c = c[:, None]
        if c.shape[1] == 1:
            c = c.expand(-1, 3, -1, -1) * 2 - 1
        cols.append(c.clamp(-1, 1))
    pad = 2
    b, _, h, w = cols[0].shape
    grid = torch.ones(3, b * (h + pad) + pad, len(cols) * (w + pad) + pad)
    for i in range(b):
        for j, c in enumerate(cols):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[:, y : y + h, x : x + w] = c[i]
    img = ((grid + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(img)).save(path)
