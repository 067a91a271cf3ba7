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
MAX_STEPS = 500  # the HTTP API's per-request limits (cost bounds; the library itself has none)
MAX_DILATE = 512


@dataclass(frozen=True)
class OptionInfo:
    """What the command line, the HTTP API and ``/api/model`` know of one :class:`EraseOptions` field.

    Attributes:
        help: one sentence, the CLI's help and the API's description (which adds the range).
        flag: the CLI flag (a typer declaration such as ``"--sra/--no-sra"``); None = not a CLI option.
        api: accepted in the HTTP API's ``options`` and listed by ``/api/model``.
        low, high: the valid range, checked by :class:`EraseOptions` itself (None = unbounded).
        low_open: ``low`` itself is invalid (``strength`` ∈ (0, 1]).
        api_high: the server's tighter upper bound (a per-request cost limit), None = ``high``.
        choices: the valid strings of a choice option.
        random: ``-1`` (CLI, API) and ``null`` (API) draw a random value (the seed).
        max_length: the API's limit on a string's length.
    """

    help: str
    flag: str | None = None
    api: bool = True
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    api_high: float | None = None
    choices: tuple[str, ...] | None = None
    random: bool = False
    max_length: int | None = None

    def in_range(self, value: float, *, api: bool = False) -> bool:
        """``value`` lies in [low, high] (``(low, high]`` when ``low_open``); ``api``: high = ``api_high``."""
        high = self.api_high if api and self.api_high is not None else self.high
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        return not too_low and (high is None or value <= high)

    def range_text(self, *, api: bool = False) -> str:
        """``"1–500"``, ``"(0, 1]"``, ``"≥ 0"``, ``"ddim, dpmpp-2m"`` or ``""``."""
        high = self.api_high if api and self.api_high is not None else self.high
        if self.choices is not None:
            return ", ".join(self.choices)
        if self.low_open:
            return f"({_num(self.low)}, {_num(high)}]"
        if self.low is not None and high is not None and high < 1e9:
            return f"{_num(self.low)}–{_num(high)}"
        return f"≥ {_num(self.low)}" if self.low is not None else ""


def _num(x: float | None) -> str:
    if x is None:
        return "∞"
    if abs(x) >= 1e9:
        return f"{x:.3g}"
    return str(int(x)) if float(x).is_integer() else str(x)


def _opt(default: Any, **info: Any) -> Any:
    return dataclasses.field(default=default, metadata={"option": OptionInfo(**info)})


@dataclass(frozen=True)
class EraseOptions:
    """Options of one erase call (all checked on construction; errors name the bad value).

    Each field declares its help, range, CLI flag and API exposure once (:class:`OptionInfo` in
    its metadata, listed by :func:`option_infos`); the CLI, the HTTP API's validation and
    ``/api/model`` read them from there.

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

    steps: int | None = _opt(
        None, flag="--steps", low=1, api_high=MAX_STEPS,
        help="sampling steps; default: the model's own (1 for the built-in model, 20 for SD-class models)",
    )  # fmt: skip
    sampler: SamplerKind = _opt(
        "ddim", flag="--sampler", choices=SAMPLER_KINDS,
        help="step rule (dpmpp-2m = DPM-Solver++(2M): deterministic, for fewer steps)",
    )  # fmt: skip
    strength: float = _opt(
        1.0, flag="--strength", low=0, high=1, low_open=True, help="1 starts from pure noise, < 1 from the noised init"
    )
    eta: float = _opt(0.0, flag="--eta", low=0, api_high=1, help="DDIM eta (0 = deterministic)")
    seed: int = _opt(0, flag="--seed", low=0, high=2**63 - 2**20 - 1, random=True, help="seed")
    dilate: int = _opt(7, flag="--dilate", low=0, api_high=MAX_DILATE, help="grow the mask by this many pixels")
    feather: int = _opt(
        4, flag="--feather", low=0, api_high=MAX_DILATE, help="soft paste edge in pixels inside the dilated ring"
    )
    sra: bool = _opt(True, flag="--sra/--no-sra", help="Self-Rectifying Attention on/off ('w/o SRA' ablation: off)")
    prompt: str = _opt("", flag="--prompt", max_length=500, help="text prompt (latent models; empty by default)")
    guidance_scale: float = _opt(
        1.0, flag="--guidance", low=1, api_high=30, help="classifier-free guidance scale (1 = off)"
    )
    reimpose_known: bool | None = _opt(
        None, flag="--reimpose/--no-reimpose", api=False,
        help="re-impose the known region each step (default: on for pixel models)",
    )  # fmt: skip
    init: InitKind = _opt(
        "noise", flag="--init", choices=INIT_KINDS,
        help="what strength < 1 noises: the original image (noise) or a classical fill of the hole",
    )  # fmt: skip
    crop_trigger: int | None = _opt(
        None, api=False, low=1, help="images with a longer side up to this are processed whole (px)"
    )
    crop_margin: int = _opt(CROP_MARGIN, api=False, low=0, help="context around each mask region in windows (px)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f.name, getattr(self, f.name), f.metadata["option"])
        if self.steps is not None and int(self.steps * self.strength) < 1:
            raise ValueError(f"strength={self.strength} with steps={self.steps} runs no step; raise one of them")
        if self.eta > 0 and self.sampler != "ddim":
            raise ValueError(f"eta={self.eta} needs sampler='ddim'; {self.sampler!r} is deterministic")

    def for_model(self, model: Any) -> EraseOptions:
        """These options with ``steps`` resolved against the model's default (checked again)."""
        if self.steps is not None:
            return self
        return dataclasses.replace(self, steps=int(getattr(model, "default_steps", 20)))


def _check_field(name: str, value: Any, info: OptionInfo) -> None:
    if value is None:
        return
    if info.choices is not None:
        if value not in info.choices:
            raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, info.choices))}")
        return
    if not info.in_range(value):
        text = info.range_text()
        raise ValueError(f"{name} must be {'in ' + text if not text.startswith('≥') else text}, got {value}")


def option_infos() -> dict[str, OptionInfo]:
    """Every :class:`EraseOptions` field's :class:`OptionInfo`, in declaration order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(EraseOptions)}


def option_defaults() -> dict[str, Any]:
    """Every :class:`EraseOptions` field's default."""
    return {f.name: f.default for f in dataclasses.fields(EraseOptions)}


__all__ = [
    "BACKENDS",
    "CLASSICAL_MODELS",
    "CROP_MARGIN",
    "DEVICES",
    "INIT_KINDS",
    "MAX_DILATE",
    "MAX_STEPS",
    "SAMPLER_KINDS",
    "EraseOptions",
    "OptionInfo",
    "InitKind",
    "SamplerKind",
    "option_defaults",
    "option_infos",
]
