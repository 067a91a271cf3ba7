"""DDIM: x̂_0 from a model output, the deterministic jump t → s (Eq. 8) and the η-step (Eq. 2).

| code name                 | symbol                                                        | equation |
| ------------------------- | ------------------------------------------------------------- | -------- |
| ``x_t``                   | x_t, the current noisy state                                  | Eq. 2    |
| ``model_output``          | ε_θ^(t)(x_t) (``"epsilon"``) or v_θ (``"v_prediction"``)     | Eq. 2, 8 |
| ``alpha_bar_t``           | ᾱ_t                                                           | Eq. 2    |
| ``alpha_bar_s``           | ᾱ_prev = ᾱ_{t−γ}, any earlier (less noisy) state s < t        | Eq. 2, 8 |
| ``predict_x0_eps``        | (x̂_0, ε̂) = ((x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, ε̂)                      | Eq. 2    |
| ``ddim_jump``             | x̂_s = √ᾱ_s·x̂_0 + √(1−ᾱ_s)·ε̂                                  | Eq. 8    |
| ``ddim_jump_coefficients``| (a, b) with x̂_s = a·x_t + b·model_output                       | Eq. 8    |
| ``ddim_sigma``            | σ_t = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_s)                       | Eq. 2    |
| ``clip_x0_hat``           | x̂_0 clipped to the model's valid range                        | Eq. 2    |
| ``ddim_step``             | x_s = √ᾱ_s·x̂_0 + √(1−ᾱ_s−σ_t²)·ε̂ + σ_t·ε_t                    | Eq. 2    |

With v-prediction, x̂_0 = √ᾱ_t·x_t − √(1−ᾱ_t)·v and ε̂ = √ᾱ_t·v + √(1−ᾱ_t)·x_t.
"""

from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from eradiff.core._checks import check_choice, check_per_sample, check_same_shape, expand_as

PredictionType = Literal["epsilon", "v_prediction"]
PREDICTION_TYPES = ("epsilon", "v_prediction")


def predict_x0_eps(
    x_t: Float[Tensor, " b *dims"],
    model_output: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    *,
    prediction_type: PredictionType = "epsilon",
) -> tuple[Float[Tensor, " b *dims"], Float[Tensor, " b *dims"]]:
    """The model's estimates (x̂_0, ε̂) at state x_t.

    Args:
        x_t: the noisy state, shape (b, ...).
        model_output: the network output at x_t, same shape; ε̂ for ``"epsilon"``, v̂ for
            ``"v_prediction"``.
        alpha_bar_t: ᾱ_t per sample, shape (b,), in (0, 1).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.

    Returns:
        ``(x0_hat, eps_hat)``, each shaped like ``x_t``.
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    check_same_shape("model_output", model_output, "x_t", x_t)
    check_per_sample("alpha_bar_t", alpha_bar_t, x_t)
    a = expand_as(alpha_bar_t, x_t)
    if prediction_type == "epsilon":
        return (x_t - (1 - a).sqrt() * model_output) / a.sqrt(), model_output
    return a.sqrt() * x_t - (1 - a).sqrt() * model_output, a.sqrt() * model_output + (1 - a).sqrt() * x_t


def ddim_jump_coefficients(
    alpha_bar_t: Float[Tensor, " b"],
    alpha_bar_s: Float[Tensor, " b"],
    *,
    prediction_type: PredictionType = "epsilon",
) -> tuple[Float[Tensor, " b"], Float[Tensor, " b"]]:
    """Coefficients (a, b) of the affine map x̂_s = a·x_t + b·model_output of Eq. 8.

    For ``"epsilon"``: a = √(ᾱ_s/ᾱ_t), b = √(1−ᾱ_s) − √(ᾱ_s(1−ᾱ_t)/ᾱ_t).
    For ``"v_prediction"``: a = √(ᾱ_s ᾱ_t) + √((1−ᾱ_s)(1−ᾱ_t)), b = √((1−ᾱ_s) ᾱ_t) − √(ᾱ_s (1−ᾱ_t)).
    ``b`` is how strongly the model output moves the prediction; it vanishes as s → t, which is
    why the CRO loss can optionally be divided by b² (see :mod:`eradiff.core.loss`).

    Args:
        alpha_bar_t: ᾱ_t per sample, shape (b,), in (0, 1).
        alpha_bar_s: ᾱ_s per sample, shape (b,), in (0, 1].
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.

    Returns:
        ``(a, b)``, each of shape (b,), in float64 if the inputs are float64, else their dtype.
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    check_per_sample("alpha_bar_s", alpha_bar_s, alpha_bar_t)
    at, as_ = alpha_bar_t, alpha_bar_s.to(alpha_bar_t.dtype)
    if prediction_type == "epsilon":
        ratio = (as_ / at).sqrt()
        return ratio, (1 - as_).sqrt() - ratio * (1 - at).sqrt()
    a = (as_ * at).sqrt() + ((1 - as_) * (1 - at)).sqrt()
    b = ((1 - as_) * at).sqrt() - (as_ * (1 - at)).sqrt()
    return a, b


