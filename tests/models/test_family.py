"""Model families: the residual pixel space (x − fill) and its round trips."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as core
from eradiff.models.family import PixelInpaintModel
from eradiff.models.loading import load_model, save_pixel_model
from eradiff.pipeline.erase import EraseOptions, erase
from eradiff.testing import tiny_pixel_config


def _model(space: str, seed: int = 0, scale: float = 1.0) -> PixelInpaintModel:
    torch.manual_seed(seed)
    return PixelInpaintModel(tiny_pixel_config(space=space, residual_scale=scale)).to("cpu")


def _batch(seed: int, b: int = 2, h: int = 32, w: int = 32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    M = torch.zeros(b, h, w, dtype=torch.bool)
    M[:, 8:20, 10:24] = True
    return x, M


@given(st.integers(0, 2**31 - 1), st.sampled_from([("pixel", 1.0), ("residual", 1.0), ("residual", 0.25)]))
def test_encode_decode_round_trip(seed, space_scale):
    model = _model(*space_scale)
    x, M = _batch(seed)
    cond = model.condition(x, M)
    z = model.encode(x, cond)
    torch.testing.assert_close(model.decode(z, cond), x, rtol=0, atol=1e-6)


def test_residual_space_is_zero_outside_the_hole_and_needs_the_conditioning():
    model = _model("residual")
    x, M = _batch(1)
    cond = model.condition(x, M)
    z = model.encode(x, cond)
    outside = ~core.downsample_mask(M, factor=model.factor)[:, None].expand_as(z)
    assert float(z[outside].abs().max()) == 0.0, "x equals its fill outside the hole"
    assert model.clip_x0 == 2.0 and _model("pixel").clip_x0 == 1.0
    with pytest.raises(ValueError, match="needs cond"):
        model.encode(x)
    with pytest.raises(ValueError, match="space='latent'"):
        PixelInpaintModel(tiny_pixel_config(space="latent"))
    with pytest.raises(ValueError, match="residual_scale"):
        PixelInpaintModel(tiny_pixel_config(space="pixel", residual_scale=0.5))


def test_residual_scale_scales_the_space_and_its_bounds():
    x, M = _batch(3)
    unit, quarter = _model("residual"), _model("residual", scale=0.25)
    c1, c4 = unit.condition(x, M), quarter.condition(x, M)
    torch.testing.assert_close(quarter.encode(x, c4), 4 * unit.encode(x, c1))
    lo, hi = quarter.x0_bounds(c4)
    z = quarter.encode(x, c4)
    assert bool(((z >= lo - 1e-5) & (z <= hi + 1e-5)).all()), "every image in [−1, 1] lies inside the bounds"


def test_fresh_residual_model_erases_to_the_fill(tmp_path):
    """Output layer zero-initialised: v̂ = 0, and with re-imposition the erase returns ≈ the Telea fill."""
    model = _model("residual")
    assert float(model.unet.conv_out.weight.abs().max()) == 0.0
    path = tmp_path / "m.safetensors"
    save_pixel_model(model, path)
    loaded = load_model(str(path))
    assert loaded.space == "residual"
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    mask = np.zeros((40, 48), bool)
    mask[10:25, 12:30] = True
    out = erase(loaded, image, mask, EraseOptions(steps=4, dilate=0, feather=0)).image
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])
