"""Object-leak score: which of x_ori and x_obj an erasure output resembles inside the mask."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from eradiff.metrics import ObjectLeak, leak_summary


def _l2(x, y):
    return (x - y).square().mean(dim=(1, 2, 3))


@st.composite
def scene(draw):
    b = draw(st.integers(1, 3))
    h, w = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x_ori = torch.rand(b, 3, h, w, generator=g)
    mask = torch.zeros(b, h, w, dtype=torch.bool)
    for i in range(b):
        top, left = draw(st.integers(0, h - 2)), draw(st.integers(0, w - 2))
        mask[i, top : draw(st.integers(top + 1, h)), left : draw(st.integers(left + 1, w))] = True
    x_obj = torch.where(mask[:, None], torch.rand(b, 3, h, w, generator=g), x_ori)
    lam = draw(st.floats(0, 1))
    return x_ori, x_obj, mask, lam


@given(scene())
def test_leak_endpoints_and_monotone_in_the_blend(s):
    x_ori, x_obj, mask, lam = s
    leak = ObjectLeak(distance=_l2, min_side=0)
    clean = leak(x_ori, x_ori, x_obj, mask)
    assert not clean.leaked.any() and (clean.d_ori == 0).all() and (clean.ratio == 0).all()
    full = leak(x_obj, x_ori, x_obj, mask)
    assert full.leaked.all() and (full.d_obj == 0).all()
    blend = leak(x_ori + lam * (x_obj - x_ori), x_ori, x_obj, mask)  # L2: d_ori = λ²D, d_obj = (1 − λ)²D
    assert blend.d_ori.shape == blend.d_obj.shape == blend.ratio.shape == (x_ori.shape[0],)
    if abs(lam - 0.5) > 1e-3:
        assert blend.leaked.tolist() == [lam > 0.5] * x_ori.shape[0]
    if lam < 0.9:
        expected = torch.full_like(blend.ratio, lam**2 / (1 - lam) ** 2)
        torch.testing.assert_close(blend.ratio, expected, rtol=1e-3, atol=1e-5)


def test_leak_summary_and_errors():
    x_ori = torch.zeros(2, 3, 16, 16)
    x_obj = x_ori.clone()
    x_obj[:, :, 4:8, 4:8] = 1
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[:, 4:8, 4:8] = True
    out = torch.stack([x_ori[0], x_obj[1]])
    leak = ObjectLeak(distance=_l2)
    result = leak(out, x_ori, x_obj, mask)
    assert result.leaked.tolist() == [False, True]
    summary = leak_summary(result)
    assert summary["leak_rate"] == 0.5 and summary["mean_ratio"] > 1e6
    with pytest.raises(ValueError, match="x_obj must have the shape of out"):
        leak(out, x_ori, x_obj[:1], mask)
    with pytest.raises(ValueError, match="mask must be"):
        leak(out, x_ori, x_obj, mask[:, :8])
    with pytest.raises(ValueError, match="mask is empty"):
        leak(out, x_ori, x_obj, torch.zeros_like(mask))


def test_leak_with_default_lpips(alex_weights, lpips_alex):
    g = torch.Generator().manual_seed(0)
    x_ori = torch.rand(2, 3, 96, 96, generator=g) * 0.2 + 0.4
    mask = torch.zeros(2, 96, 96, dtype=torch.bool)
    mask[:, 30:60, 40:70] = True
    x_obj = torch.where(mask[:, None], torch.rand(2, 3, 96, 96, generator=g), x_ori)
    out = torch.stack([x_ori[0] * 0.9 + x_obj[0] * 0.1, x_ori[1] * 0.1 + x_obj[1] * 0.9])
    result = ObjectLeak()(out, x_ori, x_obj, mask)
    assert result.leaked.tolist() == [False, True]
    assert result.ratio[0] < 1 < result.ratio[1]
