"""Self-Rectifying Attention mask (Eq. 10–11)."""

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from hypothesis import given
from hypothesis import strategies as st

import eradiff.core as c


@st.composite
def token_mask(draw, min_n=1, max_n=40):
    b = draw(st.integers(1, 3))
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    p = draw(st.floats(0.0, 1.0))
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(b, n, generator=g) < p
    return m, seed


@given(token_mask())
def test_allowed_symmetric_and_no_blocked_row(case):
    m, _ = case
    A = c.sra_allowed(m)
    assert A.shape == (m.shape[0], 1, m.shape[1], m.shape[1])
    assert torch.equal(A, A.transpose(-1, -2))
    assert bool(A.any(dim=-1).all()), "every query sees at least one key"


@given(token_mask())
def test_allowed_semantics(case):
    m, _ = case
    A = c.sra_allowed(m)[:, 0]
    for i in range(m.shape[0]):
        mi = m[i]
        if bool(mi.all()):
            assert bool(A[i].all()), "all-masked sample falls back to plain attention"
            continue
        # unmasked query sees everything
        assert bool(A[i][~mi].all())
        # masked query sees exactly the unmasked keys
        for q in torch.nonzero(mi).flatten().tolist():
            assert torch.equal(A[i, q], ~mi)


@given(st.integers(1, 3), st.integers(1, 30))
def test_empty_mask_allows_everything(b, n):
    assert bool(c.sra_allowed(torch.zeros(b, n, dtype=torch.bool)).all())
    assert bool((c.sra_bias(torch.zeros(b, n, dtype=torch.bool)) == 0).all())


@given(token_mask(), st.integers(1, 3), st.integers(1, 8), st.booleans())
def test_bias_and_bool_forms_agree_in_sdpa(case, heads, d, finite):
    m, seed = case
    b, n = m.shape
    g = torch.Generator().manual_seed(seed + 1)
    q, k, v = (torch.randn(b, heads, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    out_bool = F.scaled_dot_product_attention(q, k, v, attn_mask=c.sra_allowed(m))
    out_bias = F.scaled_dot_product_attention(q, k, v, attn_mask=c.sra_bias(m, dtype=torch.float64, finite=finite))
    assert torch.isfinite(out_bias).all() and torch.isfinite(out_bool).all()
    torch.testing.assert_close(out_bias, out_bool)
    torch.testing.assert_close(c.sra_attention(q, k, v, m, mode="bool"), out_bool)
    torch.testing.assert_close(c.sra_attention(q, k, v, m, mode="bias"), out_bool)


@given(token_mask(min_n=2))
def test_masked_query_ignores_masked_values(case):
    """Changing V at masked tokens changes no output row of a masked query (unless all masked)."""
    m, seed = case
    b, n = m.shape
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, 2, n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    v2 = v.clone()
    v2[m[:, None, :, None].expand_as(v2)] += 100.0
    o1, o2 = c.sra_attention(q, k, v, m), c.sra_attention(q, k, v2, m)
    for i in range(b):
        if bool(m[i].all()) or not bool(m[i].any()):
            continue
        rows = m[i]
        torch.testing.assert_close(o1[i][:, rows], o2[i][:, rows])


def test_all_masked_fp16_bias_is_finite():
    m = torch.ones(2, 9, dtype=torch.bool)
    bias = c.sra_bias(m, dtype=torch.float16, finite=True)
    assert torch.isfinite(bias).all() and bool((bias == 0).all())
    part = torch.tensor([[True, False, True]])
    fb = c.sra_bias(part, dtype=torch.float16, finite=True)
    assert torch.isfinite(fb).all() and float(fb.min()) == -torch.finfo(torch.float16).max / 2


@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 4), st.integers(0, 2**31 - 1))
def test_downsample_any_pixel_rule(h, w, level, seed):
    g = torch.Generator().manual_seed(seed)
    M = torch.rand(2, h, w, generator=g) < 0.1
    f = 2**level
    m = c.downsample_mask(M, factor=f)
    assert m.shape[1:] == c.grid_size(h, w, level)
    for i in range(m.shape[1]):
        for j in range(m.shape[2]):
            block = M[:, i * f : (i + 1) * f, j * f : (j + 1) * f]
            assert torch.equal(m[:, i, j], block.flatten(1).any(dim=1))
    # repeated halving equals one big step
    r = M
    for _ in range(level):
        r = c.downsample_mask(r, factor=2)
    assert torch.equal(r, m)


@pytest.mark.parametrize("hw", [(5, 7), (9, 9), (6, 11), (8, 8), (13, 4)])
def test_grid_sizes_match_a_real_unet(hw):
    """The token grids at every attention resolution equal the UNet's feature maps."""
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16, 16), down_block_types=("CrossAttnDownBlock2D",) * 2 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 2, cross_attention_dim=8,
        attention_head_dim=2, norm_num_groups=4,
    ).eval()  # fmt: skip
    seen = []

    def hook(module, args, kwargs, out):
        hs = args[0] if args else kwargs["hidden_states"]
        seen.append(hs.shape[-2:])

    for name, mod in unet.named_modules():
        if name.endswith("resnets.0") and "down_blocks" in name:
            mod.register_forward_hook(hook, with_kwargs=True)
    h, w = hw
    with torch.no_grad():
        unet(torch.zeros(1, 4, h, w), 1, encoder_hidden_states=torch.zeros(1, 3, 8))
    for level, shape in enumerate(seen):
        assert tuple(shape) == c.grid_size(h, w, level)
        n = shape[0] * shape[1]
        assert c.level_for_tokens(h, w, n) == level
        assert c.tokens_mask(torch.zeros(1, h, w, dtype=torch.bool), n).shape == (1, n)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: c.downsample_mask(torch.zeros(1, 4, 4), factor=2), "boolean"),
        (lambda: c.downsample_mask(torch.zeros(4, 4, dtype=torch.bool), factor=2), "shape"),
        (lambda: c.downsample_mask(torch.zeros(1, 4, 4, dtype=torch.bool), factor=0), "factor"),
        (lambda: c.sra_allowed(torch.zeros(2, 3)), "boolean"),
        (lambda: c.sra_allowed(torch.zeros(3, dtype=torch.bool)), "shape"),
        (lambda: c.sra_bias(torch.zeros(1, 3, dtype=torch.bool), dtype=torch.int32), "dtype"),
        (lambda: c.level_for_tokens(8, 8, 7), "n=7"),
        (lambda: c.grid_size(0, 3, 0), "h and w"),
        (
            lambda: c.sra_attention(
                torch.zeros(1, 1, 3, 2),
                torch.zeros(1, 1, 3, 2),
                torch.zeros(1, 1, 3, 2),
                torch.zeros(1, 4, dtype=torch.bool),
            ),
            "m must have shape",
        ),
        (
            lambda: c.sra_attention(
                torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2), None, mode="split"
            ),
            "mode='split'",
        ),
    ],
)
def test_bad_arguments_raise_value_error(call, match, without_shape_checker):
    with pytest.raises(ValueError, match=match):
        call()
