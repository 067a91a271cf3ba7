"""EDM-lognormal timestep probabilities and their use in the training draw."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as c

ALPHA_BAR = c.alpha_bars(c.betas("scaled_linear"))
SIGMA = ((1 - ALPHA_BAR) / ALPHA_BAR).sqrt()


@given(st.floats(-3, 2), st.floats(0.2, 3), st.floats(0, 1))
def test_probabilities_are_a_distribution_over_timesteps(p_mean, p_std, u):
    p = c.lognormal_timestep_probs(ALPHA_BAR, p_mean=p_mean, p_std=p_std, uniform_share=u)
    assert p.shape == ALPHA_BAR.shape and p.dtype == torch.float64
    assert bool((p >= 0).all())
    assert math.isclose(float(p.sum()), 1.0, abs_tol=1e-9)
    assert float(p.min()) >= u / len(p) - 1e-15  # the uniform share is a floor


@given(st.floats(-2, 1), st.floats(0.3, 2))
def test_mass_below_a_noise_level_is_the_normal_cdf_of_log_sigma(p_mean, p_std):
    """P(σ_τ ≤ σ_k) equals Φ((ln σ_mid − P_mean)/P_std) at the midpoint edge above τ = k."""
    p = c.lognormal_timestep_probs(ALPHA_BAR, p_mean=p_mean, p_std=p_std)
    for k in (10, 200, 600):
        edge = 0.5 * (math.log(float(SIGMA[k])) + math.log(float(SIGMA[k + 1])))
        want = 0.5 * (1 + math.erf((edge - p_mean) / (p_std * math.sqrt(2))))
        assert math.isclose(float(p[: k + 1].sum()), want, abs_tol=1e-9)


def test_edm_setting_puts_more_samples_at_low_noise_than_uniform():
    low = SIGMA < 0.5
    p = c.lognormal_timestep_probs(ALPHA_BAR)
    assert float(p[low].sum()) > 2 * float(low.double().mean())


def test_bad_arguments():
    with pytest.raises(ValueError, match="p_std"):
        c.lognormal_timestep_probs(ALPHA_BAR, p_std=0.0)
    with pytest.raises(ValueError, match="uniform_share"):
        c.lognormal_timestep_probs(ALPHA_BAR, uniform_share=1.5)
    with pytest.raises(ValueError, match="t_probs"):
        c.draw_timesteps_and_noise((2, 3), generator=torch.Generator(), t_probs=torch.ones(10) / 10)


@given(st.integers(0, 2**31 - 1), st.integers(1, 5))
def test_draw_follows_t_probs_and_stays_per_sample(seed, b):
    """Only τ with non-zero probability are drawn; per-sample generators keep draws batch-independent."""
    probs = torch.zeros(1000, dtype=torch.float64)
    probs[[3, 500, 997]] = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    gens = [torch.Generator().manual_seed(seed + i) for i in range(b)]
    d = c.draw_timesteps_and_noise((b, 2, 4), generator=gens, t_probs=probs)
    assert set(d.t.tolist()) <= {3, 500, 997}
    assert torch.equal(d.s, (d.t - d.gamma).clamp_min(-1))
    one = c.draw_timesteps_and_noise((1, 2, 4), generator=[torch.Generator().manual_seed(seed + b - 1)], t_probs=probs)
    assert int(one.t[0]) == int(d.t[-1]) and torch.equal(one.eps[0], d.eps[-1])


def test_draw_frequencies_match_t_probs():
    p = c.lognormal_timestep_probs(ALPHA_BAR, uniform_share=0.5)
    d = c.draw_timesteps_and_noise((20000, 1), generator=torch.Generator().manual_seed(0), t_probs=p)
    low = SIGMA < 0.5
    share = float(low[d.t].double().mean())
    assert abs(share - float(p[low].sum())) < 0.02
