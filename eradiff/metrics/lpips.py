"""LPIPS v0.1 (Zhang et al. 2018) with AlexNet or VGG16 trunks, without torchvision.

| code name   | symbol                                                                  |
| ----------- | ----------------------------------------------------------------------- |
| ``x``, ``y``| the two images, (b, 3, h, w)                                            |
| shift/scale | v0.1 input scaling (x − shift)/scale on [−1, 1] images                  |
| ``f_l``     | trunk activation l, unit-normalised over channels: f/(‖f‖₂ + 1e−10)     |
| ``lin{l}``  | w_l, non-negative 1×1 weights                                           |
| result      | d(x, y) = Σ_l mean_hw(w_l · (f_l(x) − f_l(y))²)                         |

This is ``lpips.LPIPS(net=..., version="0.1")`` (and pyiqa's ``lpips`` / ``lpips-vgg``) in
evaluation mode, with weights from :func:`eradiff.metrics.weights.lpips_weights`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor, nn

from eradiff.core._checks import check_choice
from eradiff.metrics._nets import ALEX_CHANNELS, VGG_CHANNELS, AlexNetTrunk, VGG16Trunk, load_trunk
from eradiff.metrics.weights import LPIPS_NETS, LpipsNet, lpips_weights

InputRange = Literal["[0,1]", "[-1,1]"]
INPUT_RANGES: tuple[str, ...] = get_args(InputRange)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_RANGE_TOLERANCE = 1e-3


def check_images(x: Tensor, *, name: str, input_range: InputRange) -> None:
    """Check that ``x`` is a float (b, 3, h, w) batch inside ``input_range`` (to 1e−3).

    Raises:
        ValueError: naming ``x`` by ``name``, its shape or dtype, or its value range.
    """
    check_choice("input_range", input_range, INPUT_RANGES)
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float (b, 3, h, w) image batch, got {x.dtype} {tuple(x.shape)}")
    lo = 0.0 if input_range == "[0,1]" else -1.0
    if x.numel() and (x.min() < lo - _RANGE_TOLERANCE or x.max() > 1 + _RANGE_TOLERANCE):
        raise ValueError(
            f"{name} has values in [{x.min().item():.4g}, {x.max().item():.4g}], outside input_range={input_range!r}"
        )


def check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity; lower is more similar, 0 for identical images.

    Hyper-parameters are fixed at construction; calling it on two batches returns one value per
    image pair. Gradients flow through it (use ``torch.no_grad()`` for evaluation).

    Args:
        net: trunk, ``"alex"`` (the usual choice for evaluation) or ``"vgg"``.
        input_range: value range of the images passed in, ``"[0,1]"`` or ``"[-1,1]"``.
        weights: the tensors of :func:`~eradiff.metrics.weights.lpips_weights`; fetched (and
            cached) when None.
        cache: cache directory for fetching; default :func:`~eradiff.metrics.weights.cache_dir`.

    References:
        Zhang, Isola, Efros, Shechtman, Wang. The Unreasonable Effectiveness of Deep Features as a
        Perceptual Metric. CVPR 2018.
    """

    def __init__(
        self,
        net: LpipsNet = "alex",
        *,
        input_range: InputRange = "[0,1]",
        weights: dict[str, Tensor] | None = None,
        cache: Path | None = None,
    ) -> None:
        super().__init__()
        check_choice("net", net, LPIPS_NETS)
        check_choice("input_range", input_range, INPUT_RANGES)
        self.net = net
        self.input_range = input_range
        weights = lpips_weights(net, cache=cache) if weights is None else weights
        self.trunk = load_trunk(AlexNetTrunk() if net == "alex" else VGG16Trunk(pool="max"), weights)
        channels = ALEX_CHANNELS if net == "alex" else VGG_CHANNELS
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in channels])
        for k, lin in enumerate(self.lins):
            lin.weight.data.copy_(weights[f"lin{k}.weight"])
        self.lins.requires_grad_(False)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def forward(self, x: Float[Tensor, "b 3 h w"], y: Float[Tensor, "b 3 h w"]) -> Float[Tensor, " b"]:
        """LPIPS distance per image pair.

        Args:
            x: images in ``input_range``, (b, 3, h, w); h, w ≥ 32 for AlexNet, ≥ 16 for VGG.
            y: images of the same shape.

        Returns:
            d(x, y), shape (b,), float32, ≥ 0; symmetric in x and y.
        """
        check_pair(x, y)
        check_images(x, name="x", input_range=self.input_range)
        check_images(y, name="y", input_range=self.input_range)
        both = torch.cat([x, y]).float()
        if self.input_range == "[0,1]":
            both = 2 * both - 1
        both = (both - self.shift) / self.scale
        total = torch.zeros(x.shape[0], device=x.device)
        for feat, lin in zip(self.trunk(both), self.lins, strict=True):
            f = feat / (feat.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fx, fy = f.chunk(2)
            total = total + lin((fx - fy).square()).mean(dim=(1, 2, 3))
        return total
