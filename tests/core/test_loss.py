"""CRO (Eq. 9) and the standard loss (Eq. 3)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as c

ALPHA_BAR = c.alpha_bars(c.betas("scaled_linear"))
LAM = c.mixup_lambdas(ALPHA_BAR)


@st.composite
def setting(draw):
    b = draw(st.integers(1, 4))
    shape = (b, draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    seed = draw(st.integers(0, 2**31 - 1))
    gamma_max = draw(st.integers(1, 200))
    pred = draw(st.sampled_from(["epsilon", "v_prediction"]))
    weighting = draw(st.sampled_from(["paper", "output"]))
    return shape, seed, gamma_max, pred, weighting


def _perfect_model(x0, eps, a_t, pred):
    return eps if pred == "epsilon" else c.velocity(x0, eps, a_t)


@given(setting())
def test_draws_are_in_range_and_reproducible(s):
    shape, seed, gamma_max, _, _ = s
    d1 = c.draw_timesteps_and_noise(shape, generator=torch.Generator().manual_seed(seed), gamma_max=gamma_max)
    d2 = c.draw_timesteps_and_noise(shape, generator=torch.Generator().manual_seed(seed), gamma_max=gamma_max)
    assert torch.equal(d1.t, d2.t) and torch.equal(d1.gamma, d2.gamma) and torch.equal(d1.eps, d2.eps)
    assert int(d1.t.min()) >= 0 and int(d1.t.max()) <= 999
    assert int(d1.gamma.min()) >= 1 and int(d1.gamma.max()) <= gamma_max
    assert torch.equal(d1.s, (d1.t - d1.gamma).clamp_min(-1))
    assert d1.eps.shape == shape


@given(setting())
def test_per_sample_generators_make_draws_independent_of_batching(s):
    shape, seed, gamma_max, _, _ = s
    gens = [torch.Generator().manual_seed(seed + i) for i in range(shape[0])]
    whole = c.draw_timesteps_and_noise(shape, generator=gens, gamma_max=gamma_max)
    for i in range(shape[0]):
        one = c.draw_timesteps_and_noise(
            (1, *shape[1:]), generator=[torch.Generator().manual_seed(seed + i)], gamma_max=gamma_max
        )
        assert torch.equal(whole.t[i : i + 1], one.t)
        assert torch.equal(whole.eps[i : i + 1], one.eps)


@given(setting())
def test_cro_loss_of_perfect_model_is_zero_without_object(s):
    """x_ori == x_obj: the chain is the ordinary one and a perfect ε-model has zero CRO loss."""
    shape, seed, gamma_max, pred, weighting = s
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    d = c.draw_timesteps_and_noise(shape, generator=g, gamma_max=gamma_max, dtype=torch.float64)
    a_t = c.schedule_at(ALPHA_BAR, d.t, value_before_start=1.0, dtype=torch.float64)
    a_s = c.schedule_at(ALPHA_BAR, d.s, value_before_start=1.0, dtype=torch.float64)
    l_t = c.schedule_at(LAM, d.t, value_before_start=0.0, dtype=torch.float64)
    l_s = c.schedule_at(LAM, d.s, value_before_start=0.0, dtype=torch.float64)
    x_t, x_s = c.cro_states(x0, x0.clone(), d.eps, a_t, a_s, l_t, l_s)
    loss = c.cro_loss(
        _perfect_model(x0, d.eps, a_t, pred), x_t, x_s, a_t, a_s, prediction_type=pred, weighting=weighting
    )
    assert loss.shape == (shape[0],)
    assert float(loss.abs().max()) < 1e-12


@given(setting())
def test_output_weighting_with_zero_lambda_equals_standard_loss(s):
    """λ ≡ 0 and weighting="output": Eq. 9 / b² is exactly Eq. 3 for any model output."""
    shape, seed, gamma_max, pred, _ = s
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    out = torch.randn(shape, generator=g, dtype=torch.float64)
    d = c.draw_timesteps_and_noise(shape, generator=g, gamma_max=gamma_max, dtype=torch.float64)
    a_t = c.schedule_at(ALPHA_BAR, d.t, value_before_start=1.0, dtype=torch.float64)
    a_s = c.schedule_at(ALPHA_BAR, d.s, value_before_start=1.0, dtype=torch.float64)
    zero = torch.zeros(shape[0], dtype=torch.float64)
    x_t, x_s = c.cro_states(x0, torch.randn(shape, generator=g, dtype=torch.float64), d.eps, a_t, a_s, zero, zero)
    cro = c.cro_loss(out, x_t, x_s, a_t, a_s, prediction_type=pred, weighting="output")
    std = c.standard_loss(out, x0, d.eps, a_t, prediction_type=pred)
    torch.testing.assert_close(cro, std, rtol=1e-6, atol=1e-9)


@given(setting())
def test_paper_weighting_is_output_weighting_times_b_squared(s):
    shape, seed, gamma_max, pred, _ = s
    g = torch.Generator().manual_seed(seed)
    x_ori, x_obj, out = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    d = c.draw_timesteps_and_noise(shape, generator=g, gamma_max=gamma_max, dtype=torch.float64)
    a_t = c.schedule_at(ALPHA_BAR, d.t, value_before_start=1.0, dtype=torch.float64)
    a_s = c.schedule_at(ALPHA_BAR, d.s, value_before_start=1.0, dtype=torch.float64)
    l_t = c.schedule_at(LAM, d.t, value_before_start=0.0, dtype=torch.float64)
    l_s = c.schedule_at(LAM, d.s, value_before_start=0.0, dtype=torch.float64)
    x_t, x_s = c.cro_states(x_ori, x_obj, d.eps, a_t, a_s, l_t, l_s)
    paper = c.cro_loss(out, x_t, x_s, a_t, a_s, prediction_type=pred, weighting="paper")
    output = c.cro_loss(out, x_t, x_s, a_t, a_s, prediction_type=pred, weighting="output")
    _, b = c.ddim_jump_coefficients(a_t, a_s, prediction_type=pred)
    torch.testing.assert_close(paper, output * b**2)


def test_cro_target_differs_from_standard_when_object_present():
    """With an object, the CRO optimum is not the true ε: the chain is pulled toward x_ori."""
    g = torch.Generator().manual_seed(1)
    shape = (2, 3, 4, 4)
    x_ori, x_obj = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    t, s = torch.tensor([600, 600]), torch.tensor([550, 550])
    a_t, a_s = (c.schedule_at(ALPHA_BAR, v, value_before_start=1.0, dtype=torch.float64) for v in (t, s))
    l_t, l_s = (c.schedule_at(LAM, v, value_before_start=0.0, dtype=torch.float64) for v in (t, s))
    x_t, x_s = c.cro_states(x_ori, x_obj, eps, a_t, a_s, l_t, l_s)
    assert float(c.cro_loss(eps, x_t, x_s, a_t, a_s).min()) > 0
    # the minimiser (solve x_s = a x_t + b out) moves x̂_0 from x̃_t toward x_ori
    a, b = c.ddim_jump_coefficients(a_t, a_s)
    best = (x_s - a.view(-1, 1, 1, 1) * x_t) / b.view(-1, 1, 1, 1)
    assert float(c.cro_loss(best, x_t, x_s, a_t, a_s).max()) < 1e-20
    x0_hat, _ = c.predict_x0_eps(x_t, best, a_t)
    mixed_t = c.mix(x_ori, x_obj, l_t)
    assert float(x0_hat.mean()) < float(mixed_t.mean())


def test_weight_scales_pixels():
    shape = (2, 1, 2, 2)
    out, x_t, x_s = torch.ones(shape), torch.zeros(shape), torch.zeros(shape)
    a_t, a_s = torch.tensor([0.5, 0.5]), torch.tensor([0.6, 0.6])
    plain = c.cro_loss(out, x_t, x_s, a_t, a_s)
    w = torch.zeros(shape)
    w[:, :, 0, 0] = 4.0
    torch.testing.assert_close(c.cro_loss(out, x_t, x_s, a_t, a_s, weight=w), plain)  # mean of (4,0,0,0) = 1


def test_objectives_bind_hyperparameters():
    g = torch.Generator().manual_seed(0)
    shape = (3, 2, 5, 5)
    x = torch.randn(shape, generator=g)
    d = c.draw_timesteps_and_noise(shape, generator=g)

    def perfect(x_t, t):
        return d.eps

    cro = c.CROObjective(ALPHA_BAR, LAM)
    std = c.StandardObjective(ALPHA_BAR)
    assert float(cro(perfect, x, x.clone(), d).max()) < 1e-8
    assert float(std(perfect, x, x.clone(), d).max()) == 0.0
    const = c.CROObjective(ALPHA_BAR, c.mixup_lambdas(ALPHA_BAR, kind="constant", value=0.5))
    assert float(const(perfect, x, x + 1, d).min()) > 0


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: c.draw_timesteps_and_noise((0, 3), generator=torch.Generator()), "shape"),
        (lambda: c.draw_timesteps_and_noise((2, 3), generator=torch.Generator(), gamma_max=0), "gamma_max"),
        (lambda: c.draw_timesteps_and_noise((2, 3), generator=[torch.Generator()]), "generator"),
        (
            lambda: c.cro_loss(
                torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2) * 0.5, torch.ones(2)
            ),
            "x_s_mix",
        ),
        (
            lambda: c.cro_loss(
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.ones(2) * 0.5,
                torch.ones(2),
                weighting="snr",
            ),
            "weighting='snr'",
        ),
        (
            lambda: c.cro_loss(
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.ones(2) * 0.5,
                torch.ones(2),
                weight=torch.ones(3),
            ),
            "weight",
        ),
        (
            lambda: c.standard_loss(
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.ones(2) * 0.5,
                prediction_type="x0",
            ),
            "prediction_type='x0'",
        ),
    ],
)
def test_bad_arguments_raise_value_error(call, match, without_shape_checker):
    with pytest.raises(ValueError, match=match):
        call()
