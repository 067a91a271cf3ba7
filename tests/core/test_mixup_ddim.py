"""Mix-up (Eq. 6–7) and DDIM (Eq. 2, 8): properties and references against diffusers."""

import pytest
import torch
from diffusers import DDIMScheduler
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as c

ALPHA_BAR = c.alpha_bars(c.betas("scaled_linear"))


@st.composite
def batch(draw, min_b=1, max_b=4):
    b = draw(st.integers(min_b, max_b))
    ch = draw(st.integers(1, 4))
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    return (b, ch, h, w), torch.Generator().manual_seed(seed)


def _randn(shape, g, dtype=torch.float64):
    return torch.randn(shape, generator=g, dtype=dtype)


@given(batch())
def test_mix_endpoints(bg):
    shape, g = bg
    x_ori, x_obj = _randn(shape, g), _randn(shape, g)
    zeros, ones = torch.zeros(shape[0], dtype=torch.float64), torch.ones(shape[0], dtype=torch.float64)
    assert torch.equal(c.mix(x_ori, x_obj, zeros), x_ori)
    torch.testing.assert_close(c.mix(x_ori, x_obj, ones), x_obj, rtol=0, atol=1e-12)


@given(batch(), st.integers(0, 2**31 - 1))
def test_mix_is_affine_in_lambda(bg, seed):
    shape, g = bg
    x_ori, x_obj = _randn(shape, g), _randn(shape, g)
    gl = torch.Generator().manual_seed(seed)
    l1, l2 = (
        torch.rand(shape[0], generator=gl, dtype=torch.float64),
        torch.rand(shape[0], generator=gl, dtype=torch.float64),
    )
    mid = c.mix(x_ori, x_obj, (l1 + l2) / 2)
    torch.testing.assert_close(mid, (c.mix(x_ori, x_obj, l1) + c.mix(x_ori, x_obj, l2)) / 2)


@given(batch(), st.integers(0, 2**31 - 1))
def test_mixed_state_per_sample_matches_per_sample_calls(bg, seed):
    """Batched with per-sample t equals calling sample by sample (no cross-talk in the batch)."""
    shape, g = bg
    x_ori, x_obj, eps = _randn(shape, g), _randn(shape, g), _randn(shape, g)
    gt = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 1000, (shape[0],), generator=gt)
    a = c.schedule_at(ALPHA_BAR, t, value_before_start=1.0, dtype=torch.float64)
    lam = 1 - a
    full = c.mixed_state(x_ori, x_obj, eps, a, lam)
    for i in range(shape[0]):
        one = c.mixed_state(x_ori[i : i + 1], x_obj[i : i + 1], eps[i : i + 1], a[i : i + 1], lam[i : i + 1])
        torch.testing.assert_close(full[i : i + 1], one)
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    mixed = c.mix(x_ori, x_obj, lam)
    torch.testing.assert_close(
        c.q_sample(mixed.float(), eps.float(), a.float()),
        ref.add_noise(mixed.float(), eps.float(), t),
        rtol=1e-5,
        atol=1e-5,
    )


@st.composite
def jump_case(draw):
    shape, g = draw(batch())
    t = torch.tensor(draw(st.lists(st.integers(1, 999), min_size=shape[0], max_size=shape[0])))
    gamma = torch.tensor(draw(st.lists(st.integers(1, 999), min_size=shape[0], max_size=shape[0])))
    s = (t - gamma).clamp_min(-1)
    pred = draw(st.sampled_from(["epsilon", "v_prediction"]))
    return shape, g, t, s, pred


@given(jump_case())
def test_jump_with_true_output_returns_forward_noised_state(case):
    """Eq. 8 fed the true ε (or v) returns exactly the forward-noised state at s."""
    shape, g, t, s, pred = case
    x0, eps = _randn(shape, g), _randn(shape, g)
    a_t = c.schedule_at(ALPHA_BAR, t, value_before_start=1.0, dtype=torch.float64)
    a_s = c.schedule_at(ALPHA_BAR, s, value_before_start=1.0, dtype=torch.float64)
    x_t = c.q_sample(x0, eps, a_t)
    out = eps if pred == "epsilon" else c.velocity(x0, eps, a_t)
    x_s_hat = c.ddim_jump(x_t, out, a_t, a_s, prediction_type=pred)
    torch.testing.assert_close(x_s_hat, c.q_sample(x0, eps, a_s), rtol=1e-9, atol=1e-9)
    x0_hat, eps_hat = c.predict_x0_eps(x_t, out, a_t, prediction_type=pred)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-8, atol=1e-8)


@given(jump_case())
def test_jump_coefficients_describe_the_jump(case):
    shape, g, t, s, pred = case
    x_t, out = _randn(shape, g), _randn(shape, g)
    a_t = c.schedule_at(ALPHA_BAR, t, value_before_start=1.0, dtype=torch.float64)
    a_s = c.schedule_at(ALPHA_BAR, s, value_before_start=1.0, dtype=torch.float64)
    a, b = c.ddim_jump_coefficients(a_t, a_s, prediction_type=pred)
    expect = a.view(-1, 1, 1, 1) * x_t + b.view(-1, 1, 1, 1) * out
    torch.testing.assert_close(c.ddim_jump(x_t, out, a_t, a_s, prediction_type=pred), expect)
    assert bool((b != 0).all()), "s < t, so the output always moves the prediction"


def _ddim_reference(cfg, n, i, x_t, out, eta, noise):
    ref = DDIMScheduler(**cfg)
    ref.set_timesteps(n)
    tau = int(ref.timesteps[i])
    res = ref.step(out, tau, x_t, eta=eta, variance_noise=noise)
    return tau, res.prev_sample, res.pred_original_sample


