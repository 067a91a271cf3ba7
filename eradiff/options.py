"""Options of one erase call, checked without importing torch (the CLI validates them first).

:class:`EraseOptions` is re-exported by :mod:`eradiff.pipeline.erase`, which runs them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

CROP_MARGIN = 128  # px of context around each mask region in cropped windows

InitKind = Literal["noise", "telea", "patchmatch"]
INIT_KINDS = ("noise", "telea", "patchmatch")
DEVICES = ("auto", "cpu", "cuda", "mps")  # eradiff.models.loading.resolve_device
BACKENDS = ("torch", "onnx", "trt")  # the UNet backends: eager torch, or an artifact of eradiff.export
# the classical fills that --model (CLI, server) accepts by name: eradiff.baselines.METHODS
CLASSICAL_MODELS = ("telea", "ns", "biharmonic", "patchmatch")
SamplerKind = Literal["ddim", "dpmpp-2m"]
SAMPLER_KINDS = ("ddim", "dpmpp-2m")  # the step rules of eradiff.pipeline.sampler.STEP_RULES


@dataclass(frozen=True)
class EraseOptions:
    """Options of one erase call (all checked on construction; errors name the bad value).

    Attributes:
        steps: sampling steps of the full chain, ≥ 1; None = the model's own default
            (``model.default_steps``: 20 for SD-class models; the built-in model stores its own).
        sampler: the step rule: ``"ddim"`` (DDIM with η) or ``"dpmpp-2m"`` (DPM-Solver++(2M),
            deterministic, for fewer steps).
        strength: in (0, 1]; 1 starts from pure noise, < 1 from the noised ``init`` (Sec. 5.4).
        eta: DDIM η ≥ 0 (0 = deterministic); the ``"ddim"`` sampler only.
        seed: seed of the per-window generators (window k uses ``seed + k``), ≥ 0.
        dilate: mask dilation in px, ≥ 0.
        feather: paste ramp in px inside the dilated ring, ≥ 0.
        sra: Self-Rectifying Attention on (the "w/o SRA" ablation is ``sra=False``).
        prompt: text prompt (latent family only; empty by default).
        guidance_scale: classifier-free guidance weight (1 = off; latent family only).
        reimpose_known: re-impose the forward-noised known region each step (RePaint); None =
            the family default (on for the pixel family, off for the latent family).
        init: what ``strength < 1`` noises: ``"noise"`` — the original image, object included
            (the paper's Sec. 5.4 setting); ``"telea"`` / ``"patchmatch"`` — the image with the
            hole filled by OpenCV Telea / PatchMatch (for a residual model over the same fill this
            is its residual 0: the chain refines the fill). Irrelevant at strength 1 (pure noise).
        crop_trigger: images whose longer side is at most this are processed whole, px ≥ 1; None = the
            model's own (``model.crop_trigger``: 800 as IOPaint for SD-class models, the native size
            for the small pixel family, whose 256 px windows would otherwise shrink a whole photo).
        crop_margin: context margin around each mask region in cropped windows, px ≥ 0.
    """

    steps: int | None = None
    sampler: SamplerKind = "ddim"
    strength: float = 1.0
    eta: float = 0.0
    seed: int = 0
    dilate: int = 7
    feather: int = 4
    sra: bool = True
    prompt: str = ""
    guidance_scale: float = 1.0
    reimpose_known: bool | None = None
    init: InitKind = "noise"
    crop_trigger: int | None = None
    crop_margin: int = CROP_MARGIN

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if self.steps is not None and int(self.steps * self.strength) < 1:
            raise ValueError(f"strength={self.strength} with steps={self.steps} runs no step; raise one of them")
        if self.sampler not in SAMPLER_KINDS:
            raise ValueError(
                f"sampler={self.sampler!r} is not valid; choose one of {', '.join(map(repr, SAMPLER_KINDS))}"
            )
        if self.eta < 0:
            raise ValueError(f"eta must be ≥ 0, got {self.eta}")
        if self.eta > 0 and self.sampler != "ddim":
            raise ValueError(f"eta={self.eta} needs sampler='ddim'; {self.sampler!r} is deterministic")
        if not 0 <= self.seed < 2**63 - 2**20:
            raise ValueError(f"seed must be in [0, 2^63), got {self.seed}")
        if self.dilate < 0 or self.feather < 0:
            raise ValueError(f"dilate and feather must be ≥ 0, got dilate={self.dilate}, feather={self.feather}")
        if self.guidance_scale < 1.0:
            raise ValueError(f"guidance_scale must be ≥ 1 (1 = off), got {self.guidance_scale}")
        if self.init not in INIT_KINDS:
            raise ValueError(f"init={self.init!r} is not valid; choose one of {', '.join(map(repr, INIT_KINDS))}")
        if (self.crop_trigger is not None and self.crop_trigger < 1) or self.crop_margin < 0:
            raise ValueError(f"crop_trigger must be ≥ 1, crop_margin ≥ 0; got {self.crop_trigger}, {self.crop_margin}")

    def for_model(self, model: Any) -> EraseOptions:
        """These options with ``steps`` resolved against the model's default (checked again)."""
        if self.steps is not None:
            return self
        return dataclasses.replace(self, steps=int(getattr(model, "default_steps", 20)))


__all__ = [
    "BACKENDS",
    "CLASSICAL_MODELS",
    "CROP_MARGIN",
    "DEVICES",
    "INIT_KINDS",
    "SAMPLER_KINDS",
    "EraseOptions",
    "InitKind",
    "SamplerKind",
]
