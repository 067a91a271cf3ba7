"""DDIM sampling for erasure, on the functions of :mod:`eradiff.core`.

| code name     | symbol                                             | where                 |
| ------------- | -------------------------------------------------- | --------------------- |
| ``denoise``   | (z_t, τ) ↦ ε_θ(z_t) or v_θ(z_t)                    | Eq. 2                 |
| ``z_init``    | the clean state the chain starts from (x_0)        | Eq. 1, Sec. 5.4       |
| ``timesteps`` | τ_i, the DDIM sub-sequence from ``strength`` on    | Eq. 2, Sec. 5.4       |
| ``z_known``   | clean latents of the known (unmasked) region       | RePaint               |
| ``keep``      | where ``z_known`` is re-imposed (1 − M at the grid)| RePaint               |
| ``eta``       | η, the DDIM noise scale                            | Eq. 2                 |

Algorithm (one chain per sample, all tensors (b, C, h, w)):

1. τ_0 > … > τ_{n−1} = ``ddim_timesteps(steps)[strength_start(steps, strength):]``; the DDIM
   previous step of each is τ_i − ⌊T/steps⌋ as in diffusers, and the last step always lands on
   the final state, whose ᾱ is the schedule's final ᾱ (1, or ᾱ_0 when ``set_alpha_to_one`` is
   False). (diffusers' rule alone leaves "trailing" spacing with steps ∤ T at τ = 0, one noise
   level short of the end.)
2. z = ε at strength 1 (as diffusers); otherwise z = √ᾱ_τ0·z_init + √(1−ᾱ_τ0)·ε (Eq. 1: the
   original, or a classical fill of the hole, noised to the starting timestep — Sec. 5.4).
3. With re-imposition, z ← keep ? q_sample(z_known, ᾱ_τ0, ε) : z (same ε).
4. For each τ_i: z, x̂_0 ← DDIM step (Eq. 2) with η and fresh variance noise; with re-imposition,
   z ← keep ? q_sample(z_known, ᾱ_prev, ε′) : z, and at the final step z ← keep ? z_known : z.

Randomness: every draw for sample i comes from ``generators[i]`` in the same order, so a sample's
result never depends on what else is in the batch. The state is kept in float32 whatever the
model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

import eradiff.core as core
from eradiff.models.family import ScheduleConfig

Denoiser = Callable[[Tensor, Tensor], Tensor]
StepCallback = Callable[[int, int], None]


def sampling_timesteps(schedule: ScheduleConfig, steps: int, strength: float) -> tuple[Tensor, Tensor]:
    """(τ_i, previous τ_i) to run for ``steps`` DDIM steps at ``strength`` (step 1 above).

    Returns:
        Two int64 tensors of the same length; a previous τ of −1 means the final state (always
        the case for the last step).
    """
    T = schedule.num_train_timesteps
    tau = core.ddim_timesteps(steps, num_train_timesteps=T, spacing=schedule.timestep_spacing,
                              steps_offset=schedule.steps_offset)  # fmt: skip
    prev = core.previous_timesteps(tau, num_inference_steps=steps, num_train_timesteps=T).clamp_min(-1)
    prev[-1] = -1
    i0 = core.strength_start(steps, strength)
    return tau[i0:], prev[i0:]


def draw_noise(shape: Sequence[int], generators: Sequence[torch.Generator], *, device: torch.device) -> Tensor:
    """Standard normal noise (b, …) in float32, sample i drawn from ``generators[i]``."""
    if len(generators) != shape[0]:
        raise ValueError(f"need one generator per sample: batch {shape[0]}, got {len(generators)} generators")
    parts = [torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=torch.float32) for g in generators]
    return torch.stack(parts).to(device)


def ddim_sample(
    denoise: Denoiser,
    z_init: Tensor,
    *,
    schedule: ScheduleConfig,
    generators: Sequence[torch.Generator],
    steps: int = 20,
    strength: float = 1.0,
    eta: float = 0.0,
    z_known: Tensor | None = None,
    keep: Tensor | None = None,
    clip_x0: float | tuple[Tensor, Tensor] | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Run the DDIM chain of the module docstring and return the final state z (b, C, h, w), float32.

    Args:
        denoise: the model, called as ``denoise(z_t, τ)`` with z_t float32 (b, C, h, w) and τ int64
            (b,); returns ε̂ or v̂ (per ``schedule.prediction_type``) of z_t's shape.
        z_init: the clean state noised at the start when ``strength < 1``, (b, C, h, w).
        schedule: the model's noise schedule and timestep conventions.
        generators: one ``torch.Generator`` per sample.
        steps: number of DDIM steps for the full chain, ≥ 1.
        strength: in (0, 1]; runs the last ``int(steps·strength)`` steps.
        eta: η ≥ 0 (0: deterministic DDIM).
        z_known: clean latents to re-impose outside the mask each step (None: no re-imposition).
        keep: boolean, broadcastable to z (e.g. (b, 1, h, w)); True where ``z_known`` is re-imposed.
        clip_x0: clip x̂_0 to [−clip_x0, clip_x0] or to elementwise bounds (lo, hi) (see
            ``ErasureModel.x0_bounds``), or None.
        callback: called as ``callback(i, n)`` after step i of n (1-based).

    Returns:
        The final state, float32.
    """
    if (z_known is None) != (keep is None):
        raise ValueError("z_known and keep must be given together (re-imposition) or not at all")
    if keep is not None and keep.dtype != torch.bool:
        raise ValueError(f"keep must be a boolean tensor, got dtype {keep.dtype}")
    if z_known is not None and z_known.shape != z_init.shape:
        raise ValueError(f"z_known must have the shape of z_init {tuple(z_init.shape)}, got {tuple(z_known.shape)}")
    device = z_init.device
    z_init = z_init.float()
    known = z_known.float() if z_known is not None else None
    b = z_init.shape[0]
    # 1. timesteps and ᾱ
    timesteps, previous = sampling_timesteps(schedule, steps, strength)
    alpha_bar = schedule.alpha_bar()
    final = schedule.final_alpha_bar()
    n = len(timesteps)

    def at(tau: int) -> Tensor:
        t = torch.full((b,), tau, dtype=torch.int64)
        return core.schedule_at(alpha_bar, t, value_before_start=final, dtype=torch.float64).to(device)

    # 2. the starting state (Eq. 1)
    eps = draw_noise(z_init.shape, generators, device=device)
    a0 = at(int(timesteps[0]))
    z = eps.clone() if strength >= 1.0 else core.q_sample(z_init, eps, a0.float())
    # 3. the known region at the starting noise level
    if known is not None:
        z = torch.where(keep, core.q_sample(known, eps, a0.float()), z)
    # 4. the DDIM chain (Eq. 2)
    for i, (tau, tau_prev) in enumerate(zip(timesteps.tolist(), previous.tolist(), strict=True)):
        t = torch.full((b,), tau, dtype=torch.int64, device=device)
        out = denoise(z, t).float()
        if out.shape != z.shape:
            raise ValueError(f"the model returned shape {tuple(out.shape)} for a state of shape {tuple(z.shape)}")
        a_t, a_s = at(tau), at(tau_prev)
        noise = draw_noise(z.shape, generators, device=device) if eta > 0 else None
        z, _ = core.ddim_step(z, out, a_t.float(), a_s.float(), eta=eta, noise=noise,
                              prediction_type=schedule.prediction_type, clip_x0=clip_x0)  # fmt: skip
        if known is not None:
            if tau_prev < 0:
                z = torch.where(keep, known, z)
            else:
                eps_known = draw_noise(z.shape, generators, device=device)
                z = torch.where(keep, core.q_sample(known, eps_known, a_s.float()), z)
        if callback is not None:
            callback(i + 1, n)
    return z


__all__ = ["Denoiser", "StepCallback", "ddim_sample", "draw_noise", "sampling_timesteps"]
