"""DISTS: Deep Image Structure and Texture Similarity (Ding et al. 2020), without torchvision.

| code name        | symbol                                                                   |
| ---------------- | ------------------------------------------------------------------------ |
| ``x``, ``y``     | the two images in [0, 1], (b, 3, h, w)                                   |
| stage k          | x̃^(0) = x itself, x̃^(1..5) = VGG16 relu1_2 … relu5_3 with L2 pooling     |
| ``alpha, beta``  | α_kj, β_kj ≥ 0 per stage k and channel j, normalised to sum 1 together   |
| S1 (texture)     | l(x̃_j, ỹ_j) = (2μ_xμ_y + c1)/(μ_x² + μ_y² + c1), c1 = 1e−6               |
| S2 (structure)   | s(x̃_j, ỹ_j) = (2σ_xy + c2)/(σ_x² + σ_y² + c2), c2 = 1e−6                 |
| result           | D(x, y) = 1 − Σ_kj (α_kj·l + β_kj·s)                                     |

This is the authors' ``DISTS_pytorch.DISTS`` (and pyiqa's ``dists``) with weights from
:func:`eradiff.metrics.weights.dists_weights` and ``lpips_weights("vgg")`` (torchvision's VGG16).
"""

from __future__ import annotations

from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor, nn

from eradiff.core._checks import check_choice
from eradiff.metrics._nets import VGG_CHANNELS, VGG16Trunk, load_trunk
from eradiff.metrics.lpips import INPUT_RANGES, InputRange, check_images, check_pair
from eradiff.metrics.weights import dists_weights, lpips_weights

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_C1 = 1e-6
_C2 = 1e-6


class DISTS(nn.Module):
    """DISTS distance; lower is more similar, ≈0 for identical images (up to c1, c2).

    Args:
        input_range: value range of the images passed in, ``"[0,1]"`` or ``"[-1,1]"``.
        vgg_weights: the tensors of ``lpips_weights("vgg")``; fetched when None.
        alpha_beta: the tensors of :func:`~eradiff.metrics.weights.dists_weights`; fetched when None.
        cache: cache directory for fetching; default :func:`~eradiff.metrics.weights.cache_dir`.

    References:
        Ding, Ma, Wang, Simoncelli. Image Quality Assessment: Unifying Structure and Texture
        Similarity. IEEE TPAMI 2020.
    """

    def __init__(
        self,
        *,
        input_range: InputRange = "[0,1]",
        vgg_weights: dict[str, Tensor] | None = None,
        alpha_beta: dict[str, Tensor] | None = None,
        cache: Path | None = None,
    ) -> None:
        super().__init__()
        check_choice("input_range", input_range, INPUT_RANGES)
        self.input_range = input_range
        vgg_weights = lpips_weights("vgg", cache=cache) if vgg_weights is None else vgg_weights
        alpha_beta = dists_weights(cache=cache) if alpha_beta is None else alpha_beta
        self.trunk = load_trunk(VGG16Trunk(pool="l2"), vgg_weights)
        w_sum = alpha_beta["alpha"].sum() + alpha_beta["beta"].sum()
        self.register_buffer("alpha", (alpha_beta["alpha"] / w_sum).flatten().float(), persistent=False)
        self.register_buffer("beta", (alpha_beta["beta"] / w_sum).flatten().float(), persistent=False)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.chunks = (3, *VGG_CHANNELS)
        self.eval()

    def forward(self, x: Float[Tensor, "b 3 h w"], y: Float[Tensor, "b 3 h w"]) -> Float[Tensor, " b"]:
        """DISTS per image pair.

        Args:
            x: images in ``input_range``, (b, 3, h, w), h, w ≥ 32.
            y: images of the same shape.

        Returns:
            D(x, y), shape (b,), float32; symmetric in x and y.
        """
        check_pair(x, y)
        check_images(x, name="x", input_range=self.input_range)
        check_images(y, name="y", input_range=self.input_range)
        both = torch.cat([x, y]).float()
        if self.input_range == "[-1,1]":
            both = (both + 1) / 2
        feats = [both, *self.trunk((both - self.mean) / self.std)]
        alphas = self.alpha.split(self.chunks)
        betas = self.beta.split(self.chunks)
        sim = torch.zeros(x.shape[0], device=x.device)
        for feat, alpha, beta in zip(feats, alphas, betas, strict=True):
            fx, fy = feat.chunk(2)
            mx, my = fx.mean(dim=(2, 3)), fy.mean(dim=(2, 3))
            vx = (fx - mx[..., None, None]).square().mean(dim=(2, 3))
            vy = (fy - my[..., None, None]).square().mean(dim=(2, 3))
            cxy = (fx * fy).mean(dim=(2, 3)) - mx * my
            texture = (2 * mx * my + _C1) / (mx.square() + my.square() + _C1)
            structure = (2 * cxy + _C2) / (vx + vy + _C2)
            sim = sim + (texture * alpha).sum(dim=1) + (structure * beta).sum(dim=1)
        return 1 - sim