SD2 = dict(
    beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
    set_alpha_to_one=False, steps_offset=1,
)  # fmt: skip
STEP_CONFIGS = [
    SD2,
    dict(SD2, prediction_type="v_prediction", timestep_spacing="trailing", steps_offset=0),
    dict(beta_schedule="linear", clip_sample=True, set_alpha_to_one=True),
    dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False),
]


@pytest.mark.parametrize("cfg", STEP_CONFIGS)
@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("n", [10, 25])
def test_ddim_step_matches_diffusers(cfg, eta, n):
    g = torch.Generator().manual_seed(n + int(eta * 10))
    pred = cfg.get("prediction_type", "epsilon")
    beta = c.betas(cfg["beta_schedule"], **({} if cfg["beta_schedule"] == "squaredcos_cap_v2" else dict(
        beta_start=cfg.get("beta_start", 0.0001), beta_end=cfg.get("beta_end", 0.02))))  # fmt: skip
    alpha_bar = c.alpha_bars(beta)
    final = 1.0 if cfg.get("set_alpha_to_one", True) else float(alpha_bar[0])
    tau = c.ddim_timesteps(n, spacing=cfg.get("timestep_spacing", "leading"), steps_offset=cfg.get("steps_offset", 0))
    prev = c.previous_timesteps(tau, num_inference_steps=n)
    for i in (0, n // 2, n - 1):
        x_t = torch.randn(2, 4, 5, 7, generator=g)
        out = torch.randn(2, 4, 5, 7, generator=g)
        noise = torch.randn(2, 4, 5, 7, generator=g)
        ref_tau, ref_prev, ref_x0 = _ddim_reference(cfg, n, i, x_t, out, eta, noise)
        assert int(tau[i]) == ref_tau
        t = tau[i].repeat(2)
        s = prev[i].clamp_min(-1).repeat(2)
        a_t = c.schedule_at(alpha_bar, t, value_before_start=final)
        a_s = c.schedule_at(alpha_bar, s, value_before_start=final)
        x_s, x0_hat = c.ddim_step(
            x_t, out, a_t, a_s, eta=eta, noise=noise, prediction_type=pred,
            clip_x0=1.0 if cfg.get("clip_sample", True) else None,
        )  # fmt: skip
        torch.testing.assert_close(x0_hat, ref_x0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(x_s, ref_prev, rtol=1e-5, atol=1e-5)


def test_ddim_step_eta_zero_is_the_jump():
    g = torch.Generator().manual_seed(0)
    x_t, out = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    a_t, a_s = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.2, 0.6, 0.95])
    x_s, _ = c.ddim_step(x_t, out, a_t, a_s)
    torch.testing.assert_close(x_s, c.ddim_jump(x_t, out, a_t, a_s))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: c.mix(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2)), "x_obj"),
        (lambda: c.mix(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3)), "lam_t"),
        (lambda: c.q_sample(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 1)), "alpha_bar_t"),
        (lambda: c.q_sample(torch.zeros(2, 3), torch.zeros(1, 3), torch.zeros(2)), "eps"),
        (
            lambda: c.ddim_jump(
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.ones(2) * 0.5,
                torch.ones(2),
                prediction_type="sample",
            ),
            "prediction_type='sample'",
        ),
        (
            lambda: c.ddim_jump(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2) * 0.5, torch.ones(2)),
            "model_output",
        ),
        (
            lambda: c.ddim_jump(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2) * 0.5, torch.ones(3)),
            "alpha_bar_s",
        ),
        (
            lambda: c.ddim_step(
                torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2) * 0.5, torch.ones(2) * 0.7, eta=0.5
            ),
            "noise",
        ),
        (
            lambda: c.ddim_step(
                torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2) * 0.5, torch.ones(2) * 0.7, eta=-1.0
            ),
            "eta",
        ),
        (
            lambda: c.ddim_step(
                torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2) * 0.5, torch.ones(2) * 0.7, clip_x0=0.0
            ),
            "clip_x0",
        ),
    ],
)
def test_bad_arguments_raise_value_error(call, match, without_shape_checker):
    with pytest.raises(ValueError, match=match):
        call()


def test_runtime_shape_checker_is_on_in_tests():
    from jaxtyping import TypeCheckError

    with pytest.raises(TypeCheckError, match="x_obj"):
        c.mix(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2))


@given(batch(), st.floats(0.1, 3.0))
def test_elementwise_clip_bounds_generalise_the_scalar_clip(bg, c):
    shape, g = bg
    x_t, out = _randn(shape, g) * 3, _randn(shape, g) * 3
    a_t, a_s = torch.full((shape[0],), 0.3, dtype=torch.float64), torch.full((shape[0],), 0.6, dtype=torch.float64)
    lo, hi = torch.full(shape, -c, dtype=torch.float64), torch.full(shape, c, dtype=torch.float64)
    x_s1, x01 = c_ddim_step(x_t, out, a_t, a_s, clip_x0=c)
    x_s2, x02 = c_ddim_step(x_t, out, a_t, a_s, clip_x0=(lo, hi))
    assert torch.equal(x01, x02) and torch.equal(x_s1, x_s2)
    shift = _randn(shape, g)
    _, x03 = c_ddim_step(x_t, out, a_t, a_s, clip_x0=(lo + shift, hi + shift))
    assert bool(((x03 >= lo + shift) & (x03 <= hi + shift)).all())


def c_ddim_step(*args, **kwargs):
    return c.ddim_step(*args, **kwargs)


def test_clip_bounds_must_be_ordered(without_shape_checker):
    with pytest.raises(ValueError, match="lo ≤ hi"):
        c.ddim_step(
            torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1) * 0.5, torch.ones(1) * 0.7,
            clip_x0=(torch.ones(1, 2), torch.zeros(1, 2)),
        )  # fmt: skip
