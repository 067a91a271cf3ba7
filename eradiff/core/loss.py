"""Training objectives: Chain-Rectifying Optimization (Eq. 9) and the standard ε-loss (Eq. 3).

| code name        | symbol                                                           | equation   |
| ---------------- | ---------------------------------------------------------------- | ---------- |
| ``t``            | t ~ U{1..T} (stored as the diffusers index τ = t − 1 ∈ {0..T−1})  | Alg. 1     |
| ``gamma``        | γ ~ U{1..γ_m}                                                     | Alg. 1     |
| ``gamma_max``    | γ_m (100 in the paper)                                            | Sec. 5.1   |
| ``s``            | t − γ, clamped at the clean state (τ = −1, ᾱ = 1, λ = 0)          | Eq. 8      |
| ``eps``          | ε ~ N(0, I), shared by x_t^mix and x_{t−γ}^mix                    | Eq. 7      |
| ``x_t_mix``      | x_t^mix                                                           | Eq. 7      |
| ``x_s_mix``      | x_{t−γ}^mix (the target)                                          | Eq. 6–7    |
| ``x_s_hat``      | x̂_{t−γ}^mix = DDIM jump of the model output                       | Eq. 8      |
| ``cro_loss``     | ‖x_{t−γ}^mix − x̂_{t−γ}^mix‖²                                      | Eq. 9      |
| ``standard_loss``| ‖ε − ε_θ(x_t)‖² (or ‖v − v_θ‖² for v-prediction)                  | Eq. 3      |

Randomness is separate from the maths: :func:`draw_timesteps_and_noise` makes every random draw
from explicit ``torch.Generator`` objects; the losses are deterministic functions of tensors and
return per-sample values of shape (b,); the training loop reduces them.

Weighting. Eq. 9 in its literal form (``weighting="paper"``) weights each sample by b², the
squared coefficient of the model output in the DDIM jump (see
:func:`eradiff.core.ddim.ddim_jump_coefficients`); b → 0 as γ → 0 or t → 0, so small-noise
steps get little gradient. ``weighting="output"`` divides by b², which turns Eq. 9 into an exact
regression of the model output onto the output that would reproduce x_{t−γ}^mix; with λ ≡ 0 it
is precisely the standard ε (or v) loss of Eq. 3.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from eradiff.core._checks import check_choice, check_per_sample, check_same_shape
from eradiff.core.ddim import PredictionType, ddim_jump, ddim_jump_coefficients
from eradiff.core.mixup import mixed_state, q_sample, velocity
from eradiff.core.schedules import schedule_at

Weighting = Literal["paper", "output"]
WEIGHTINGS = ("paper", "output")


@dataclass(frozen=True)
class Draw:
    """The random draws of one training step (Algorithm 1, lines 2–4).

    Attributes:
        t: diffusers timesteps τ = t − 1, shape (b,), int64 in [0, T − 1].
        gamma: γ, shape (b,), int64 in [1, γ_m].
        s: τ − γ clamped at −1 (the clean state), shape (b,), int64.
        eps: ε, shape (b, ...).
    """

    t: Int[Tensor, " b"]
    gamma: Int[Tensor, " b"]
    s: Int[Tensor, " b"]
    eps: Float[Tensor, " b *dims"]


def draw_timesteps_and_noise(
    shape: Sequence[int],
    *,
    generator: torch.Generator | Sequence[torch.Generator],
    num_train_timesteps: int = 1000,
    gamma_max: int = 100,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    t_probs: Tensor | None = None,
) -> Draw:
    """Draw t ~ U{1..T}, γ ~ U{1..γ_m} and ε ~ N(0, I) (Algorithm 1).

    Args:
        shape: the sample shape (b, ...).
        generator: one ``torch.Generator`` for the batch, or one per sample (length b); with one per
            sample, sample i depends only on ``generator[i]``, so results do not depend on how a
            global batch is split across processes.
        num_train_timesteps: T.
        gamma_max: γ_m ≥ 1 (paper: 100).
        device: where to put the tensors (the generators must live on the same device type).
        dtype: dtype of ε.
        t_probs: (T,) probabilities of each τ instead of the uniform draw (e.g.
            :func:`eradiff.core.lognormal_timestep_probs`); None = uniform (Algorithm 1).

    Returns:
        A :class:`Draw`.
    """
    if len(shape) < 1 or shape[0] < 1:
        raise ValueError(f"shape must start with a batch size ≥ 1, got {tuple(shape)}")
    if gamma_max < 1:
        raise ValueError(f"gamma_max must be ≥ 1, got {gamma_max}")
    if num_train_timesteps < 1:
        raise ValueError(f"num_train_timesteps must be ≥ 1, got {num_train_timesteps}")
    b = shape[0]
    if t_probs is not None and (t_probs.shape != (num_train_timesteps,) or not bool((t_probs >= 0).all())):
        raise ValueError(
            f"t_probs must be ({num_train_timesteps},) non-negative probabilities, got {tuple(t_probs.shape)}"
        )
    probs = None if t_probs is None else t_probs.double().cpu()

    def draw_t(n: int, g: torch.Generator) -> Tensor:
        if probs is None:
            return torch.randint(0, num_train_timesteps, (n,), generator=g, device=device)
        return torch.multinomial(probs, n, replacement=True, generator=g).to(device)

    if isinstance(generator, torch.Generator):
        gens: list[torch.Generator] | None = None
    else:
        gens = list(generator)
        if len(gens) != b:
            raise ValueError(f"generator must be one Generator or {b} of them (one per sample), got {len(gens)}")
    if gens is None:
        t = draw_t(b, generator)
        gamma = torch.randint(1, gamma_max + 1, (b,), generator=generator, device=device)
        eps = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    else:
        rows = [
            (
                draw_t(1, g),
                torch.randint(1, gamma_max + 1, (1,), generator=g, device=device),
                torch.randn((1, *shape[1:]), generator=g, device=device, dtype=dtype),
            )
            for g in gens
        ]
        t = torch.cat([r[0] for r in rows])
        gamma = torch.cat([r[1] for r in rows])
        eps = torch.cat([r[2] for r in rows])
    return Draw(t=t, gamma=gamma, s=(t - gamma).clamp_min(-1), eps=eps)


def cro_states(
    x_ori: Float[Tensor, " b *dims"],
    x_obj: Float[Tensor, " b *dims"],
    eps: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    alpha_bar_s: Float[Tensor, " b"],
    lam_t: Float[Tensor, " b"],
    lam_s: Float[Tensor, " b"],
) -> tuple[Float[Tensor, " b *dims"], Float[Tensor, " b *dims"]]:
    """The true states (x_t^mix, x_{t−γ}^mix) of the self-rectifying chain (Eq. 6–7, one ε)."""
    return (
        mixed_state(x_ori, x_obj, eps, alpha_bar_t, lam_t),
        mixed_state(x_ori, x_obj, eps, alpha_bar_s, lam_s),
    )


def _reduce(sq: Tensor, weight: Tensor | None) -> Tensor:
    if weight is not None:
        if weight.ndim != sq.ndim or weight.shape[0] != sq.shape[0]:
            raise ValueError(
                f"weight must broadcast to {tuple(sq.shape)} with the same batch size, got {tuple(weight.shape)}"
            )
        sq = sq * weight.to(sq.dtype)
    return sq.flatten(1).mean(dim=1)


def cro_loss(
    model_output: Float[Tensor, " b *dims"],
    x_t_mix: Float[Tensor, " b *dims"],
    x_s_mix: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    alpha_bar_s: Float[Tensor, " b"],
    *,
    prediction_type: PredictionType = "epsilon",
    weighting: Weighting = "paper",
    weight: Float[Tensor, " b *wdims"] | None = None,
) -> Float[Tensor, " b"]:
    """The Chain-Rectifying Optimization objective, per sample  (Eq. 9).

    1. x̂_{t−γ}^mix = DDIM jump of ``model_output`` from t to s = t − γ  (Eq. 8);
    2. per-pixel squared error against the true state x_{t−γ}^mix  (Eq. 9);
    3. optional per-pixel ``weight``, optional division by b² (``weighting="output"``), mean over
       all non-batch dimensions.

    Args:
        model_output: ε_θ^(t)(x_t^mix) (or v_θ), shape (b, ...).
        x_t_mix: the network's input state x_t^mix, same shape.
        x_s_mix: the target state x_{t−γ}^mix, same shape.
        alpha_bar_t: ᾱ_t, shape (b,).
        alpha_bar_s: ᾱ_{t−γ}, shape (b,) (1 where t − γ is the clean state).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.
        weighting: ``"paper"`` (literal Eq. 9) or ``"output"`` (divided by b², see module doc).
        weight: optional non-negative per-pixel weight broadcastable to ``model_output`` (same
            number of dimensions), e.g. larger inside the mask.

    Returns:
        The loss per sample, shape (b,).
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    check_same_shape("x_t_mix", x_t_mix, "model_output", model_output)
    check_same_shape("x_s_mix", x_s_mix, "model_output", model_output)
    check_per_sample("alpha_bar_t", alpha_bar_t, model_output)
    x_s_hat = ddim_jump(x_t_mix, model_output, alpha_bar_t, alpha_bar_s, prediction_type=prediction_type)
    loss = _reduce((x_s_mix - x_s_hat) ** 2, weight)
    if weighting == "output":
        _, b = ddim_jump_coefficients(alpha_bar_t.double(), alpha_bar_s.double(), prediction_type=prediction_type)
        loss = loss / (b**2).to(loss.dtype)
    return loss


