"""EraseOptions.sampler: DPM-Solver++(2M) through the whole erase call, and its checks."""

import numpy as np
import pytest

from eradiff.options import SAMPLER_KINDS, EraseOptions
from eradiff.pipeline.erase import erase
from eradiff.pipeline.sampler import STEP_RULES


def _photo():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    mask = np.zeros((32, 40), bool)
    mask[8:20, 10:24] = True
    return image, mask


def test_every_named_sampler_has_a_step_rule():
    assert tuple(STEP_RULES) == SAMPLER_KINDS == ("ddim", "dpmpp-2m")


def test_one_step_of_dpmpp_is_ddim_and_more_steps_differ(pixel_model):
    """DPM-Solver++'s first (and last) step is first order, i.e. DDIM: one step gives the same image."""
    image, mask = _photo()
    ddim = erase(pixel_model, image, mask, EraseOptions(steps=1, dilate=0, sampler="ddim")).image
    dpm = erase(pixel_model, image, mask, EraseOptions(steps=1, dilate=0, sampler="dpmpp-2m")).image
    assert np.array_equal(ddim, dpm)
    ddim4 = erase(pixel_model, image, mask, EraseOptions(steps=4, dilate=0, sampler="ddim")).image
    dpm4 = erase(pixel_model, image, mask, EraseOptions(steps=4, dilate=0, sampler="dpmpp-2m")).image
    again = erase(pixel_model, image, mask, EraseOptions(steps=4, dilate=0, sampler="dpmpp-2m")).image
    assert np.array_equal(dpm4, again)
    assert not np.array_equal(ddim4, dpm4)
    assert np.array_equal(dpm4[~mask], image[~mask])


def test_sampler_options_are_checked():
    with pytest.raises(ValueError, match="sampler='euler' is not valid; choose one of 'ddim', 'dpmpp-2m'"):
        EraseOptions(sampler="euler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eta=0.5 needs sampler='ddim'"):
        EraseOptions(sampler="dpmpp-2m", eta=0.5)
