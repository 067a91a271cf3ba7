"""The erase pipeline on tiny random models: exactness outside the mask, determinism, windows, errors."""

import numpy as np
import pytest
import torch

from eradiff.errors import InputError
from eradiff.pipeline.erase import EraseOptions, erase
from eradiff.pipeline.windows import dilate_mask

FAST = EraseOptions(steps=2)


def photo(h, w, channels=3, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:h, 0:w]
    base = (np.sin(xx / 7.0) + np.cos(yy / 5.0) + 2) / 4 * top
    shape = (h, w) if channels == 1 else (h, w, channels)
    noise = rng.integers(0, top // 10, shape)
    img = (base[..., None] if channels > 1 else base) + noise
    return np.clip(img, 0, top).astype(dtype)


def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def outside(mask, options=FAST):
    return ~dilate_mask(mask, options.dilate)


@pytest.mark.parametrize("family", ["pixel", "latent"])
@pytest.mark.parametrize(
    ("h", "w", "channels", "dtype"),
    [
        (37, 53, 3, np.uint8),
        (40, 40, 4, np.uint8),
        (29, 31, 1, np.uint8),
        (33, 47, 3, np.uint16),
        (30, 26, 2, np.uint8),
    ],
)
def test_pixels_outside_the_dilated_mask_are_bit_identical(request, family, h, w, channels, dtype):
    model = request.getfixturevalue(f"{family}_model")
    image = photo(h, w, channels, dtype)
    mask = box(h, w, h // 3, h // 2 + 2, w // 4, w // 2)
    result = erase(model, image, mask, FAST)
    out = result.image
    assert out.shape == image.shape and out.dtype == image.dtype
    keep = outside(mask)
    assert np.array_equal(out[keep], image[keep])
    assert not np.array_equal(out[mask], image[mask]), "the masked region was regenerated"
    if channels in (2, 4):
        assert np.array_equal(out[..., -1], image[..., -1]), "alpha passes through"
    assert result.report.windows and result.report.windows[0].box == (0, 0, w, h)


@pytest.mark.parametrize("family", ["pixel", "latent"])
def test_deterministic_for_a_seed(request, family):
    model = request.getfixturevalue(f"{family}_model")
    image, mask = photo(32, 40), box(32, 40, 8, 20, 10, 25)
    a = erase(model, image, mask, EraseOptions(steps=2, seed=3, eta=0.5)).image
    b = erase(model, image, mask, EraseOptions(steps=2, seed=3, eta=0.5)).image
    c = erase(model, image, mask, EraseOptions(steps=2, seed=4, eta=0.5)).image
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sra_on_and_off_differ(latent_model):
    image, mask = photo(32, 32), box(32, 32, 6, 22, 6, 22)
    on = erase(latent_model, image, mask, EraseOptions(steps=2, sra=True)).image
    off = erase(latent_model, image, mask, EraseOptions(steps=2, sra=False)).image
    assert not np.array_equal(on, off)
    keep = outside(mask)
    assert np.array_equal(on[keep], off[keep])


def test_large_image_costs_one_small_window(pixel_model):
    image = photo(1500, 2000)
    mask = box(1500, 2000, 700, 740, 900, 960)
    result = erase(pixel_model, image, mask, FAST)
    (window,) = result.report.windows
    x0, y0, x1, y1 = window.box
    assert (x1 - x0, y1 - y0) == (60 + 2 * (128 + 7), 40 + 2 * (128 + 7))
    assert max(window.model_size) <= pixel_model.native_size + pixel_model.size_multiple
    keep = outside(mask)
    assert np.array_equal(result.image[keep], image[keep])


def test_two_far_regions_two_windows_and_merge(pixel_model):
    image = photo(900, 1200)
    far = box(900, 1200, 50, 70, 50, 70) | box(900, 1200, 800, 820, 1100, 1120)
    assert len(erase(pixel_model, image, far, FAST).report.windows) == 2
    near = box(900, 1200, 50, 70, 50, 70) | box(900, 1200, 50, 70, 200, 220)
    assert len(erase(pixel_model, image, near, FAST).report.windows) == 1


def test_strength_below_one_with_telea_init_and_progress(pixel_model):
    calls = []
    image, mask = photo(30, 30), box(30, 30, 10, 20, 10, 20)
    options = EraseOptions(steps=6, strength=0.5, init="telea")
    result = erase(pixel_model, image, mask, options, progress=lambda *a: calls.append(a))
    assert result.report.steps_run == 3
    assert calls == [(1, 1, i, 3) for i in (1, 2, 3)]


def test_guidance_and_prompt_on_the_latent_model(latent_model):
    image, mask = photo(24, 24), box(24, 24, 8, 16, 8, 16)
    out = erase(latent_model, image, mask, EraseOptions(steps=1, prompt="grass", guidance_scale=3.0)).image
    keep = outside(mask)
    assert np.array_equal(out[keep], image[keep])


def test_empty_mask_copies_with_a_warning(pixel_model):
    image = photo(20, 20)
    with pytest.warns(UserWarning, match="nothing to erase"):
        result = erase(pixel_model, image, np.zeros((20, 20), bool), FAST)
    assert np.array_equal(result.image, image) and result.image is not image
    assert result.report.windows == [] and result.report.warnings


def test_whole_image_mask_is_an_error(pixel_model):
    with pytest.raises(InputError, match="covers the whole image"):
        erase(pixel_model, photo(10, 10), np.ones((10, 10), bool), FAST)
    with pytest.raises(InputError, match="lower dilate"):
        erase(pixel_model, photo(10, 10), box(10, 10, 1, 9, 1, 9), FAST)


def test_input_shape_errors(pixel_model):
    with pytest.raises(InputError, match="mask shape"):
        erase(pixel_model, photo(10, 10), np.zeros((10, 11), bool), FAST)
    with pytest.raises(InputError, match="uint8 or uint16"):
        erase(pixel_model, photo(10, 10).astype(np.float32), np.zeros((10, 10), bool), FAST)
    with pytest.raises(InputError, match=r"\(H, W\)"):
        erase(pixel_model, np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4), bool), FAST)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steps=0), "steps"),
        (dict(strength=0.0), "strength"),
        (dict(strength=1.5), "strength"),
        (dict(steps=3, strength=0.2), "runs no step"),
        (dict(eta=-1), "eta"),
        (dict(seed=-1), "seed"),
        (dict(dilate=-1), "dilate"),
        (dict(guidance_scale=0.5), "guidance_scale"),
        (dict(init="lama"), "init="),
    ],
)
def test_option_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EraseOptions(**kwargs)


def test_model_state_is_float32_on_cpu(pixel_model, latent_model):
    for model in (pixel_model, latent_model):
        assert model.dtype == torch.float32 and model.device.type == "cpu"
