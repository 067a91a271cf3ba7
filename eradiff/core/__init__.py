"""eradiff.core: the pure mathematics of EraDiff (torch only; no I/O, no global RNG).

Every later layer (training, the erase pipeline, export) calls these functions.

| name                          | paper symbol                                   | equation      | module      |
| ----------------------------- | ---------------------------------------------- | ------------- | ----------- |
| ``betas``                     | β_t                                            | Eq. 1         | schedules   |
| ``alpha_bars``                | ᾱ_t = ∏(1 − β_s)                               | Eq. 1         | schedules   |
| ``mixup_lambdas``             | λ_t = 1 − ᾱ_t (or constant)                    | Eq. 6, §5.1   | schedules   |
| ``ddim_timesteps``            | DDIM sub-sequence τ_i                          | Eq. 2         | schedules   |
| ``previous_timesteps``        | τ_i − T/n                                      | Eq. 2         | schedules   |
| ``strength_start``            | first step for strength < 1                    | §5.4          | schedules   |
| ``lognormal_timestep_probs``  | p(τ) with ln σ ~ N(P_mean, P_std²) (EDM)        | EDM §5        | schedules   |
| ``schedule_at``               | v_t per sample (τ = −1: clean)                 | —             | schedules   |
| ``ScheduleConfig``            | β_t, T and DDIM conventions of a model         | Eq. 1–2       | schedules   |
| ``mix``                       | x̃_t^mix = (1−λ_t)x_0^ori + λ_t x_0^obj        | Eq. 6         | mixup       |
| ``q_sample``                  | x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε                    | Eq. 1         | mixup       |
| ``mixed_state``               | x_t^mix = √ᾱ_t x̃_t^mix + √(1−ᾱ_t) ε           | Eq. 7         | mixup       |
| ``velocity``                  | v = √ᾱ_t ε − √(1−ᾱ_t) x_0                      | (v-pred)      | mixup       |
| ``predict_x0_eps``            | (x̂_0, ε̂) from ε_θ or v_θ                     | Eq. 2         | ddim        |
| ``ddim_jump``                 | x̂_{t−γ} (deterministic, σ = 0)                | Eq. 8         | ddim        |
| ``ddim_jump_coefficients``    | (a, b): x̂_s = a x_t + b ε_θ                   | Eq. 8         | ddim        |
| ``ddim_sigma``                | σ_t(η)                                         | Eq. 2         | ddim        |
| ``ddim_step``                 | x_prev with η and explicit ε_t                 | Eq. 2         | ddim        |
| ``clip_x0_hat``               | x̂_0 clipped to the model's range               | Eq. 2         | ddim        |
| ``dpmpp_2m_step``             | x_s by DPM-Solver++(2M) from x̂_0, x̂_0,prev    | Lu+22 Alg. 2  | dpm_solver  |
| ``draw_timesteps_and_noise``  | t ~ U{1..T}, γ ~ U{1..γ_m}, ε ~ N(0, I)        | Alg. 1        | loss        |
| ``cro_states``                | (x_t^mix, x_{t−γ}^mix)                         | Eq. 6–7       | loss        |
| ``cro_loss``                  | ‖x_{t−γ}^mix − x̂_{t−γ}^mix‖²                  | Eq. 9         | loss        |
| ``standard_loss``             | ‖ε − ε_θ(x_t)‖²                                | Eq. 3         | loss        |
| ``CROObjective``              | Eq. 9 with λ, ᾱ, weighting bound               | Eq. 9, Alg. 1 | loss        |
| ``StandardObjective``         | Eq. 3 with ᾱ bound                             | Eq. 3         | loss        |
| ``downsample_mask``           | M → m at one grid (any-pixel rule)             | §4.2          | sra         |
| ``grid_size``                 | (⌈h/2^k⌉, ⌈w/2^k⌉)                             | §4.2          | sra         |
| ``tokens_mask``               | m ∈ {0,1}^{wh} for an n-token layer            | §4.2          | sra         |
| ``sra_allowed``               | m′ as "may attend" booleans                    | Eq. 10        | sra         |
| ``sra_bias``                  | m′ as an additive 0/−∞ bias                    | Eq. 10–11     | sra         |
| ``sra_attention``             | Softmax(QKᵀ/√d + m′)V                          | Eq. 11        | sra         |

Conventions: tensors first in equation order, options keyword-only; per-sample schedule values
are (b,) tensors; losses return (b,); timesteps are diffusers indices τ = t − 1 with τ = −1 the
clean state; masks are boolean with True = erase.
"""

from eradiff.core.ddim import (
    PREDICTION_TYPES,
    PredictionType,
    clip_x0_hat,
    ddim_jump,
    ddim_jump_coefficients,
    ddim_sigma,
    ddim_step,
    predict_x0_eps,
)
from eradiff.core.dpm_solver import dpmpp_2m_step
from eradiff.core.loss import (
    CROObjective,
    Draw,
    StandardObjective,
    cro_loss,
    cro_states,
    draw_timesteps_and_noise,
    standard_loss,
)
from eradiff.core.mixup import mix, mixed_state, q_sample, velocity
from eradiff.core.schedules import (
    ScheduleConfig,
    alpha_bars,
    betas,
    ddim_timesteps,
    lognormal_timestep_probs,
    mixup_lambdas,
    previous_timesteps,
    schedule_at,
    strength_start,
)
from eradiff.core.sra import (
    downsample_mask,
    grid_size,
    level_for_tokens,
    sra_allowed,
    sra_attention,
    sra_bias,
    tokens_mask,
)

__all__ = [
    "PREDICTION_TYPES",
    "CROObjective",
    "Draw",
    "PredictionType",
    "ScheduleConfig",
    "StandardObjective",
    "alpha_bars",
    "betas",
    "clip_x0_hat",
    "cro_loss",
    "cro_states",
    "ddim_jump",
    "ddim_jump_coefficients",
    "ddim_sigma",
    "ddim_step",
    "ddim_timesteps",
    "downsample_mask",
    "dpmpp_2m_step",
    "draw_timesteps_and_noise",
    "grid_size",
    "level_for_tokens",
    "mix",
    "mixed_state",
    "mixup_lambdas",
    "predict_x0_eps",
    "previous_timesteps",
    "q_sample",
    "schedule_at",
    "sra_allowed",
    "sra_attention",
    "sra_bias",
    "standard_loss",
    "strength_start",
    "lognormal_timestep_probs",
    "tokens_mask",
    "velocity",
]
