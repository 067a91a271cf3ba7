"""Noise schedules, mix-up weights and DDIM inference timesteps.

| code name            | symbol                         | where                        |
| -------------------- | ------------------------------ | ---------------------------- |
| ``betas``            | β_t                            | Eq. 1 (DDPM variance)        |
| ``alpha_bars``       | ᾱ_t = ∏_{s≤t} (1 − β_s)        | Eq. 1                        |
| ``mixup_lambdas``    | λ_t (λ_t = 1 − ᾱ_t by default) | Eq. 6, Sec. 5.1              |
| ``ddim_timesteps``   | the sub-sequence τ_i of DDIM   | Eq. 2                        |
| ``previous_timesteps``| t − T/n (the DDIM "prev" step)| Eq. 2                        |
| ``strength_start``   | first index for strength < 1   | Sec. 5.4                     |
| ``schedule_at``      | gather v_t per sample          | —                            |
| ``ScheduleConfig``   | a model's β_t, T and DDIM conventions (diffusers names) | Eq. 1–2     |

Indexing convention. Arrays have length T and are indexed by the *diffusers timestep*
``τ ∈ {0, …, T−1}``, the integer the UNet is conditioned on; the paper's ``t ∈ {1, …, T}`` is
``τ + 1``. The clean state (paper ``t = 0``: ᾱ = 1, λ = 0) is addressed as ``τ = −1`` through
:func:`schedule_at`'s ``value_before_start``.

Schedules are built in float64 and match diffusers' ``DDIMScheduler`` (which builds them in float32)
to float32 tolerance.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from eradiff.core._checks import check_choice

BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
TimestepSpacing = Literal["leading", "trailing", "linspace"]
MixupKind = Literal["one_minus_alpha_bar", "constant"]

_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
_SPACINGS = ("leading", "trailing", "linspace")
_MIXUP_KINDS = ("one_minus_alpha_bar", "constant")


def betas(
    kind: BetaSchedule = "scaled_linear",
    *,
    num_train_timesteps: int = 1000,
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    max_beta: float = 0.999,
) -> Float[Tensor, " T"]:
    """The variance schedule β_t, float64.

    Args:
        kind: ``"linear"`` (β linear in t), ``"scaled_linear"`` (√β linear in t; Stable Diffusion's
            schedule with the defaults 0.00085 → 0.012) or ``"squaredcos_cap_v2"`` (the cosine
            schedule of Nichol & Dhariwal, capped at ``max_beta``; ignores start/end).
        num_train_timesteps: T ≥ 1.
        beta_start: β at τ = 0, in (0, 1).
        beta_end: β at τ = T − 1, in [beta_start, 1).
        max_beta: cap of the cosine schedule, in (0, 1).

    Returns:
        β of shape (T,), float64.

    References:
        Ho et al. 2020 (DDPM); Rombach et al. 2022 (LDM); Nichol & Dhariwal 2021.
    """
    check_choice("kind", kind, _BETA_SCHEDULES)
    if num_train_timesteps < 1:
        raise ValueError(f"num_train_timesteps must be ≥ 1, got {num_train_timesteps}")
    if kind == "squaredcos_cap_v2":
        if not 0.0 < max_beta < 1.0:
            raise ValueError(f"max_beta must be in (0, 1), got {max_beta}")

        def alpha_bar_fn(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        T = num_train_timesteps
        values = [min(1 - alpha_bar_fn((i + 1) / T) / alpha_bar_fn(i / T), max_beta) for i in range(T)]
        return torch.tensor(values, dtype=torch.float64)
    if not 0.0 < beta_start < 1.0:
        raise ValueError(f"beta_start must be in (0, 1), got {beta_start}")
    if not beta_start <= beta_end < 1.0:
        raise ValueError(f"beta_end must be in [beta_start, 1), got {beta_end} (beta_start={beta_start})")
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2


def alpha_bars(beta: Float[Tensor, " T"]) -> Float[Tensor, " T"]:
    """ᾱ_t = ∏_{s ≤ t} (1 − β_s)  (Eq. 1), in float64.

    Args:
        beta: β of shape (T,), every value in (0, 1).

    Returns:
        ᾱ of shape (T,), float64, strictly decreasing in (0, 1).
    """
    if beta.ndim != 1 or beta.numel() == 0:
        raise ValueError(f"beta must be a non-empty 1-D tensor, got shape {tuple(beta.shape)}")
    if bool(((beta <= 0) | (beta >= 1)).any()):
        raise ValueError("beta must lie in (0, 1) everywhere")
    return torch.cumprod(1.0 - beta.to(torch.float64), dim=0)


def mixup_lambdas(
    alpha_bar: Float[Tensor, " T"],
    *,
    kind: MixupKind = "one_minus_alpha_bar",
    value: float = 0.5,
) -> Float[Tensor, " T"]:
    """The mix-up weights λ_t of Eq. 6.

    Args:
        alpha_bar: ᾱ of shape (T,).
        kind: ``"one_minus_alpha_bar"`` — the paper's default λ_t = 1 − ᾱ_t (Sec. 5.1): λ rises
            from ≈0 (background) to ≈1 (object) as noise grows; ``"constant"`` — λ_t = ``value``
            for every t ≥ 1 (the paper's "w/o mix-up" ablation, Table 3).
        value: the constant λ, in [0, 1]; used only by ``"constant"``.

    Returns:
        λ of shape (T,), float64, in [0, 1]. The clean state (τ = −1) has λ_0 = 0 in both kinds;
        pass ``value_before_start=0.0`` to :func:`schedule_at`.
    """
    check_choice("kind", kind, _MIXUP_KINDS)
    if kind == "one_minus_alpha_bar":
        return 1.0 - alpha_bar.to(torch.float64)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"value must be in [0, 1], got {value}")
    return torch.full_like(alpha_bar, value, dtype=torch.float64)


def ddim_timesteps(
    num_inference_steps: int,
    *,
    num_train_timesteps: int = 1000,
    spacing: TimestepSpacing = "leading",
    steps_offset: int = 0,
) -> Int[Tensor, " n"]:
    """The decreasing DDIM timestep sequence, equal to diffusers' ``DDIMScheduler.set_timesteps``.

    The float arithmetic is numpy's, step for step, because diffusers builds the sequence with
    numpy and rounding exact .5 midpoints depends on it (round half to even in both):

    - ``"leading"``: τ_i = i·⌊T/n⌋ + offset.
    - ``"linspace"``: round(i·(T − 1)/(n − 1)) with the last value exactly T − 1, as
      ``numpy.linspace`` computes it; ``torch.linspace`` fills from both ends and lands on the
      other side of .5 for 138 of n ∈ 1..1000 (n = 27, i = 13: 499.49999999999994, so τ = 499 here
      and in diffusers, where ``torch.linspace`` gives 499.50000000000006, so 500).
    - ``"trailing"``: round(T + i·δ) − 1 with δ = (T − T/n) − T, the step ``numpy.arange(T, 0,
      −T/n)`` fills with; δ differs from −T/n in the last bit for some n (n = 48, i = 3:
      937.4999999999999, so τ = 936, where T − i·T/n = 937.5 would give 937).

    One deliberate difference: for ``"trailing"``, float rounding makes ``numpy.arange`` produce
    n + 1 values for some n (62 of n ∈ 1..1000 at T = 1000, e.g. n = 61), so diffusers returns
    n + 1 timesteps, the last one −1 (the clean state, which no UNet call should see). This
    function returns the n real steps: diffusers' first n values.

    Args:
        num_inference_steps: n in [1, T].
        num_train_timesteps: T.
        spacing: ``"leading"``, ``"trailing"`` or ``"linspace"``, cf. Lin et al. 2024, Table 2.
        steps_offset: added to every τ with ``"leading"`` spacing (SD uses 1).

    Returns:
        τ of shape (n,), int64, decreasing.
    """
    check_choice("spacing", spacing, _SPACINGS)
    if not 1 <= num_inference_steps <= num_train_timesteps:
        raise ValueError(f"num_inference_steps must be in [1, {num_train_timesteps}], got {num_inference_steps}")
    n, T = num_inference_steps, num_train_timesteps
    i = torch.arange(n, dtype=torch.float64)
    if spacing == "leading":
        tau = torch.arange(n, dtype=torch.int64) * (T // n) + steps_offset
        return tau.flip(0)
    if spacing == "trailing":
        delta = (T + -(T / n)) - T
        return (T + i * delta).round().to(torch.int64) - 1
    if n == 1:
        return torch.zeros(1, dtype=torch.int64)  # numpy.linspace(0, T − 1, 1) is [0]
    grid = i * ((T - 1) / (n - 1))
    grid[-1] = T - 1
    return grid.round().to(torch.int64).flip(0)


def previous_timesteps(
    timesteps: Int[Tensor, " n"], *, num_inference_steps: int, num_train_timesteps: int = 1000
) -> Int[Tensor, " n"]:
    """The DDIM "previous" timestep of each τ: τ − ⌊T/n⌋ (may be negative = the final step).

    diffusers' ``DDIMScheduler.step`` uses this rule for every spacing; a negative value means the
    step lands on the final state, whose ᾱ is ``final_alpha_bar`` (1, or ᾱ_0 when
    ``set_alpha_to_one=False`` as in Stable Diffusion 2).
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be ≥ 1, got {num_inference_steps}")
    return timesteps - num_train_timesteps // num_inference_steps


def strength_start(num_inference_steps: int, strength: float) -> int:
    """Index of the first timestep to run for img2img-style ``strength`` (Sec. 5.4).

    ``strength = 1`` runs every step from pure noise; ``strength = 0.6`` skips the first 40 % and
    starts from the original noised to the remaining first timestep. Same rule as diffusers'
    inpainting pipeline ``get_timesteps``.

    Args:
        num_inference_steps: n ≥ 1.
        strength: in (0, 1].

    Returns:
        ``i0`` in [0, n): run ``timesteps[i0:]``.
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be ≥ 1, got {num_inference_steps}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    init = min(int(num_inference_steps * strength), num_inference_steps)
    if init == 0:
        raise ValueError(
            f"strength={strength} with num_inference_steps={num_inference_steps} runs no step; raise strength or steps"
        )
    return num_inference_steps - init


def schedule_at(
    values: Float[Tensor, " T"],
    t: Int[Tensor, " b"],
    *,
    value_before_start: float,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, " b"]:
    """Per-sample schedule values v_τ for integer timesteps, with τ = −1 meaning the clean state.

    Args:
        values: a schedule of shape (T,) (ᾱ, λ, …).
        t: timesteps of shape (b,), each in [−1, T − 1].
        value_before_start: the value at τ = −1 (ᾱ: 1 for the clean image or ᾱ_0 for SD2's final
            step; λ: 0).
        dtype: the dtype of the result (the schedule is gathered in float64, then cast).

    Returns:
        v of shape (b,), on ``t``'s device.
    """
    if t.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"t must be an integer tensor, got dtype {t.dtype}")
    T = values.shape[0]
    if t.numel() and (int(t.min()) < -1 or int(t.max()) >= T):
        raise ValueError(f"t must lie in [-1, {T - 1}], got range [{int(t.min())}, {int(t.max())}]")
    padded = torch.cat([values.new_tensor([value_before_start]), values]).to(torch.float64)
    return padded.to(t.device)[t.long() + 1].to(dtype)


def lognormal_timestep_probs(
    alpha_bar: Float[Tensor, " T"], *, p_mean: float = -1.2, p_std: float = 1.2, uniform_share: float = 0.0
) -> Float[Tensor, " T"]:
    """Probabilities of drawing each τ when ln σ ~ N(P_mean, P_std²) (EDM, Karras et al. 2022).

    σ_τ = √((1 − ᾱ_τ)/ᾱ_τ) is the variance-exploding noise level of τ; τ gets the normal mass of
    ln σ between the midpoints to its neighbours (the ends take the tails), so the probabilities
    sum to 1. ``uniform_share`` mixes in U{0..T−1}: p = u/T + (1 − u)·p_lognormal.

    Args:
        alpha_bar: ᾱ of shape (T,), decreasing.
        p_mean, p_std: the normal distribution of ln σ (EDM: −1.2, 1.2 for data of std 0.5).
        uniform_share: u in [0, 1].

    Returns:
        (T,) float64, non-negative, summing to 1.
    """
    if not p_std > 0:
        raise ValueError(f"p_std must be > 0, got {p_std}")
    if not 0.0 <= uniform_share <= 1.0:
        raise ValueError(f"uniform_share must be in [0, 1], got {uniform_share}")
    a = alpha_bar.double()
    log_sigma = 0.5 * torch.log((1 - a) / a)
    edges = (log_sigma[1:] + log_sigma[:-1]) / 2
    cdf = 0.5 * (1 + torch.erf((edges - p_mean) / (p_std * 2**0.5)))
    cdf = torch.cat([cdf.new_zeros(1), cdf, cdf.new_ones(1)])
    p = (cdf[1:] - cdf[:-1]).clamp_min(0)
    p = p / p.sum()
    T = a.shape[0]
    return uniform_share / T + (1 - uniform_share) * p


@dataclass(frozen=True)
class ScheduleConfig:
    """The noise schedule and sampler conventions a model was trained with (diffusers names).

    A plain value object: samplers take one to know β_t (hence ᾱ_t), T, the prediction type and how
    inference timesteps are spaced. It reads nothing and holds no tensors.
    """

    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"
    timestep_spacing: str = "leading"
    steps_offset: int = 1
    set_alpha_to_one: bool = False

    def alpha_bar(self) -> Float[Tensor, " T"]:
        """ᾱ of shape (T,), float64."""
        kw = (
            {}
            if self.beta_schedule == "squaredcos_cap_v2"
            else dict(beta_start=self.beta_start, beta_end=self.beta_end)
        )
        beta = betas(self.beta_schedule, num_train_timesteps=self.num_train_timesteps, **kw)  # type: ignore[arg-type]
        return alpha_bars(beta)

    def final_alpha_bar(self) -> float:
        """ᾱ used after the last DDIM step (1, or ᾱ_0 when ``set_alpha_to_one`` is False)."""
        return 1.0 if self.set_alpha_to_one else float(self.alpha_bar()[0])

    @classmethod
    def from_diffusers(cls, config: dict[str, Any]) -> "ScheduleConfig":
        names = cls.__dataclass_fields__
        return cls(**{k: config[k] for k in names if k in config})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
