"""A perceptual term on the model's one-step x̂_0, composited and cropped to the mask box.

An MSE-trained one-step x̂_0 is the conditional mean of the hole: over a PatchMatch prefill it
learns to smooth the copied texture, which costs LPIPS-vgg and Local FID (issue 12). This term
adds LPIPS(x̂_0 composite, x_ori) on the square box around each mask, resized to ``size`` pixels,
so the correction is also judged by deep features, as LaMa's perceptual loss does.

The composite keeps x_ori outside the hole (what ``eradiff erase`` re-imposes), so only hole pixels
receive gradient; x̂_0 is clamped to [−1, 1] first (the range the images are written in).
"""

from __future__ import annotations

from typing import Literal

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


def composite(
    x0_hat: Float[Tensor, "b 3 h w"], x_ori: Float[Tensor, "b 3 h w"], M: Bool[Tensor, "b h w"]
) -> Float[Tensor, "b 3 h w"]:
    """x̂_0 (clamped to [−1, 1]) inside the hole, x_ori outside: what ``eradiff erase`` writes."""
    hole = M[:, None].to(x0_hat.dtype)
    return hole * x0_hat.clamp(-1, 1) + (1 - hole) * x_ori


class PerceptualTerm(torch.nn.Module):
    """``term(x0_hat, x_ori, M) -> (b,)``: LPIPS between the composited x̂_0 and x_ori on the mask box.

    Args:
        net: LPIPS trunk, ``"alex"`` or ``"vgg"``, or ``"alex+vgg"`` for the sum of both (frozen;
            gradients reach only x̂_0).
        size: side the box crops are resized to (≥ 32 for AlexNet).
    """

    def __init__(self, net: LpipsNet | Literal["alex+vgg"], *, size: int) -> None:
        super().__init__()
        self.size = size
        nets: list[LpipsNet] = ["alex", "vgg"] if net == "alex+vgg" else [net]
        self.lpips = torch.nn.ModuleList(LPIPS(n, input_range="[-1,1]") for n in nets)
        self.lpips.requires_grad_(False)

    def forward(
        self, x0_hat: Float[Tensor, "b 3 h w"], x_ori: Float[Tensor, "b 3 h w"], M: Bool[Tensor, "b h w"]
    ) -> Float[Tensor, " b"]:
        x, y = box_crops(composite(x0_hat, x_ori, M), M, size=self.size), box_crops(x_ori, M, size=self.size)
        return sum((lpips(x, y) for lpips in self.lpips), torch.zeros(x.shape[0], device=x.device))


def gram(f: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c c"]:
    """Gram matrix of feature maps, G = F Fᵀ / (c·h·w) with F the (b, c, h·w) flattened features."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class TextureTerm(torch.nn.Module):
    """``term(x0_hat, x_ori, M) -> (b,)``: a Gram-matrix (style) loss on the mask box.

    The texture statistic of Gatys et al. as inpainting models use it (Liu et al. 2018, EdgeConnect):
    Σ_l mean |G_l(x̂) − G_l(x_ori)| over VGG16 relu1_2, relu2_2 and relu3_3 of the composited box
    crops (see :class:`PerceptualTerm`). Gram matrices discard *where* features sit, so the term asks
    the hole for the same texture statistics as the truth without asking for its exact layout;
    the conditional-mean blur an MSE objective learns has too little high-frequency energy and is
    penalised. The trunk is the ImageNet VGG16 of LPIPS-vgg, frozen, with LPIPS' input scaling.

    Args:
        size: side the box crops are resized to (≥ 16).
    """

    def __init__(self, *, size: int) -> None:
        super().__init__()
        from eradiff.metrics._nets import VGG16Trunk, load_trunk
        from eradiff.metrics.lpips import _SCALE, _SHIFT
        from eradiff.metrics.weights import lpips_weights

        self.size = size
        self.trunk = load_trunk(VGG16Trunk(pool="max"), lpips_weights("vgg"))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(
        self, x0_hat: Float[Tensor, "b 3 h w"], x_ori: Float[Tensor, "b 3 h w"], M: Bool[Tensor, "b h w"]
    ) -> Float[Tensor, " b"]:
        x = composite(x0_hat, x_ori, M)
        with torch.no_grad():  # the target's features need no graph
            targets = [gram(f) for f in self._features(x_ori, M)]
        total = torch.zeros(x.shape[0], device=x.device)
        for f, gy in zip(self._features(x, M), targets, strict=True):
            total = total + (gram(f) - gy).abs().mean(dim=(1, 2))
        return total

    def _features(self, x: Tensor, M: Tensor) -> list[Tensor]:
        crops = box_crops(x, M, size=self.size).float()
        return self.trunk((crops - self.shift) / self.scale, stages=3)
