"""The AlexNet and VGG16 feature trunks LPIPS and DISTS share (torchvision's layouts, no torchvision).

Each trunk returns the five ReLU activations the metrics compare: AlexNet relu1–relu5, VGG16
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3. Parameter names match
:func:`eradiff.metrics.weights.lpips_weights` (``conv{i}.weight``/``conv{i}.bias``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ALEX_CHANNELS = (64, 192, 384, 256, 256)
VGG_CHANNELS = (64, 128, 256, 512, 512)
# VGG16 "D": convolutions per stage; a stage ends at the activation that is returned.
_VGG_STAGES = ((3, 64, 64), (64, 128, 128), (128, 256, 256, 256), (256, 512, 512, 512), (512, 512, 512, 512))


class AlexNetTrunk(nn.Module):
    """torchvision ``alexnet().features`` up to relu5."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 64, 11, stride=4, padding=2)
        self.conv1 = nn.Conv2d(64, 192, 5, padding=2)
        self.conv2 = nn.Conv2d(192, 384, 3, padding=1)
        self.conv3 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv4 = nn.Conv2d(256, 256, 3, padding=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        h1 = F.relu(self.conv0(x))
        h2 = F.relu(self.conv1(F.max_pool2d(h1, 3, 2)))
        h3 = F.relu(self.conv2(F.max_pool2d(h2, 3, 2)))
        h4 = F.relu(self.conv3(h3))
        h5 = F.relu(self.conv4(h4))
        return [h1, h2, h3, h4, h5]


class L2Pool(nn.Module):
    """DISTS' L2 pooling: √(conv(x², 3×3 Hann window, stride 2, padding 1) + 1e−12), per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)  # np.hanning(5)[1:-1]
        g = a[:, None] * a[None, :]
        g = (g / g.sum()).float()
        self.register_buffer("filter", g.expand(channels, 1, 3, 3).contiguous(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(x**2, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class VGG16Trunk(nn.Module):
    """torchvision ``vgg16().features`` up to relu5_3, with max pooling (LPIPS) or L2 pooling (DISTS)."""

    def __init__(self, *, pool: Literal["max", "l2"] = "max") -> None:
        super().__init__()
        i = 0
        for stage in _VGG_STAGES:
            for c_in, c_out in zip(stage[:-1], stage[1:], strict=True):
                self.add_module(f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1))
                i += 1
        self.pools = nn.ModuleList([nn.MaxPool2d(2, 2) if pool == "max" else L2Pool(c) for c in VGG_CHANNELS[:-1]])

    def forward(self, x: Tensor, *, stages: int = 5) -> list[Tensor]:
        """The first ``stages`` (1–5) stage activations: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""
        outs = []
        i = 0
        h = x
        for s, stage in enumerate(_VGG_STAGES[:stages]):
            if s > 0:
                h = self.pools[s - 1](h)
            for _ in range(len(stage) - 1):
                h = F.relu(getattr(self, f"conv{i}")(h))
                i += 1
            outs.append(h)
        return outs


def load_trunk(trunk: nn.Module, weights: dict[str, Tensor]) -> nn.Module:
    """Load the ``trunk.*`` entries of ``weights`` strictly, freeze, and switch to eval mode."""
    state = {name.removeprefix("trunk."): t for name, t in weights.items() if name.startswith("trunk.")}
    trunk.load_state_dict(state, strict=True)
    return trunk.requires_grad_(False).eval()
