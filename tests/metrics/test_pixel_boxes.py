"""PSNR/SSIM against scikit-image, and the mask boxes the masked-region metrics crop with."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from eradiff.metrics import crop, mask_bbox, psnr, square_box, ssim

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is not installed (the eval extra has it)")
peak_signal_noise_ratio = skimage_metrics.peak_signal_noise_ratio
structural_similarity = skimage_metrics.structural_similarity


@st.composite
def image_pair(draw, min_side=11, max_side=40):
    b = draw(st.integers(1, 3))
    c = draw(st.sampled_from([1, 3]))
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    noise = draw(st.floats(0.0, 0.5))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    y = (x + noise * torch.randn(b, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


def _sk_ssim(a, b, data_range):
    return structural_similarity(
        a.permute(1, 2, 0).numpy(),
        b.permute(1, 2, 0).numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=2,
    )


@given(image_pair(), st.sampled_from([1.0, 255.0]))
def test_ssim_and_psnr_match_skimage(pair, data_range):
    x, y = (t * data_range for t in pair)
    expected_ssim = [_sk_ssim(a, b, data_range) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(ssim(x, y, data_range=data_range).numpy(), expected_ssim, rtol=0, atol=1e-9)
    got_psnr = psnr(x, y, data_range=data_range).numpy()
    for a, b, p in zip(x, y, got_psnr, strict=True):
        if torch.equal(a, b):
            assert p == np.inf
        else:
            np.testing.assert_allclose(
                p, peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=data_range), rtol=1e-12
            )


@given(image_pair(min_side=20), st.data())
def test_box_metrics_equal_metrics_of_the_crops(pair, data):
    x, y = pair
    h, w = x.shape[-2:]
    boxes = []
    for _ in range(x.shape[0]):
        top = data.draw(st.integers(0, h - 11))
        left = data.draw(st.integers(0, w - 11))
        boxes.append((top, left, data.draw(st.integers(top + 11, h)), data.draw(st.integers(left + 11, w))))
    got_ssim = ssim(x, y, boxes=boxes)
    got_psnr = psnr(x, y, boxes=boxes, max_db=100.0)
    for i, box in enumerate(boxes):
        a, b = crop(x[i], box), crop(y[i], box)
        np.testing.assert_allclose(got_ssim[i].item(), _sk_ssim(a, b, 1.0), atol=1e-9)
        with np.errstate(divide="ignore"):  # identical crops: skimage's PSNR is inf too
            expected_psnr = min(peak_signal_noise_ratio(a.numpy(), b.numpy()), 100.0)
        np.testing.assert_allclose(got_psnr[i].item(), expected_psnr)


@given(image_pair())
def test_identity_gives_ssim_one_and_psnr_inf_or_cap(pair):
    x, _ = pair
    torch.testing.assert_close(ssim(x, x), torch.ones(x.shape[0], dtype=torch.float64))
    assert torch.isinf(psnr(x, x)).all()
    assert (psnr(x, x, max_db=60.0) == 60.0).all()


@given(image_pair())
def test_ssim_and_psnr_are_symmetric(pair):
    x, y = pair
    torch.testing.assert_close(ssim(x, y), ssim(y, x), rtol=0, atol=1e-12)
    torch.testing.assert_close(psnr(x, y), psnr(y, x))


def test_pixel_metrics_reject_bad_input():
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="one shape"):
        ssim(x, x[:1])
    with pytest.raises(ValueError, match="data_range must be > 0"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match=r"one box per image \(2\), got 1"):
        psnr(x, x, boxes=[(0, 0, 4, 4)])
    with pytest.raises(ValueError, match="at least 11×11"):
        ssim(x, x, boxes=[(0, 0, 10, 16), (0, 0, 16, 16)])


@st.composite
def mask_and_box(draw):
    h, w = draw(st.integers(1, 60)), draw(st.integers(1, 60))
    top, left = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
    bottom, right = draw(st.integers(top + 1, h)), draw(st.integers(left + 1, w))
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[top:bottom, left:right] = (
        torch.rand(bottom - top, right - left, generator=torch.Generator().manual_seed(0)) < 0.5
    )
    mask[top, left] = mask[bottom - 1, right - 1] = True  # pin the box's corners
    return mask, (top, left, bottom, right)


@given(mask_and_box())
def test_mask_bbox_is_the_tightest_box(mb):
    mask, box = mb
    assert mask_bbox(mask) == box
    assert crop(mask, box).sum() == mask.sum()


@given(mask_and_box(), st.floats(0, 1), st.integers(0, 80))
def test_square_box_is_square_inside_and_holds_the_box(mb, margin, min_side):
    mask, box = mb
    h, w = mask.shape
    top, left, bottom, right = square_box(box, (h, w), margin=margin, min_side=min_side)
    side = bottom - top
    assert right - left == side
    assert 0 <= top and 0 <= left and bottom <= h and right <= w
    assert side == min(max(np.ceil(max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin)), min_side), h, w)
    if side >= max(box[2] - box[0], box[3] - box[1]):
        assert top <= box[0] and left <= box[1] and bottom >= box[2] and right >= box[3]


def test_boxes_reject_bad_input():
    with pytest.raises(ValueError, match="mask is empty"):
        mask_bbox(torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        mask_bbox(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="outside an image"):
        square_box((0, 0, 5, 5), (4, 4))
    with pytest.raises(ValueError, match="margin and min_side must be ≥ 0"):
        square_box((0, 0, 2, 2), (4, 4), margin=-0.1)
