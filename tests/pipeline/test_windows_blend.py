"""Windows (IOPaint crop strategy with merging) and the bit-exact feathered blend."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eradiff.pipeline.blend import blend, feather_alpha
from eradiff.pipeline.windows import (
    boxes_overlap,
    dilate_mask,
    mask_windows,
    merge_boxes,
    pad_to,
    resize_mask,
    window_geometry,
)


@st.composite
def box(draw, size=100):
    x0 = draw(st.integers(0, size - 1))
    y0 = draw(st.integers(0, size - 1))
    return x0, y0, draw(st.integers(x0 + 1, size)), draw(st.integers(y0 + 1, size))


def contains(outer, inner):
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


@given(st.lists(box(), max_size=25))
def test_merged_boxes_never_overlap_and_cover_every_input(boxes):
    merged = merge_boxes(boxes)
    for i, a in enumerate(merged):
        for b in merged[i + 1 :]:
            assert not boxes_overlap(a, b)
    for b in boxes:
        assert any(contains(m, b) for m in merged)
    assert len(merged) <= len(boxes)


def test_small_image_is_one_window():
    mask = np.zeros((600, 800), bool)
    mask[10:20, 10:20] = True
    assert mask_windows(mask, trigger=800, margin=128) == [(0, 0, 800, 600)]
    assert mask_windows(np.zeros((5, 5), bool)) == []


def test_large_image_windows_far_apart_and_merged():
    mask = np.zeros((2000, 3000), bool)
    mask[100:150, 100:140] = True  # far from the others: its own window
    mask[1500:1520, 2500:2530] = True
    mask[1500:1520, 2700:2720] = True  # 170 px from the previous one: margins overlap → merged
    windows = mask_windows(mask, trigger=800, margin=128)
    assert windows == [(0, 0, 268, 278), (2372, 1372, 2848, 1648)]
    ys, xs = np.nonzero(mask)
    for y, x in zip(ys, xs, strict=True):
        assert any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in windows)


@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3000), st.integers(1, 3000))
def test_window_geometry(native, multiple, w, h):
    g = window_geometry((5, 7, 5 + w, 7 + h), native_size=native, size_multiple=multiple)
    scale = native / max(w, h)
    assert max(g.size) == native
    for got, side in zip(g.size, (w, h), strict=True):
        assert got == max(1, round(side * scale)), "each side is scaled and rounded (aspect kept within 1 px)"
    assert g.padded[0] % multiple == 0 and g.padded[1] % multiple == 0
    assert 0 <= g.padded[0] - g.size[0] < multiple and 0 <= g.padded[1] - g.size[1] < multiple


def test_pad_and_resize_mask():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    p = pad_to(a, (5, 3))
    assert p.shape == (3, 5) and np.array_equal(p[:2, :3], a)
    m = np.zeros((10, 10), bool)
    m[4, 4] = True
    assert resize_mask(m, (3, 3)).any(), "shrinking never loses a masked pixel"
    assert resize_mask(m, (20, 20))[8:10, 8:10].all()


def test_dilate():
    m = np.zeros((21, 21), bool)
    m[10, 10] = True
    assert np.array_equal(dilate_mask(m, 0), m)
    d = dilate_mask(m, 3)
    assert d.sum() > 1 and d[10, 7] and d[10, 13] and not d[10, 6] and not d[7, 7]
    with pytest.raises(ValueError, match="radius"):
        dilate_mask(m, -1)


@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([3, 4]))),
    st.integers(0, 2**31 - 1),
)
def test_blend_keeps_alpha_zero_pixels_bit_identical(original, seed):
    rng = np.random.default_rng(seed)
    h, w = original.shape[:2]
    generated = rng.uniform(0, 255, original.shape)
    alpha = np.where(rng.random((h, w)) < 0.5, 0.0, rng.random((h, w))).astype(np.float32)
    out = blend(original, generated, alpha)
    assert out.dtype == original.dtype
    assert np.array_equal(out[alpha == 0], original[alpha == 0])
    full = alpha == 1
    assert np.array_equal(out[full], np.clip(np.rint(generated[full]), 0, 255).astype(np.uint8))


def test_blend_uint16_and_grey():
    original = np.full((4, 5), 60000, np.uint16)
    alpha = np.zeros((4, 5), np.float32)
    alpha[1, 1] = 1.0
    out = blend(original, np.full((4, 5), 70000.0), alpha)
    assert out[1, 1] == 65535 and (out[alpha == 0] == 60000).all()


def test_feather_alpha():
    mask = np.zeros((40, 40), bool)
    mask[15:25, 15:25] = True
    dilated = dilate_mask(mask, 7)
    alpha = feather_alpha(mask, dilated, feather=4)
    assert (alpha[mask] == 1).all()
    assert (alpha[~dilated] == 0).all()
    assert ((alpha > 0) == dilated).all()
    assert 0 < alpha[dilated & ~mask].min() < 1
    assert np.array_equal(feather_alpha(mask, dilated, feather=0), dilated.astype(np.float32))
