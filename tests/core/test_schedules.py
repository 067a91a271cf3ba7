"""Schedules: properties and reference equality with diffusers' DDIMScheduler."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as c

SD2_INPAINT = dict(
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    num_train_timesteps=1000,
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

REFERENCE_CONFIGS = [
    SD2_INPAINT,
    dict(SD2_INPAINT, timestep_spacing="trailing", steps_offset=0),
    dict(SD2_INPAINT, prediction_type="v_prediction", timestep_spacing="linspace", steps_offset=0),
    dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, num_train_timesteps=1000),
    dict(beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000),
    dict(beta_schedule="linear", beta_start=0.001, beta_end=0.03, num_train_timesteps=250, steps_offset=1),
]


def _ours(cfg):
    kind = cfg["beta_schedule"]
    kw = {} if kind == "squaredcos_cap_v2" else dict(beta_start=cfg["beta_start"], beta_end=cfg["beta_end"])
    return c.betas(kind, num_train_timesteps=cfg["num_train_timesteps"], **kw)


@pytest.mark.parametrize(
    "cfg", REFERENCE_CONFIGS, ids=lambda d: f"{d['beta_schedule']}-{d.get('timestep_spacing', 'leading')}"
)
def test_betas_and_alpha_bars_match_diffusers(cfg):
    ref = DDIMScheduler(**cfg)
    beta = _ours(cfg)
    assert beta.dtype == torch.float64
    torch.testing.assert_close(beta.float(), ref.betas, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(c.alpha_bars(beta).float(), ref.alphas_cumprod, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "cfg", REFERENCE_CONFIGS, ids=lambda d: f"{d['beta_schedule']}-{d.get('timestep_spacing', 'leading')}"
)
@pytest.mark.parametrize("n", [1, 7, 20, 50, 250])
def test_ddim_timesteps_match_diffusers(cfg, n):
    T = cfg["num_train_timesteps"]
    ref = DDIMScheduler(**cfg)
    ref.set_timesteps(n)
    ours = c.ddim_timesteps(
        n,
        num_train_timesteps=T,
        spacing=cfg.get("timestep_spacing", "leading"),
        steps_offset=cfg.get("steps_offset", 0),
    )
    assert torch.equal(ours, ref.timesteps)


@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
@pytest.mark.parametrize("T", [1000, 250])
def test_ddim_timesteps_equal_diffusers_for_every_n(spacing, T):
    """Every n in 1..T. Where diffusers returns n + 1 trailing timesteps (its quirk, ending in −1),
    ours are its first n (documented in ``ddim_timesteps``)."""
    offset = 1 if spacing == "leading" else 0
    ref = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
    longer = []
    for n in range(1, T + 1):
        ref.set_timesteps(n)
        theirs = ref.timesteps
        ours = c.ddim_timesteps(n, num_train_timesteps=T, spacing=spacing, steps_offset=offset)
        if len(theirs) == n + 1:
            longer.append(n)
            assert int(theirs[-1]) == -1, f"n={n}: diffusers' extra timestep is {int(theirs[-1])}"
            theirs = theirs[:n]
        assert torch.equal(ours, theirs), f"n={n}: first difference at {int((ours != theirs).nonzero()[0])}"
        assert bool((ours[1:] < ours[:-1]).all()) and int(ours[-1]) >= 0 and int(ours[0]) <= T - 1 + offset
    assert spacing == "trailing" or longer == [], f"{spacing}: diffusers returned n + 1 values for n in {longer}"


def test_strength_start_equals_inpaint_get_timesteps_for_every_n():
    """diffusers' own ``StableDiffusionInpaintPipeline.get_timesteps`` (run on a stand-in holding
    only the scheduler) for every n in 1..1000 and strength in {0.01, 0.02, …, 1}."""
    pipe = SimpleNamespace(scheduler=DDIMScheduler(**SD2_INPAINT))
    strengths = [k / 100 for k in range(1, 101)]
    for n in range(1, 1001):
        pipe.scheduler.set_timesteps(n)
        for strength in strengths:
            timesteps, steps = StableDiffusionInpaintPipeline.get_timesteps(pipe, n, strength, "cpu")
            if steps == 0:
                with pytest.raises(ValueError, match="runs no step"):
                    c.strength_start(n, strength)
                continue
            i0 = c.strength_start(n, strength)
            assert i0 == n - steps, f"n={n}, strength={strength}"
            assert torch.equal(pipe.scheduler.timesteps[i0:], timesteps)


def test_strength_that_runs_no_step_raises():
    with pytest.raises(ValueError, match="strength"):
        c.strength_start(4, 0.2)


@given(st.sampled_from(["linear", "scaled_linear", "squaredcos_cap_v2"]), st.integers(2, 2000))
def test_alpha_bar_strictly_decreasing_in_unit_interval(kind, T):
    a = c.alpha_bars(c.betas(kind, num_train_timesteps=T))
    assert bool(((a > 0) & (a < 1)).all())
    assert bool((a[1:] < a[:-1]).all())


@given(st.sampled_from(["linear", "scaled_linear", "squaredcos_cap_v2"]), st.integers(2, 1000))
def test_default_lambda_endpoints_and_monotone(kind, T):
    a = c.alpha_bars(c.betas(kind, num_train_timesteps=T))
    lam = c.mixup_lambdas(a)
    assert bool(((lam >= 0) & (lam <= 1)).all())
    assert bool((lam[1:] > lam[:-1]).all()), "λ_t = 1 − ᾱ_t rises with t (object at high noise)"
    # λ at the clean state is 0 and at the last step close to 1 (ᾱ_T ≈ 0)
    t = torch.tensor([-1, T - 1])
    at = c.schedule_at(lam, t, value_before_start=0.0, dtype=torch.float64)
    assert at[0] == 0.0
    torch.testing.assert_close(at[1], 1 - a[-1])


@given(st.floats(0.0, 1.0), st.integers(2, 100))
def test_constant_lambda(value, T):
    a = c.alpha_bars(c.betas("linear", num_train_timesteps=T))
    lam = c.mixup_lambdas(a, kind="constant", value=value)
    assert bool((lam == value).all())


def test_schedule_at_gathers_and_clean_state():
    a = c.alpha_bars(c.betas())
    t = torch.tensor([-1, 0, 999, 500])
    got = c.schedule_at(a, t, value_before_start=1.0, dtype=torch.float64)
    assert got[0] == 1.0 and got[1] == a[0] and got[2] == a[999] and got[3] == a[500]
    assert c.schedule_at(a, t, value_before_start=1.0).dtype == torch.float32


def test_previous_timesteps():
    tau = c.ddim_timesteps(20, steps_offset=1)
    prev = c.previous_timesteps(tau, num_inference_steps=20)
    assert torch.equal(prev, tau - 50)
    assert int(prev[-1]) < 0


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: c.betas("cosine"), "kind='cosine'"),
        (lambda: c.betas("linear", num_train_timesteps=0), "num_train_timesteps"),
        (lambda: c.betas("linear", beta_start=0.1, beta_end=0.01), "beta_end"),
        (lambda: c.betas("linear", beta_start=0.0), "beta_start"),
        (lambda: c.alpha_bars(torch.tensor([0.5, 1.5])), "beta"),
        (lambda: c.alpha_bars(torch.zeros(2, 2)), "beta"),
        (lambda: c.mixup_lambdas(torch.ones(3) * 0.5, kind="linear"), "kind='linear'"),
        (lambda: c.mixup_lambdas(torch.ones(3) * 0.5, kind="constant", value=2.0), "value"),
        (lambda: c.ddim_timesteps(0), "num_inference_steps"),
        (lambda: c.ddim_timesteps(1001), "num_inference_steps"),
        (lambda: c.ddim_timesteps(10, spacing="middle"), "spacing='middle'"),
        (lambda: c.strength_start(10, 0.0), "strength"),
        (lambda: c.strength_start(10, 1.5), "strength"),
        (lambda: c.schedule_at(torch.ones(10), torch.tensor([10]), value_before_start=1.0), "t must lie"),
        (lambda: c.schedule_at(torch.ones(10), torch.tensor([-2]), value_before_start=1.0), "t must lie"),
        (lambda: c.schedule_at(torch.ones(10), torch.tensor([1.0]), value_before_start=1.0), "integer"),
    ],
)
def test_bad_arguments_raise_value_error(call, match, without_shape_checker):
    with pytest.raises(ValueError, match=match):
        call()


def test_squaredcos_is_capped():
    b = c.betas("squaredcos_cap_v2", num_train_timesteps=1000, max_beta=0.5)
    assert float(b.max()) == pytest.approx(0.5)
    assert np.isfinite(b.numpy()).all()