def ddim_jump(
    x_t: Float[Tensor, " b *dims"],
    model_output: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    alpha_bar_s: Float[Tensor, " b"],
    *,
    prediction_type: PredictionType = "epsilon",
) -> Float[Tensor, " b *dims"]:
    """The deterministic one-step DDIM prediction from t to any earlier s  (Eq. 8; Eq. 2, σ = 0).

    x̂_s = √ᾱ_s·(x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t + √(1−ᾱ_s)·ε̂.

    Fed the true ε of a forward-noised x_t (Eq. 1), it returns exactly the forward-noised state at s
    with the same ε.

    Args:
        x_t: the state at t, shape (b, ...).
        model_output: network output at x_t, same shape.
        alpha_bar_t: ᾱ_t per sample, shape (b,).
        alpha_bar_s: ᾱ_s per sample, shape (b,), ≥ ᾱ_t (s ≤ t); 1 for the clean image.
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.

    Returns:
        x̂_s, shaped like ``x_t``.
    """
    check_same_shape("model_output", model_output, "x_t", x_t)
    check_per_sample("alpha_bar_t", alpha_bar_t, x_t)
    a, b = ddim_jump_coefficients(alpha_bar_t, alpha_bar_s, prediction_type=prediction_type)
    return expand_as(a, x_t) * x_t + expand_as(b, x_t) * model_output


def ddim_sigma(
    alpha_bar_t: Float[Tensor, " b"], alpha_bar_s: Float[Tensor, " b"], *, eta: float
) -> Float[Tensor, " b"]:
    """σ_t = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_s)  (DDIM, Song et al. 2021, Eq. 16).

    Args:
        alpha_bar_t: ᾱ_t, shape (b,).
        alpha_bar_s: ᾱ_s, shape (b,).
        eta: η ≥ 0; 0 is deterministic DDIM, 1 is DDPM-like ancestral sampling.
    """
    if eta < 0:
        raise ValueError(f"eta must be ≥ 0, got {eta}")
    check_per_sample("alpha_bar_s", alpha_bar_s, alpha_bar_t)
    as_ = alpha_bar_s.to(alpha_bar_t.dtype)
    variance = (1 - as_) / (1 - alpha_bar_t) * (1 - alpha_bar_t / as_)
    return eta * variance.clamp_min(0).sqrt()


def clip_x0_hat(
    x0_hat: Float[Tensor, " b *dims"], clip_x0: float | tuple[Tensor, Tensor] | None
) -> Float[Tensor, " b *dims"]:
    """x̂_0 clipped to [−c, c], to elementwise bounds (lo, hi), or unchanged for ``None``.

    Args:
        x0_hat: the model's x̂_0, shape (b, ...).
        clip_x0: c > 0, a pair of tensors (lo, hi) broadcastable to ``x0_hat`` with lo ≤ hi, or None.
    """
    if isinstance(clip_x0, tuple):
        lo, hi = clip_x0
        if bool((lo > hi).any()):
            raise ValueError("clip_x0 bounds (lo, hi) must satisfy lo ≤ hi everywhere")
        return torch.maximum(torch.minimum(x0_hat, hi.to(x0_hat.dtype)), lo.to(x0_hat.dtype))
    if clip_x0 is not None:
        if clip_x0 <= 0:
            raise ValueError(f"clip_x0 must be > 0 or None, got {clip_x0}")
        return x0_hat.clamp(-clip_x0, clip_x0)
    return x0_hat


def ddim_step(
    x_t: Float[Tensor, " b *dims"],
    model_output: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    alpha_bar_s: Float[Tensor, " b"],
    *,
    eta: float = 0.0,
    noise: Float[Tensor, " b *dims"] | None = None,
    prediction_type: PredictionType = "epsilon",
    clip_x0: float | tuple[Tensor, Tensor] | None = None,
) -> tuple[Float[Tensor, " b *dims"], Float[Tensor, " b *dims"]]:
    """One DDIM sampling step from t to s  (Eq. 2).

    1. (x̂_0, ε̂) from the model output;
    2. optionally clip x̂_0 to [−clip_x0, clip_x0], or to elementwise bounds (lo, hi) (ε̂ is *not*
       recomputed, as diffusers' default);
    3. x_s = √ᾱ_s·x̂_0 + √(1−ᾱ_s−σ_t²)·ε̂ + σ_t·ε_t.

    Args:
        x_t: the state at t, shape (b, ...).
        model_output: network output at x_t, same shape.
        alpha_bar_t: ᾱ_t, shape (b,).
        alpha_bar_s: ᾱ_s, shape (b,) (ᾱ of the previous timestep, or the final ᾱ at the end).
        eta: η ≥ 0.
        noise: ε_t, the variance noise, same shape as ``x_t``; required when ``eta > 0``.
            Randomness is the caller's: draw it with an explicit ``torch.Generator``.
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.
        clip_x0: clip range c > 0 for x̂_0 ([−c, c]), a pair of tensors (lo, hi) broadcastable to
            ``x_t`` with lo ≤ hi (e.g. the valid pixel range of a residual space), or ``None``.

    Returns:
        ``(x_s, x0_hat)``.
    """
    x0_hat, eps_hat = predict_x0_eps(x_t, model_output, alpha_bar_t, prediction_type=prediction_type)
    x0_hat = clip_x0_hat(x0_hat, clip_x0)
    sigma = ddim_sigma(alpha_bar_t, alpha_bar_s, eta=eta)
    s = expand_as(alpha_bar_s, x_t)
    sig = expand_as(sigma, x_t)
    x_s = s.sqrt() * x0_hat + (1 - s - sig**2).clamp_min(0).sqrt() * eps_hat
    if eta > 0:
        if noise is None:
            raise ValueError("noise must be given when eta > 0 (draw it with an explicit torch.Generator)")
        check_same_shape("noise", noise, "x_t", x_t)
        x_s = x_s + sig * noise
    return x_s, x0_hat


__all__ = [
    "PREDICTION_TYPES",
    "PredictionType",
    "clip_x0_hat",
    "ddim_jump",
    "ddim_jump_coefficients",
    "ddim_sigma",
    "ddim_step",
    "predict_x0_eps",
]
