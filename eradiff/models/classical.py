"""Classical fills as erasure models: ``--model telea | ns | biharmonic | patchmatch``.

A :class:`ClassicalFillModel` goes through the same erase pipeline as a diffusion model (mask
dilation, windows, feathered paste, output formats, the server's queue), but fills each window
with :func:`eradiff.baselines.inpaint_classical` instead of sampling: no network, no steps, the
window at its own resolution. The names are those of ``eradiff eval`` (``telea=telea``), so a
user compares methods on their own photo with the words the evaluation uses.

| name           | method                                     |
| -------------- | ------------------------------------------ |
| ``telea``      | OpenCV Telea (fast marching)               |
| ``ns``         | OpenCV Navier–Stokes                       |
| ``biharmonic`` | scikit-image biharmonic                    |
| ``patchmatch`` | PatchMatch (seeded by ``EraseOptions.seed``) |
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from eradiff.baselines import METHODS
from eradiff.models.family import ErasureModel, classical_fill


class ClassicalFillModel(ErasureModel):
    """A classical inpainting method behind the :class:`ErasureModel` interface (no sampling)."""

    family = "classical"
    native_size = None  # type: ignore[assignment]  # windows keep their own size
    size_multiple = 1
    crop_trigger = 2**31 - 1  # the whole image, as eradiff eval runs the method
    default_steps = 1  # nothing is sampled; the report's step count is nominal

    def __init__(self, method: str, *, radius: int = 5) -> None:
        if method not in METHODS:
            raise ValueError(f"method={method!r} is not valid; choose one of {', '.join(map(repr, METHODS))}")
        self.method = method
        self.radius = radius
        self.name = method
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ClassicalFillModel:
        self.device = torch.device(device)
        return self

    def fill_without_sampling(self, x: Tensor, M: Tensor, *, seed: int) -> Tensor:
        return classical_fill(x.float(), M, method=self.method, radius=self.radius, seed=seed)

    def config_dict(self) -> dict[str, Any]:
        return {"family": self.family, "name": self.name, "method": self.method, "radius": self.radius}

    def checkpoint_config(self) -> dict[str, Any]:
        raise ValueError(f"the classical method {self.method!r} has no weights to save")


__all__ = ["ClassicalFillModel"]
