"""A perceptual term on the model's one-step x̂_0, composited and cropped to the mask box.

An MSE-trained one-step x̂_0 is the conditional mean of the hole: over a PatchMatch prefill it
learns to smooth the copied texture, which costs LPIPS-vgg and Local FID (issue 12). This term
adds LPIPS(x̂_0 composite, x_ori) on the square box around each mask, resized to ``size`` pixels,
so the correction is also judged by deep features, as LaMa's perceptual loss does.

The composite keeps x_ori outside the hole (what ``eradiff erase`` re-imposes), so only hole pixels
receive gradient; x̂_0 is clamped to [−1, 1] first (the range the images are written in).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from eradiff.metrics.boxes import crop, mask_bbox, square_box
from eradiff.metrics.lpips import LPIPS, LpipsNet


def box_crops(
    x: Float[Tensor, "b 3 h w"], M: Bool[Tensor, "b h w"], *, size: int, margin: float = 0.1
) -> Float[Tensor, "b 3 size size"]:
    """The square box around each sample's mask (grown by ``margin``), resized to size × size.

    A sample with an empty mask gives its whole image (resized), so the batch keeps its shape.
    """
    out = []
    for i in range(x.shape[0]):
        hw = (x.shape[-2], x.shape[-1])
        box = square_box(mask_bbox(M[i]), hw, margin=margin) if bool(M[i].any()) else (0, 0, *hw)
        c = crop(x[i : i + 1], box)
        if c.shape[-1] != size or c.shape[-2] != size:
            c = F.interpolate(c, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(c)
    return torch.cat(out)


class PerceptualTerm(torch.nn.Module):
    """``term(x0_hat, x_ori, M) -> (b,)``: LPIPS between the composited x̂_0 and x_ori on the mask box.

    Args:
        net: LPIPS trunk, ``"alex"`` or ``"vgg"`` (frozen; gradients reach only x̂_0).
        size: side the box crops are resized to (≥ 32 for AlexNet).
    """

    def __init__(self, net: LpipsNet, *, size: int) -> None:
        super().__init__()
        self.size = size
        self.lpips = LPIPS(net, input_range="[-1,1]")
        self.lpips.requires_grad_(False)

    def forward(
        self, x0_hat: Float[Tensor, "b 3 h w"], x_ori: Float[Tensor, "b 3 h w"], M: Bool[Tensor, "b h w"]
    ) -> Float[Tensor, " b"]:
        hole = M[:, None].to(x0_hat.dtype)
        x = hole * x0_hat.clamp(-1, 1) + (1 - hole) * x_ori
        return self.lpips(box_crops(x, M, size=self.size), box_crops(x_ori, M, size=self.size))
