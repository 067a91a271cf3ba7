"""Dynamic mix-up images and the forward (noising) process.

| code name        | symbol                                           | equation |
| ---------------- | ------------------------------------------------ | -------- |
| ``x_ori``        | x_0^ori, the clean background                    | Eq. 6    |
| ``x_obj``        | x_0^obj, the same image with a pasted object     | Eq. 6    |
| ``lam_t``        | λ_t, mix-up level                                | Eq. 6    |
| ``mix``          | x̃_t^mix = (1 − λ_t)·x_ori + λ_t·x_obj            | Eq. 6    |
| ``alpha_bar_t``  | ᾱ_t                                              | Eq. 1    |
| ``eps``          | ε ~ N(0, I)                                      | Eq. 1, 7 |
| ``q_sample``     | x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε                    | Eq. 1    |
| ``mixed_state``  | x_t^mix = √ᾱ_t·x̃_t^mix + √(1 − ᾱ_t)·ε            | Eq. 7    |
| ``velocity``     | v = √ᾱ_t·ε − √(1 − ᾱ_t)·x_0                      | (v-pred) |

Every per-sample schedule value is a ``(b,)`` tensor, so a batch may mix timesteps.
"""

from jaxtyping import Float
from torch import Tensor

from eradiff.core._checks import check_per_sample, check_same_shape, expand_as


def mix(
    x_ori: Float[Tensor, " b *dims"], x_obj: Float[Tensor, " b *dims"], lam_t: Float[Tensor, " b"]
) -> Float[Tensor, " b *dims"]:
    """x̃_t^mix = (1 − λ_t)·x_ori + λ_t·x_obj  (Eq. 6).

    Args:
        x_ori: the clean background x_0^ori, shape (b, ...).
        x_obj: the same image with the object pasted, x_0^obj, same shape.
        lam_t: λ_t per sample, shape (b,), in [0, 1] (not checked: extrapolation is allowed).

    Returns:
        The dynamic image, same shape as ``x_ori``.
    """
    check_same_shape("x_obj", x_obj, "x_ori", x_ori)
    check_per_sample("lam_t", lam_t, x_ori)
    lam = expand_as(lam_t, x_ori)
    return x_ori + lam * (x_obj - x_ori)


def q_sample(
    x_0: Float[Tensor, " b *dims"], eps: Float[Tensor, " b *dims"], alpha_bar_t: Float[Tensor, " b"]
) -> Float[Tensor, " b *dims"]:
    """x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε  (Eq. 1, reparameterised).

    Args:
        x_0: clean sample, shape (b, ...).
        eps: standard normal noise, same shape.
        alpha_bar_t: ᾱ_t per sample, shape (b,), in (0, 1].

    Returns:
        x_t, same shape as ``x_0``.
    """
    check_same_shape("eps", eps, "x_0", x_0)
    check_per_sample("alpha_bar_t", alpha_bar_t, x_0)
    a = expand_as(alpha_bar_t, x_0)
    return a.sqrt() * x_0 + (1 - a).sqrt() * eps


def mixed_state(
    x_ori: Float[Tensor, " b *dims"],
    x_obj: Float[Tensor, " b *dims"],
    eps: Float[Tensor, " b *dims"],
    alpha_bar_t: Float[Tensor, " b"],
    lam_t: Float[Tensor, " b"],
) -> Float[Tensor, " b *dims"]:
    """x_t^mix = √ᾱ_t·x̃_t^mix + √(1 − ᾱ_t)·ε  with x̃_t^mix from Eq. 6  (Eq. 7)."""
    return q_sample(mix(x_ori, x_obj, lam_t), eps, alpha_bar_t)


def velocity(
    x_0: Float[Tensor, " b *dims"], eps: Float[Tensor, " b *dims"], alpha_bar_t: Float[Tensor, " b"]
) -> Float[Tensor, " b *dims"]:
    """The v-prediction target v = √ᾱ_t·ε − √(1 − ᾱ_t)·x_0 (Salimans & Ho 2022)."""
    check_same_shape("eps", eps, "x_0", x_0)
    check_per_sample("alpha_bar_t", alpha_bar_t, x_0)
    a = expand_as(alpha_bar_t, x_0)
    return a.sqrt() * eps - (1 - a).sqrt() * x_0
