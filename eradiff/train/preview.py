"""Sample grids during training: erasures of a fixed validation batch, written as one PNG.

:func:`erase_preview` runs the erase pipeline's DDIM chain
(:func:`eradiff.pipeline.sampler.ddim_sample`: η = 0 from Gaussian noise, the known region
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
    """Erase the masked region of ``x_obj``.

    1. conditioning from (x_obj, M); z_known = encode(x_obj), re-imposed outside the latent mask;
    2. ``steps`` DDIM steps (Eq. 2, σ = 0) from ε ~ N(0, I), sample i drawing from seed + i;
    3. decode, clamp to [−1, 1], paste x_obj back outside M.

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
    from eradiff.pipeline.sampler import ddim_sample

    cond = model.condition(x_obj, M)
    z_known = model.encode(x_obj, cond).float()
    generators = [torch.Generator().manual_seed(seed + i) for i in range(x_obj.shape[0])]
    z = ddim_sample(
        lambda z_t, t: model.model_output(z_t.to(model.dtype), t, cond, sra=sra),
        z_known,
        schedule=model.schedule,
        generators=generators,
        steps=steps,
        z_known=z_known,
        keep=~cond.mask[:, None].to(z_known.device),
        clip_x0=model.x0_bounds(cond),
    )
    vae = getattr(model, "vae", None)  # the frozen VAE may run in the mixed-precision dtype
    x = model.decode(z.to(vae.dtype if vae is not None else model.dtype), cond).float().clamp(-1, 1)
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
