"""Sampling for erasure: one loop, and step rules (DDIM, DPM-Solver++(2M)) on :mod:`eradiff.core`.

| code name     | symbol                                             | where                 |
| ------------- | -------------------------------------------------- | --------------------- |
| ``denoise``   | (z_t, τ) ↦ ε_θ(z_t) or v_θ(z_t)                    | Eq. 2                 |
| ``z_init``    | the clean state the chain starts from (x_0)        | Eq. 1, Sec. 5.4       |
| ``timesteps`` | τ_i, the DDIM sub-sequence from ``strength`` on    | Eq. 2, Sec. 5.4       |
| ``z_known``   | clean latents of the known (unmasked) region       | RePaint               |
| ``keep``      | where ``z_known`` is re-imposed (1 − M at the grid)| RePaint               |
| ``eta``       | η, the DDIM noise scale                            | Eq. 2                 |
| ``rule``      | one step t → s of a sampler (:data:`STEP_RULES`)   | Eq. 2; Lu+22 Alg. 2   |

Algorithm of :func:`sample` (one chain per sample, all tensors (b, C, h, w)):

1. τ_0 > … > τ_{n−1} = ``ddim_timesteps(steps)[strength_start(steps, strength):]``. The DDIM
   rule steps from τ_i to its DDIM previous step τ_i − ⌊T/steps⌋ as in diffusers; the
   DPM-Solver++ rule steps to τ_{i+1}, the next timestep it evaluates (multistep solvers need
   the two to agree). The last step always lands on the final state, whose ᾱ is the schedule's
   final ᾱ (1, or ᾱ_0 when ``set_alpha_to_one`` is False). (diffusers' rule alone leaves
   "trailing" spacing with steps ∤ T at τ = 0, one noise level short of the end.)
2. z = ε at strength 1 (as diffusers); otherwise z = √ᾱ_τ0·z_init + √(1−ᾱ_τ0)·ε (Eq. 1: the
   original, or a classical fill of the hole, noised to the starting timestep — Sec. 5.4).
3. With re-imposition, z ← keep ? q_sample(z_known, ᾱ_τ0, ε) : z (same ε).
4. For each τ_i: z, x̂_0 ← rule (with η and fresh variance noise for DDIM, η > 0); with
   re-imposition, z ← keep ? q_sample(z_known, ᾱ_s, ε′) : z, and at the final step
   z ← keep ? z_known : z.

A step rule is a plain function ``rule(z, model_output, a_t, a_s, *, previous, last,
prediction_type, clip_x0, eta, noise) -> (z_s, x̂_0)``; ``previous`` is ``(x̂_0, ᾱ)`` of the
previous step (None at the first), ``last`` marks the final step. Adding a sampler is one such
function, one :data:`STEP_RULES` line, its name in :data:`eradiff.options.SAMPLER_KINDS`, and
its test.

Randomness: every draw for sample i comes from ``generators[i]`` in the same order, so a sample's
result never depends on what else is in the batch. The state is kept in float32 whatever the
model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

import eradiff.core as core
from eradiff.core.schedules import ScheduleConfig
from eradiff.options import SAMPLER_KINDS

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


def ddim_rule(
    z: Tensor, out: Tensor, a_t: Tensor, a_s: Tensor, *, prediction_type: str,
    clip_x0: float | tuple[Tensor, Tensor] | None, eta: float, noise: Tensor | None, **_: Any,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """DDIM with η (Eq. 2): :func:`eradiff.core.ddim_step`; single-step, so ``previous`` is unused."""
    return core.ddim_step(z, out, a_t, a_s, eta=eta, noise=noise, prediction_type=prediction_type,  # type: ignore[arg-type]
                          clip_x0=clip_x0)  # fmt: skip


def dpmpp_2m_rule(
    z: Tensor, out: Tensor, a_t: Tensor, a_s: Tensor, *, previous: tuple[Tensor, Tensor] | None, last: bool,
    prediction_type: str, clip_x0: float | tuple[Tensor, Tensor] | None, eta: float, **_: Any,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """DPM-Solver++(2M) (:func:`eradiff.core.dpmpp_2m_step`): first order at the first and last step."""
    if eta != 0:
        raise ValueError(f"the dpmpp-2m sampler is deterministic; eta must be 0, got {eta}")
    x0_hat, _ = core.predict_x0_eps(z, out, a_t, prediction_type=prediction_type)  # type: ignore[arg-type]
    x0_hat = core.clip_x0_hat(x0_hat, clip_x0)
    if previous is None or last:
        return core.dpmpp_2m_step(z, x0_hat, a_t, a_s), x0_hat
    x0_prev, a_u = previous
    return core.dpmpp_2m_step(z, x0_hat, a_t, a_s, x0_prev=x0_prev, alpha_bar_u=a_u), x0_hat


StepRule = Callable[..., tuple[Tensor, Tensor]]
STEP_RULES: dict[str, StepRule] = {"ddim": ddim_rule, "dpmpp-2m": dpmpp_2m_rule}
MULTISTEP = ("dpmpp-2m",)  # rules that step to the next evaluated timestep, not the DDIM previous one
assert tuple(STEP_RULES) == SAMPLER_KINDS, "eradiff.options.SAMPLER_KINDS must list STEP_RULES"


def sample(
    denoise: Denoiser,
    z_init: Tensor,
    *,
    schedule: ScheduleConfig,
    generators: Sequence[torch.Generator],
    sampler: str = "ddim",
    steps: int = 20,
    strength: float = 1.0,
    eta: float = 0.0,
    z_known: Tensor | None = None,
    keep: Tensor | None = None,
    clip_x0: float | tuple[Tensor, Tensor] | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Run the chain of the module docstring with one step rule; return the final state z, float32.

    Args:
        denoise: the model, called as ``denoise(z_t, τ)`` with z_t float32 (b, C, h, w) and τ int64
            (b,); returns ε̂ or v̂ (per ``schedule.prediction_type``) of z_t's shape.
        z_init: the clean state noised at the start when ``strength < 1``, (b, C, h, w).
        schedule: the model's noise schedule and timestep conventions.
        generators: one ``torch.Generator`` per sample.
        sampler: a key of :data:`STEP_RULES`: ``"ddim"`` or ``"dpmpp-2m"``.
        steps: number of steps for the full chain, ≥ 1.
        strength: in (0, 1]; runs the last ``int(steps·strength)`` steps.
        eta: η ≥ 0 (0: deterministic DDIM); only the ``"ddim"`` rule takes η > 0.
        z_known: clean latents to re-impose outside the mask each step (None: no re-imposition).
        keep: boolean, broadcastable to z (e.g. (b, 1, h, w)); True where ``z_known`` is re-imposed.
        clip_x0: clip x̂_0 to [−clip_x0, clip_x0] or to elementwise bounds (lo, hi) (see
            ``ErasureModel.x0_bounds``), or None.
        callback: called as ``callback(i, n)`` after step i of n (1-based).

    Returns:
        The final state, float32.
    """
    if sampler not in STEP_RULES:
        raise ValueError(f"sampler={sampler!r} is not valid; choose one of {', '.join(map(repr, STEP_RULES))}")
    if (z_known is None) != (keep is None):
        raise ValueError("z_known and keep must be given together (re-imposition) or not at all")
    if keep is not None and keep.dtype != torch.bool:
        raise ValueError(f"keep must be a boolean tensor, got dtype {keep.dtype}")
    if z_known is not None and z_known.shape != z_init.shape:
        raise ValueError(f"z_known must have the shape of z_init {tuple(z_init.shape)}, got {tuple(z_known.shape)}")
    rule = STEP_RULES[sampler]
    device = z_init.device
    z_init = z_init.float()
    known = z_known.float() if z_known is not None else None
    b = z_init.shape[0]
    # 1. timesteps and ᾱ
    timesteps, previous_tau = sampling_timesteps(schedule, steps, strength)
    if sampler in MULTISTEP:
        previous_tau = torch.cat([timesteps[1:], previous_tau.new_tensor([-1])])
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
    # 4. the chain: one rule step per timestep, then re-imposition
    history: tuple[Tensor, Tensor] | None = None
    for i, (tau, tau_prev) in enumerate(zip(timesteps.tolist(), previous_tau.tolist(), strict=True)):
        t = torch.full((b,), tau, dtype=torch.int64, device=device)
        out = denoise(z, t).float()
        if out.shape != z.shape:
            raise ValueError(f"the model returned shape {tuple(out.shape)} for a state of shape {tuple(z.shape)}")
        a_t, a_s = at(tau), at(tau_prev)
        noise = draw_noise(z.shape, generators, device=device) if eta > 0 else None
        z, x0_hat = rule(z, out, a_t.float(), a_s.float(), previous=history, last=i == n - 1,
                         prediction_type=schedule.prediction_type, clip_x0=clip_x0, eta=eta, noise=noise)  # fmt: skip
        history = (x0_hat, a_t.float())
        if known is not None:
            if tau_prev < 0:
                z = torch.where(keep, known, z)
            else:
                eps_known = draw_noise(z.shape, generators, device=device)
                z = torch.where(keep, core.q_sample(known, eps_known, a_s.float()), z)
        if callback is not None:
            callback(i + 1, n)
    return z


def ddim_sample(denoise: Denoiser, z_init: Tensor, **kwargs: Any) -> Tensor:
    """:func:`sample` with the DDIM rule (the keywords of :func:`sample`, ``sampler`` excepted)."""
    return sample(denoise, z_init, sampler="ddim", **kwargs)


__all__ = [
    "STEP_RULES",
    "Denoiser",
    "StepCallback",
    "StepRule",
    "ddim_rule",
    "ddim_sample",
    "dpmpp_2m_rule",
    "draw_noise",
    "sample",
    "sampling_timesteps",
]
