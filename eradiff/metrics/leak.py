"""Object leak: does an erasure output, inside the mask, look more like the object than the background?

For erasure with strength < 1 the sampler starts from a noised x_obj, so some of the object can
survive ("leak"). Per image, with the mask's square box B (:func:`eradiff.metrics.boxes.square_box`,
margin 0.1, at least 64 px so LPIPS-AlexNet has room) and a distance d (LPIPS-alex on [0, 1]
crops by default):

| code name   | symbol                                                           |
| ----------- | ---------------------------------------------------------------- |
| ``out``     | the erasure output                                               |
| ``x_ori``   | x_0^ori, the true background (Eq. 6)                             |
| ``x_obj``   | x_0^obj, the same image with the object pasted (Eq. 6)           |
| ``d_ori``   | d(out[B], x_ori[B]), both cropped to B                           |
| ``d_obj``   | d(out[B], x_obj[B])                                              |
| ``leaked``  | d_obj < d_ori: the output is closer to the object                |
| ``ratio``   | d_ori / (d_obj + 1e−8): > 1 means leaked, 0 for a perfect erase  |

For pairs made by pasting the object inside the mask, the pixels of B outside the mask are the same
in x_ori and x_obj, so they only give the distance its context; the difference between d_ori and
d_obj comes from the masked pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from eradiff.metrics.boxes import crop, mask_bbox, square_box
from eradiff.metrics.lpips import LPIPS

Distance = Callable[[Tensor, Tensor], Tensor]
_EPS = 1e-8


class Leak(NamedTuple):
    """Per-image object-leak results, each of shape (b,)."""

    leaked: Tensor
    d_ori: Tensor
    d_obj: Tensor
    ratio: Tensor


class ObjectLeak:
    """Object-leak score of erasure outputs.

    Args:
        distance: callable (x, y) → (b,) on [0, 1] image batches of shape (b, 3, s, s); default
            :class:`eradiff.metrics.lpips.LPIPS` ``("alex", input_range="[0,1]")`` (its weights
            fetched when not cached).
        margin: box margin, see :func:`eradiff.metrics.boxes.square_box`.
        min_side: smallest box side in pixels.
    """

    def __init__(self, *, distance: Distance | None = None, margin: float = 0.1, min_side: int = 64) -> None:
        self.distance = LPIPS("alex", input_range="[0,1]") if distance is None else distance
        self.margin = margin
        self.min_side = min_side

    @torch.no_grad()
    def __call__(
        self,
        out: Float[Tensor, "b 3 h w"],
        x_ori: Float[Tensor, "b 3 h w"],
        x_obj: Float[Tensor, "b 3 h w"],
        mask: Bool[Tensor, "b h w"],
    ) -> Leak:
        """Leak per image.

        Args:
            out: erasure outputs in [0, 1], (b, 3, h, w).
            x_ori: true backgrounds, same shape.
            x_obj: the inputs with the object, same shape.
            mask: (b, h, w), True = erased region; none may be empty.

        Returns:
            :class:`Leak` of (b,) tensors: ``leaked`` (bool), ``d_ori``, ``d_obj``, ``ratio``.
        """
        for name, t in (("x_ori", x_ori), ("x_obj", x_obj)):
            if t.shape != out.shape:
                raise ValueError(f"{name} must have the shape of out {tuple(out.shape)}, got {tuple(t.shape)}")
        if out.ndim != 4 or mask.shape != (out.shape[0], *out.shape[2:]):
            raise ValueError(f"mask must be (b, h, w) matching out {tuple(out.shape)}, got {tuple(mask.shape)}")
        d_ori, d_obj = [], []
        for i in range(out.shape[0]):
            box = square_box(mask_bbox(mask[i]), tuple(mask.shape[1:]), margin=self.margin, min_side=self.min_side)
            o, a, b = (crop(t[i : i + 1], box) for t in (out, x_ori, x_obj))
            pair = self.distance(torch.cat([o, o]), torch.cat([a, b])).to(torch.float64)
            d_ori.append(pair[0])
            d_obj.append(pair[1])
        d_ori_t, d_obj_t = torch.stack(d_ori), torch.stack(d_obj)
        return Leak(leaked=d_obj_t < d_ori_t, d_ori=d_ori_t, d_obj=d_obj_t, ratio=d_ori_t / (d_obj_t + _EPS))


def leak_summary(leak: Leak) -> dict[str, float]:
    """Dataset summary: leak rate (fraction leaked) and mean ratio d_ori/d_obj."""
    return {"leak_rate": float(leak.leaked.double().mean()), "mean_ratio": float(leak.ratio.mean())}
