"""DPM-Solver++(2M): against diffusers' DPMSolverMultistepScheduler step by step, and its invariants."""

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as c

ALPHA_BAR = c.alpha_bars(c.betas("scaled_linear"))


def fake_model(z, t):
    """A deterministic, pointwise 'network'."""
    return torch.tanh(z * 0.7 + t.view(-1, 1, 1, 1).float() / 1000.0)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [1, 2, 6, 10, 20])
@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_steps_match_diffusers(prediction_type, steps, spacing):
    """Every step of diffusers' 2M loop (midpoint, data prediction) equals dpmpp_2m_step on its ᾱ."""
    sched = DPMSolverMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction_type,
        timestep_spacing=spacing, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
        lower_order_final=True, final_sigmas_type="zero",
    )  # fmt: skip
    sched.set_timesteps(steps)
    taus = [int(t) for t in sched.timesteps]
    z = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(steps), dtype=torch.float32)
    previous = None
    for i, tau in enumerate(taus):
        t = torch.full((2,), tau)
        out = fake_model(z, t)
        expected = sched.step(out, tau, z).prev_sample
        a_t = c.schedule_at(ALPHA_BAR, t, value_before_start=1.0, dtype=torch.float64)
        last = i == len(taus) - 1
        a_s = torch.ones(2, dtype=torch.float64) if last else _at(torch.full((2,), taus[i + 1]))
        x0, _ = c.predict_x0_eps(z.double(), out.double(), a_t, prediction_type=prediction_type)
        if previous is None or last:
            ours = c.dpmpp_2m_step(z.double(), x0, a_t, a_s)
        else:
            ours = c.dpmpp_2m_step(z.double(), x0, a_t, a_s, x0_prev=previous[0], alpha_bar_u=previous[1])
        torch.testing.assert_close(ours.float(), expected, rtol=1e-4, atol=1e-4)
        previous = (x0, a_t)
        z = expected


@st.composite
def step_case(draw):
    b = draw(st.integers(1, 3))
    shape = (b, draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    t = torch.tensor(draw(st.lists(st.integers(2, 999), min_size=b, max_size=b)))
    gap = torch.tensor(draw(st.lists(st.integers(1, 500), min_size=b, max_size=b)))
    s = (t - gap).clamp_min(-1)
    u = (t + gap).clamp_max(999)
    return shape, g, t, s, u


def _at(tau):
    return c.schedule_at(ALPHA_BAR, tau, value_before_start=1.0, dtype=torch.float64)


@given(step_case())
def test_first_order_is_ddim(case):
    """Without a previous x̂_0 the step is DDIM with η = 0 (x_s = √ᾱ_s·x̂_0 + √(1−ᾱ_s)·ε̂)."""
    shape, g, t, s, _ = case
    x_t, out = (
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )
    x0, _ = c.predict_x0_eps(x_t, out, _at(t))
    ddim, _ = c.ddim_step(x_t, out, _at(t), _at(s))
    torch.testing.assert_close(c.dpmpp_2m_step(x_t, x0, _at(t), _at(s)), ddim, rtol=1e-9, atol=1e-9)


@given(step_case())
def test_a_constant_data_prediction_lands_on_the_forward_noised_state(case):
    """With x̂_0 = x̂_0,prev = x_0 and x_t = q(x_0, ε), both orders return q(x_0, ε) at s (exact ODE)."""
    shape, g, t, s, u = case
    s = torch.maximum(s, torch.zeros_like(s))  # second order needs ᾱ_s < 1
    u = torch.maximum(u, t + 1).clamp_max(999)
    if bool((u <= t).any()):
        return
    x0, eps = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    x_t = c.q_sample(x0, eps, _at(t))
    second = c.dpmpp_2m_step(x_t, x0, _at(t), _at(s), x0_prev=x0, alpha_bar_u=_at(u))
    torch.testing.assert_close(second, c.q_sample(x0, eps, _at(s)), rtol=1e-9, atol=1e-9)


def test_bad_arguments_raise_with_names():
    x = torch.zeros(2, 1, 2, 2)
    a_t, a_s = torch.full((2,), 0.5), torch.full((2,), 0.7)
    with pytest.raises(ValueError, match="x0_prev and alpha_bar_u"):
        c.dpmpp_2m_step(x, x, a_t, a_s, x0_prev=x)
    with pytest.raises(ValueError, match="alpha_bar_s must be > alpha_bar_t"):
        c.dpmpp_2m_step(x, x, a_s, a_t)
    with pytest.raises(ValueError, match="second-order step needs alpha_bar_s < 1"):
        c.dpmpp_2m_step(x, x, a_t, torch.ones(2), x0_prev=x, alpha_bar_u=torch.full((2,), 0.3))
    from jaxtyping import TypeCheckError  # shapes are checked at runtime in tests (STYLE 9)

    with pytest.raises(TypeCheckError, match="x0_hat"):
        c.dpmpp_2m_step(x, x[:, :, :1], a_t, a_s)
