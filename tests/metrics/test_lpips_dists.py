"""LPIPS and DISTS: pyiqa's published calibration values, lpips-jax's outputs, and properties."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eradiff.metrics import DISTS, LPIPS

# pyiqa's ResultsCalibra/calibration_summary.csv: "original" rows (the authors' code) and pyiqa's
# own ("ours"), on I03, I04, I06, I08, I19 (distorted vs reference). Four decimals are published.
LPIPS_ALEX_ORIGINAL = [0.7237, 0.2572, 0.0508, 0.052, 0.4253]
LPIPS_ALEX_PYIQA = [0.7237, 0.2572, 0.0508, 0.0521, 0.4253]
DISTS_ORIGINAL = [0.4742, 0.1424, 0.0683, 0.0287, 0.3123]
DISTS_PYIQA = [0.4742, 0.1424, 0.0682, 0.0287, 0.3123]
PUBLISHED_ATOL = 6e-5  # half a unit of the fourth decimal, plus a little for float32 kernels

# lpips-jax 0.1.0 (flax, jax 0.10.2 CPU) on _synthetic_pair(seed, h, w), images in [-1, 1].
LPIPS_JAX = {
    ("alex", 0, 64, 80): [0.20288494, 0.17462485, 0.15606076],
    ("alex", 1, 100, 64): [0.12674944, 0.14353237, 0.15109828],
    ("vgg", 0, 64, 80): [0.25923514, 0.2663543, 0.24224584],
    ("vgg", 1, 100, 64): [0.26185375, 0.2819413, 0.28768486],
}


def _synthetic_pair(seed, h, w, n=3):
    """Deterministic (n, 3, h, w) pairs in [-1, 1]: smooth colour waves plus noise, and a noisy copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1)
    a = np.clip(0.6 * base[None] + 0.4 * rng.uniform(-1, 1, (n, h, w, 3)), -1, 1).astype(np.float32)
    b = np.clip(a + 0.3 * rng.standard_normal((n, h, w, 3)), -1, 1).astype(np.float32)
    return torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(b).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def lpips_alex_pm1(alex_weights):
    return LPIPS("alex", input_range="[-1,1]", weights=alex_weights)


def _images(seed, b, h, w):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_lpips_alex_reproduces_pyiqa_calibration(calibration, lpips_alex):
    _, ref, dist = calibration
    with torch.no_grad():
        got = lpips_alex(dist, ref).tolist()
    np.testing.assert_allclose(got, LPIPS_ALEX_PYIQA, rtol=0, atol=PUBLISHED_ATOL)
    np.testing.assert_allclose(got, LPIPS_ALEX_ORIGINAL, rtol=0, atol=PUBLISHED_ATOL)


@pytest.mark.slow
def test_dists_reproduces_pyiqa_calibration(calibration, vgg_weights, dists_alpha_beta):
    _, ref, dist = calibration
    model = DISTS(vgg_weights=vgg_weights, alpha_beta=dists_alpha_beta)
    with torch.no_grad():
        got = [model(d[None], r[None]).item() for d, r in zip(dist, ref, strict=True)]
    np.testing.assert_allclose(got, DISTS_PYIQA, rtol=0, atol=PUBLISHED_ATOL)
    np.testing.assert_allclose(got, DISTS_ORIGINAL, rtol=0, atol=PUBLISHED_ATOL)


@pytest.mark.parametrize("key", sorted(LPIPS_JAX))
def test_lpips_matches_lpips_jax(key, alex_weights, vgg_weights):
    net, seed, h, w = key
    model = LPIPS(net, input_range="[-1,1]", weights=alex_weights if net == "alex" else vgg_weights)
    x, y = _synthetic_pair(seed, h, w)
    with torch.no_grad():
        got = model(x, y).tolist()
    np.testing.assert_allclose(got, LPIPS_JAX[key], rtol=0, atol=1e-5)


@settings(max_examples=10)
@given(st.integers(1, 3), st.integers(32, 64), st.integers(32, 64), st.integers(0, 2**31 - 1))
def test_lpips_identity_symmetry_and_range_equivalence(lpips_alex, lpips_alex_pm1, b, h, w, seed):
    x, y = _images(seed, b, h, w), _images(seed + 1, b, h, w)
    with torch.no_grad():
        d_xy = lpips_alex(x, y)
        assert d_xy.shape == (b,)
        assert (d_xy > 0).all()
        torch.testing.assert_close(lpips_alex(x, x), torch.zeros(b), rtol=0, atol=1e-6)
        torch.testing.assert_close(lpips_alex(y, x), d_xy, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lpips_alex_pm1(2 * x - 1, 2 * y - 1), d_xy, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@settings(max_examples=5)
@given(st.integers(32, 48), st.integers(32, 48), st.integers(0, 2**31 - 1))
def test_dists_identity_and_symmetry(vgg_weights, dists_alpha_beta, h, w, seed):
    model = DISTS(vgg_weights=vgg_weights, alpha_beta=dists_alpha_beta)
    x, y = _images(seed, 2, h, w), _images(seed + 1, 2, h, w)
    with torch.no_grad():
        d_xy = model(x, y)
        assert (d_xy > 0).all()
        torch.testing.assert_close(model(x, x), torch.zeros(2), rtol=0, atol=1e-6)
        torch.testing.assert_close(model(y, x), d_xy, rtol=1e-5, atol=1e-6)
        model.input_range = "[-1,1]"
        torch.testing.assert_close(model(2 * x - 1, 2 * y - 1), d_xy, rtol=1e-5, atol=1e-6)


def test_lpips_rejects_bad_input(lpips_alex, alex_weights):
    x = torch.rand(1, 3, 40, 40)
    with pytest.raises(ValueError, match=r"outside input_range='\[0,1\]'"):
        lpips_alex(x * 2 - 1, x)
    with pytest.raises(ValueError, match="y must have the shape of x"):
        lpips_alex(x, x[..., :32])
    with pytest.raises(ValueError, match=r"float \(b, 3, h, w\)"):
        lpips_alex(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="net='squeeze' is not valid; choose one of 'alex', 'vgg'"):
        LPIPS("squeeze", weights=alex_weights)
    with pytest.raises(ValueError, match="input_range='0-255' is not valid"):
        LPIPS("alex", input_range="0-255", weights=alex_weights)
