"""DPM-Solver++(2M): the second-order multistep solver of the diffusion ODE in data prediction.

| code name         | symbol                                              | equation (Lu et al. 2022)   |
| ----------------- | --------------------------------------------------- | --------------------------- |
| ``x_t``           | x̃_{t_{i−1}}, the current state                      | Alg. 2                      |
| ``x0_hat``        | x_θ(x̃_{t_{i−1}}, t_{i−1}) = D_0, the model's x̂_0   | Alg. 2                      |
| ``x0_prev``       | x_θ at the previous evaluation t_{i−2}              | Alg. 2                      |
| ``alpha_bar_t``   | ᾱ_{t_{i−1}}: α_t = √ᾱ_t, σ_t = √(1−ᾱ_t)             | Sec. 2                      |
| ``alpha_bar_s``   | ᾱ_{t_i}, the state the step lands on                | Alg. 2                      |
| ``alpha_bar_u``   | ᾱ_{t_{i−2}}, where ``x0_prev`` was evaluated        | Alg. 2                      |
| (internal) λ      | λ_t = log(α_t/σ_t), the half log-SNR                | Sec. 2                      |
| (internal) h, r   | h_i = λ_s − λ_t, r_i = h_{i−1}/h_i                  | Alg. 2                      |

Step (Alg. 2, "2M", the midpoint form that diffusers' ``DPMSolverMultistepScheduler`` uses):

    D = (1 + 1/(2r))·x̂_0 − 1/(2r)·x̂_0,prev
    x_s = (σ_s/σ_t)·x_t − α_s·(e^{−h} − 1)·D

Without ``x0_prev`` the step is first order (D = x̂_0), which is exactly DDIM with η = 0: the
solver starts with it, and ends with it (diffusers' ``final_sigmas_type="zero"`` rule; with
σ_s = 0, r = 0 and the second-order term is undefined).
"""

from jaxtyping import Float
from torch import Tensor

from eradiff.core._checks import check_per_sample, check_same_shape, expand_as


def dpmpp_2m_step(
    x_t: Float[Tensor, " b *dims"],
    x0_hat: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    alpha_bar_s: Float[Tensor, " b"],
    *,
    x0_prev: Float[Tensor, " b *dims"] | None = None,
    alpha_bar_u: Float[Tensor, " b"] | None = None,
) -> Float[Tensor, " b *dims"]:
    """One DPM-Solver++(2M) step from t to s < t (Lu et al. 2022, Alg. 2).

    Args:
        x_t: the state at t, shape (b, ...).
        x0_hat: the model's x̂_0 at (x_t, t), same shape (clip it before, if the model's space is
            bounded).
        alpha_bar_t: ᾱ_t per sample, shape (b,), in (0, 1).
        alpha_bar_s: ᾱ_s per sample, shape (b,), in (ᾱ_t, 1]; 1 only for a first-order step.
        x0_prev: x̂_0 of the previous model evaluation (at u > t), or None for the first-order step.
        alpha_bar_u: ᾱ_u of that evaluation, shape (b,); required with ``x0_prev``.

    Returns:
        x_s, shaped like ``x_t``. The coefficients are computed in float64 and cast to x_t's dtype.

    References:
        Lu, Zhou, Bao, Chen, Li, Zhu: "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
        Probabilistic Models", 2022, Algorithm 2.
    """
    check_same_shape("x0_hat", x0_hat, "x_t", x_t)
    check_per_sample("alpha_bar_t", alpha_bar_t, x_t)
    check_per_sample("alpha_bar_s", alpha_bar_s, x_t)
    if (x0_prev is None) != (alpha_bar_u is None):
        raise ValueError("x0_prev and alpha_bar_u must be given together (second order) or not at all")
    a_t, a_s = alpha_bar_t.double(), alpha_bar_s.double()
    if bool((a_s <= a_t).any()):
        raise ValueError("alpha_bar_s must be > alpha_bar_t: a step goes from t to a less noisy s < t")
    sigma_ratio = ((1 - a_s) / (1 - a_t)).sqrt()  # σ_s/σ_t
    # α_s·(e^{−h} − 1) with e^{−h} = (α_t σ_s)/(σ_t α_s): finite also at σ_s = 0 (ᾱ_s = 1)
    c_d = a_t.sqrt() * sigma_ratio - a_s.sqrt()
    D = x0_hat
    if x0_prev is not None:
        assert alpha_bar_u is not None
        check_same_shape("x0_prev", x0_prev, "x_t", x_t)
        check_per_sample("alpha_bar_u", alpha_bar_u, x_t)
        if bool((a_s >= 1).any()):
            raise ValueError("a second-order step needs alpha_bar_s < 1; land on the clean state with first order")
        lam_u, lam_t, lam_s = (0.5 * (a / (1 - a)).log() for a in (alpha_bar_u.double(), a_t, a_s))
        r = (lam_t - lam_u) / (lam_s - lam_t)
        w = expand_as(1 / (2 * r), x_t)
        D = (1 + w) * x0_hat - w * x0_prev
    return expand_as(sigma_ratio, x_t) * x_t - expand_as(c_d, x_t) * D


__all__ = ["dpmpp_2m_step"]
