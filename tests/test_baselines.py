"""Classical inpainting baselines: pixels outside the mask untouched, the hole filled, clear errors."""

import builtins

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eradiff.baselines import METHODS, fill_from_known, inpaint_classical


def _scene(seed, h, w):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([100 + 60 * np.sin(xx / 7 + c) + 40 * np.cos(yy / 5 - c) for c in range(3)], -1)
    image = np.clip(smooth + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    mask[top : top + rng.integers(2, h // 2 + 1), left : left + rng.integers(2, w // 2 + 1)] = True
    return image, mask


def _available(method):
    if method == "patchmatch":
        pytest.importorskip("patchmatch", reason="pypatchmatch is not installed (pip install pypatchmatch)")
    if method == "biharmonic":
        pytest.importorskip("skimage", reason="scikit-image is not installed")


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=10)
@given(st.integers(0, 2**31 - 1), st.integers(16, 48), st.integers(16, 48))
def test_outside_of_the_mask_is_bit_identical(method, seed, h, w):
    _available(method)
    image, mask = _scene(seed, h, w)
    before = image.copy()
    out = inpaint_classical(image, mask, method=method, radius=3)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], image[~mask])
    np.testing.assert_array_equal(image, before)  # input untouched


@pytest.mark.parametrize("method", METHODS)
def test_fill_from_known_never_depends_on_the_pixels_under_the_mask(method):
    _available(method)
    image, mask = _scene(3, 40, 40)
    fills = []
    for value in (0, 255):
        holed = image.copy()
        holed[mask] = value
        fills.append(fill_from_known(holed, mask, method=method, seed=5))
    np.testing.assert_array_equal(fills[0], fills[1])
    np.testing.assert_array_equal(fills[0][~mask], image[~mask])


@pytest.mark.parametrize("method", METHODS)
def test_hole_is_filled_from_its_surroundings(method):
    _available(method)
    image, _ = _scene(0, 64, 64)
    mask = np.zeros((64, 64), dtype=bool)
    mask[24:40, 24:40] = True
    holed = image.copy()
    holed[mask] = (255, 0, 255)  # a colour the surroundings do not have
    out = inpaint_classical(holed, mask, method=method)
    error = np.abs(out[mask].astype(float) - image[mask]).mean()
    assert error < 40, f"{method}: mean abs error {error:.1f} in the hole"


def test_patchmatch_is_deterministic_per_seed():
    _available("patchmatch")
    image, mask = _scene(1, 48, 48)
    a = inpaint_classical(image, mask, method="patchmatch", seed=7)
    b = inpaint_classical(image, mask, method="patchmatch", seed=7)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", METHODS)
def test_empty_mask_returns_a_copy(method):
    image, _ = _scene(2, 20, 20)
    out = inpaint_classical(image, np.zeros((20, 20), dtype=bool), method=method)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_errors_name_the_problem():
    image, mask = _scene(3, 20, 20)
    with pytest.raises(
        ValueError, match="method='lama' is not valid; choose one of 'telea', 'ns', 'biharmonic', 'patchmatch'"
    ):
        inpaint_classical(image, mask, method="lama")
    with pytest.raises(ValueError, match=r"image must be an \(H, W, 3\) uint8 array, got float64"):
        inpaint_classical(image.astype(float), mask, method="telea")
    with pytest.raises(ValueError, match="mask must be an"):
        inpaint_classical(image, mask.astype(np.uint8), method="telea")
    with pytest.raises(ValueError, match="mask must be an"):
        inpaint_classical(image, mask[:10], method="telea")
    with pytest.raises(ValueError, match="radius must be ≥ 1"):
        inpaint_classical(image, mask, method="ns", radius=0)


@pytest.mark.parametrize(
    ("method", "module", "package"),
    [("patchmatch", "patchmatch", "pypatchmatch"), ("biharmonic", "skimage.restoration", "scikit-image")],
)
def test_missing_optional_package_names_it(monkeypatch, method, module, package):
    real_import = builtins.__import__

    def no_such_module(name, *args, **kwargs):
        if name == module:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_such_module)
    image, mask = _scene(4, 20, 20)
    with pytest.raises(ImportError, match=f"pip install {package}"):
        inpaint_classical(image, mask, method=method)
