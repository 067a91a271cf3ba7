"""The DDIM sampler: against diffusers' scheduler, exactness with an oracle model, randomness rules."""

import pytest
import torch
from diffusers import DDIMScheduler
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as c
from eradiff.models.family import ScheduleConfig
from eradiff.pipeline.sampler import ddim_sample, draw_noise, sample, sampling_timesteps

SD2 = ScheduleConfig()  # scaled_linear, epsilon, leading, offset 1, final ᾱ = ᾱ_0
PIXEL = ScheduleConfig(prediction_type="v_prediction", timestep_spacing="trailing", steps_offset=0,
                       set_alpha_to_one=True)  # fmt: skip


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def scheduler_for(schedule: ScheduleConfig) -> DDIMScheduler:
    return DDIMScheduler(
        num_train_timesteps=schedule.num_train_timesteps, beta_start=schedule.beta_start, beta_end=schedule.beta_end,
        beta_schedule=schedule.beta_schedule, clip_sample=False, set_alpha_to_one=schedule.set_alpha_to_one,
        steps_offset=schedule.steps_offset, prediction_type=schedule.prediction_type,
        timestep_spacing=schedule.timestep_spacing,
    )  # fmt: skip


@pytest.mark.parametrize("schedule", [SD2, PIXEL], ids=["sd2", "pixel"])
@pytest.mark.parametrize("steps", [1, 7, 20, 50])
@pytest.mark.parametrize("strength", [1.0, 0.6, 0.3])
def test_timesteps_match_diffusers(schedule, steps, strength):
    if int(steps * strength) < 1:
        pytest.skip("no step to run")
    sched = scheduler_for(schedule)
    sched.set_timesteps(steps)
    start = c.strength_start(steps, strength)  # diffusers' inpaint get_timesteps rule
    tau, prev = sampling_timesteps(schedule, steps, strength)
    assert tau.tolist() == sched.timesteps[start:].tolist()
    expected = [max(int(t) - 1000 // steps, -1) for t in sched.timesteps[start:]]
    assert prev[:-1].tolist() == expected[:-1]
    assert prev[-1] == -1, "the last step always lands on the final state"


def fake_model(z, t):
    """A deterministic, pointwise 'network' (so batching cannot change its values)."""
    return torch.tanh(z * 0.7 + t.view(-1, 1, 1, 1).float() / 1000.0)


@pytest.mark.parametrize("schedule", [SD2, PIXEL], ids=["sd2", "pixel"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_chain_matches_diffusers_scheduler_loop(schedule, eta):
    steps = 10
    z_init = torch.randn(1, 4, 6, 5, generator=torch.Generator().manual_seed(3))
    ours = ddim_sample(fake_model, z_init, schedule=schedule, generators=gens(11), steps=steps, eta=eta)
    # the same chain with diffusers' DDIMScheduler.step and the same noise draws
    sched = scheduler_for(schedule)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(11)
    z = torch.randn(4, 6, 5, generator=g)[None]
    for t in sched.timesteps:
        out = fake_model(z, t.view(1))
        variance_noise = torch.randn(4, 6, 5, generator=g)[None] if eta > 0 else None
        z = sched.step(out, t, z, eta=eta, variance_noise=variance_noise).prev_sample
    torch.testing.assert_close(ours, z, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp-2m"])
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 30), v=st.booleans(), strength=st.floats(0.1, 1.0))
def test_oracle_model_recovers_the_clean_state(sampler, seed, steps, v, strength):
    """Fed the exact ε (or v) of a fixed x_0, every step rule returns x_0 (final ᾱ = 1) from any start."""
    if int(steps * strength) < 1:
        return
    schedule = PIXEL if v else ScheduleConfig(set_alpha_to_one=True)
    x0 = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    alpha_bar = schedule.alpha_bar()

    def oracle(z, t):
        a = c.schedule_at(alpha_bar, t, value_before_start=1.0).view(-1, 1, 1, 1)
        eps = (z - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0 if v else eps

    out = sample(oracle, x0, schedule=schedule, generators=gens(seed, seed + 1), steps=steps, strength=strength,
                 sampler=sampler)  # fmt: skip
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_output_never_depends_on_batching(eta):
    z = torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    keep = torch.rand(3, 1, 5, 6, generator=torch.Generator().manual_seed(1)) > 0.5
    kw = dict(schedule=SD2, steps=6, strength=0.8, eta=eta)
    batch = ddim_sample(fake_model, z, generators=gens(5, 6, 7), z_known=z, keep=keep, **kw)
    for i, s in enumerate((5, 6, 7)):
        one = ddim_sample(
            fake_model, z[i : i + 1], generators=gens(s), z_known=z[i : i + 1], keep=keep[i : i + 1], **kw
        )
        assert torch.equal(batch[i : i + 1], one)


def test_same_seed_same_result_other_seed_differs():
    z = torch.randn(1, 4, 5, 6)
    a = ddim_sample(fake_model, z, schedule=SD2, generators=gens(1), steps=4, eta=1.0)
    b = ddim_sample(fake_model, z, schedule=SD2, generators=gens(1), steps=4, eta=1.0)
    d = ddim_sample(fake_model, z, schedule=SD2, generators=gens(2), steps=4, eta=1.0)
    assert torch.equal(a, b)
    assert not torch.equal(a, d)


def test_reimposition_returns_the_known_region_exactly():
    z_known = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    keep = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    keep[:, :, :, :3] = True
    out = ddim_sample(fake_model, z_known, schedule=SD2, generators=gens(0, 1), steps=5, z_known=z_known, keep=keep)
    assert torch.equal(out[:, :, :, :3], z_known[:, :, :, :3])
    assert not torch.equal(out[:, :, :, 3:], z_known[:, :, :, 3:])


def test_strength_below_one_starts_from_the_noised_init():
    """With one step at strength s, the model sees q_sample(z_init, ᾱ_τ0, ε) for the generator's ε."""
    z_init = torch.randn(1, 4, 3, 3)
    seen = []

    def spy(z, t):
        seen.append((z.clone(), int(t[0])))
        return torch.zeros_like(z)

    ddim_sample(spy, z_init, schedule=SD2, generators=gens(9), steps=10, strength=0.5)
    z0, tau0 = seen[0]
    assert len(seen) == 5
    eps = draw_noise(z_init.shape, gens(9), device=z_init.device)
    a = c.schedule_at(SD2.alpha_bar(), torch.tensor([tau0]), value_before_start=1.0)
    torch.testing.assert_close(z0, c.q_sample(z_init, eps, a), rtol=0, atol=1e-6)


def test_callback_reports_every_step():
    calls = []
    ddim_sample(fake_model, torch.zeros(1, 1, 2, 2), schedule=SD2, generators=gens(0), steps=8, strength=0.5,
                callback=lambda i, n: calls.append((i, n)))  # fmt: skip
    assert calls == [(i, 4) for i in range(1, 5)]


def test_argument_errors():
    z = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match="one generator per sample"):
        ddim_sample(fake_model, z, schedule=SD2, generators=gens(0), steps=2)
    with pytest.raises(ValueError, match="together"):
        ddim_sample(fake_model, z, schedule=SD2, generators=gens(0, 1), steps=2, z_known=z)
    with pytest.raises(ValueError, match="boolean"):
        ddim_sample(fake_model, z, schedule=SD2, generators=gens(0, 1), steps=2, z_known=z, keep=z)
    with pytest.raises(ValueError, match="strength"):
        ddim_sample(fake_model, z, schedule=SD2, generators=gens(0, 1), steps=2, strength=0.1)


@pytest.mark.parametrize("steps", [1, 6, 8, 12, 20])
def test_dpmpp_chain_matches_diffusers_multistep_loop(steps):
    """Trailing spacing: our timesteps are diffusers' DPMSolverMultistepScheduler's, so whole chains agree."""
    from diffusers import DPMSolverMultistepScheduler

    z_init = torch.randn(1, 4, 6, 5, generator=torch.Generator().manual_seed(3))
    ours = sample(fake_model, z_init, schedule=PIXEL, generators=gens(11), steps=steps, sampler="dpmpp-2m")
    sched = DPMSolverMultistepScheduler(
        beta_schedule=PIXEL.beta_schedule, beta_start=PIXEL.beta_start, beta_end=PIXEL.beta_end,
        prediction_type=PIXEL.prediction_type, timestep_spacing=PIXEL.timestep_spacing,
        algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero",
    )  # fmt: skip
    sched.set_timesteps(steps)
    tau, _ = sampling_timesteps(PIXEL, steps, 1.0)
    assert tau.tolist() == sched.timesteps.tolist()
    z = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(11))[None]
    for t in sched.timesteps:
        z = sched.step(fake_model(z, t.view(1)), t, z).prev_sample
    torch.testing.assert_close(ours, z, rtol=1e-4, atol=1e-4)


def test_ddim_sample_is_the_ddim_rule_of_the_loop():
    z = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    kw = dict(schedule=SD2, steps=5, strength=0.8, eta=0.5, z_known=z, keep=z > 0)
    assert torch.equal(ddim_sample(fake_model, z, generators=gens(1, 2), **kw),
                       sample(fake_model, z, generators=gens(1, 2), sampler="ddim", **kw))  # fmt: skip


def test_sampler_choices_are_checked():
    z = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="sampler='euler' is not valid; choose one of 'ddim', 'dpmpp-2m'"):
        sample(fake_model, z, schedule=SD2, generators=gens(0), steps=2, sampler="euler")
    with pytest.raises(ValueError, match="dpmpp-2m sampler is deterministic; eta must be 0"):
        sample(fake_model, z, schedule=SD2, generators=gens(0), steps=2, sampler="dpmpp-2m", eta=0.5)