def standard_loss(
    model_output: Float[Tensor, " b *dims"],
    x_0: Float[Tensor, " b *dims"],
    eps: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    *,
    prediction_type: PredictionType = "epsilon",
    weight: Float[Tensor, " b *wdims"] | None = None,
) -> Float[Tensor, " b"]:
    """The standard denoising loss ‖ε − ε_θ(x_t)‖² (Eq. 3), or ‖v − v_θ(x_t)‖² for v-prediction.

    Args:
        model_output: the network output at x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, shape (b, ...).
        x_0: the clean target (x_0^ori), same shape.
        eps: the ε used to make x_t, same shape.
        alpha_bar_t: ᾱ_t, shape (b,).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.
        weight: optional per-pixel weight as in :func:`cro_loss`.

    Returns:
        The loss per sample, shape (b,).
    """
    check_choice("prediction_type", prediction_type, ("epsilon", "v_prediction"))
    check_same_shape("x_0", x_0, "model_output", model_output)
    check_same_shape("eps", eps, "model_output", model_output)
    target = eps if prediction_type == "epsilon" else velocity(x_0, eps, alpha_bar_t)
    return _reduce((target - model_output) ** 2, weight)


@dataclass(frozen=True)
class CROObjective:
    """Eq. 9 with its hyper-parameters bound once (EDM-style loss object).

    ``__call__`` takes a model callable ``model(x_t, t) -> output`` (conditioning such as the mask
    and masked image is bound by the caller, e.g. with ``functools.partial``), the clean pair and
    a :class:`Draw`, and returns the per-sample loss.

    Attributes:
        alpha_bar: ᾱ of shape (T,) (float64 schedule).
        lam: λ of shape (T,) (λ_0 = 0 is implied for the clean state).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.
        weighting: ``"paper"`` or ``"output"``.
    """

    alpha_bar: Float[Tensor, " T"]
    lam: Float[Tensor, " T"]
    prediction_type: PredictionType = "epsilon"
    weighting: Weighting = "paper"

    def __call__(
        self,
        model,
        x_ori: Float[Tensor, " b *dims"],
        x_obj: Float[Tensor, " b *dims"],
        draw: Draw,
        *,
        weight: Float[Tensor, " b *wdims"] | None = None,
    ) -> Float[Tensor, " b"]:
        dtype = x_ori.dtype
        a_t = schedule_at(self.alpha_bar, draw.t, value_before_start=1.0, dtype=dtype)
        a_s = schedule_at(self.alpha_bar, draw.s, value_before_start=1.0, dtype=dtype)
        l_t = schedule_at(self.lam, draw.t, value_before_start=0.0, dtype=dtype)
        l_s = schedule_at(self.lam, draw.s, value_before_start=0.0, dtype=dtype)
        x_t_mix, x_s_mix = cro_states(x_ori, x_obj, draw.eps, a_t, a_s, l_t, l_s)
        out = model(x_t_mix, draw.t)
        return cro_loss(
            out, x_t_mix, x_s_mix, a_t, a_s,
            prediction_type=self.prediction_type, weighting=self.weighting, weight=weight,
        )  # fmt: skip


@dataclass(frozen=True)
class StandardObjective:
    """Eq. 3 on x_ori with hyper-parameters bound once; same calling convention as CROObjective.

    ``x_obj`` is accepted and ignored, so the training loop can switch objectives with one flag.
    """

    alpha_bar: Float[Tensor, " T"]
    prediction_type: PredictionType = "epsilon"

    def __call__(
        self,
        model,
        x_ori: Float[Tensor, " b *dims"],
        x_obj: Float[Tensor, " b *dims"],
        draw: Draw,
        *,
        weight: Float[Tensor, " b *wdims"] | None = None,
    ) -> Float[Tensor, " b"]:
        a_t = schedule_at(self.alpha_bar, draw.t, value_before_start=1.0, dtype=x_ori.dtype)
        x_t = q_sample(x_ori, draw.eps, a_t)
        out = model(x_t, draw.t)
        return standard_loss(out, x_ori, draw.eps, a_t, prediction_type=self.prediction_type, weight=weight)
