"""SRA inside real diffusers UNets: the processor against the stock one and against eradiff.core."""

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from hypothesis import given, settings
from hypothesis import strategies as st

import eradiff.core as c
from eradiff.models.sra import SRAState, install_sra, self_attention_names, split_attention
from eradiff.testing import tiny_pixel_config, tiny_sd2_unet_config

MODES = ("bias", "split")


def tiny_sd2_unet(seed=0):
    torch.manual_seed(seed)
    return UNet2DConditionModel(**tiny_sd2_unet_config()).eval()


def tiny_pixel_unet(seed=0):
    torch.manual_seed(seed)
    return UNet2DModel(**tiny_pixel_config().unet).eval()


@pytest.fixture(scope="module")
def sd2_pair():
    """The same random UNet twice: one stock, one with SRA installed."""
    return tiny_sd2_unet(), tiny_sd2_unet()


def sd2_inputs(b, h, w, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 9, h, w, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    emb = torch.randn(b, 7, 32, generator=g)
    return x, t, emb


def box_mask(b, h, w, boxes):
    M = torch.zeros(b, h, w, dtype=torch.bool)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        M[i, y0:y1, x0:x1] = True
    return M


@torch.no_grad()
def run(unet, state, x, t, emb, M, *, mode="bias", enabled=True):
    if state is not None:
        if state.mode != mode:
            state.set_mode(mode)
        with state.use(M, enabled=enabled):
            return unet(x, t, encoder_hidden_states=emb).sample
    return unet(x, t, encoder_hidden_states=emb).sample


def test_processor_only_on_self_attention():
    unet = tiny_sd2_unet()
    before = {k: type(p) for k, p in unet.attn_processors.items()}
    install_sra(unet)
    after = unet.attn_processors
    selfs = set(self_attention_names(unet))
    assert selfs, "the tiny UNet has self-attention layers"
    for name, proc in after.items():
        layer = name.removesuffix(".processor")
        if layer in selfs:
            assert type(proc).__name__ == "SRAAttnProcessor"
        else:
            assert type(proc) is before[name] is AttnProcessor2_0, f"cross-attention {name} was changed"
    assert any(".attn2." in n for n in after), "cross-attention layers exist and were checked"
    assert install_sra(unet) is unet._eradiff_sra_state, "installing twice returns the same state"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hw", [(16, 16), (13, 21)])
def test_empty_mask_is_bit_identical_to_stock(sd2_pair, mode, hw):
    stock, sra = sd2_pair
    state = install_sra(sra)
    x, t, emb = sd2_inputs(2, *hw)
    empty = torch.zeros(2, *hw, dtype=torch.bool)
    assert torch.equal(run(stock, None, x, t, emb, None), run(sra, state, x, t, emb, empty, mode=mode))


def test_empty_mask_is_bit_identical_to_stock_pixel_family():
    stock, sra = tiny_pixel_unet(), tiny_pixel_unet()
    state = install_sra(sra)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, stock.config.in_channels, 12, 20, generator=g)
    t = torch.tensor([321])
    with torch.no_grad(), state.use(torch.zeros(1, 12, 20, dtype=torch.bool)):
        assert torch.equal(stock(x, t).sample, sra(x, t).sample)


@pytest.mark.parametrize("mode", MODES)
def test_sra_on_and_off_differ_and_off_equals_stock(sd2_pair, mode):
    stock, sra = sd2_pair
    state = install_sra(sra)
    x, t, emb = sd2_inputs(1, 16, 16)
    M = box_mask(1, 16, 16, [(3, 10, 4, 12)])
    on = run(sra, state, x, t, emb, M, mode=mode)
    off = run(sra, state, x, t, emb, M, mode=mode, enabled=False)
    assert torch.equal(off, run(stock, None, x, t, emb, None))
    assert (on - off).abs().max() > 1e-4


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hw", [(16, 16), (13, 21), (9, 7)])
def test_per_sample_masks_equal_one_by_one(sd2_pair, mode, hw):
    _, sra = sd2_pair
    state = install_sra(sra)
    h, w = hw
    x, t, emb = sd2_inputs(3, h, w)
    M = box_mask(3, h, w, [(0, h // 2, 0, w // 2), (h // 3, h, w // 4, w), (0, 0, 0, 0)])
    batched = run(sra, state, x, t, emb, M, mode=mode)
    for i in range(3):
        single = run(sra, state, x[i : i + 1], t[i : i + 1], emb[i : i + 1], M[i : i + 1], mode=mode)
        torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(batched).all()


@pytest.mark.parametrize("mode", MODES)
def test_cfg_batch_repeats_the_mask(sd2_pair, mode):
    _, sra = sd2_pair
    state = install_sra(sra)
    x, t, emb = sd2_inputs(2, 12, 16)
    M = box_mask(2, 12, 16, [(2, 8, 3, 9), (5, 12, 0, 6)])
    x2, t2, emb2 = torch.cat([x, x]), torch.cat([t, t]), torch.cat([emb, emb.flip(1)])
    repeated = run(sra, state, x2, t2, emb2, M, mode=mode)  # mask batch 2, attention batch 4
    explicit = run(sra, state, x2, t2, emb2, torch.cat([M, M]), mode=mode)
    torch.testing.assert_close(repeated, explicit, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_all_masked_is_finite_and_plain_attention(sd2_pair, mode):
    stock, sra = sd2_pair
    state = install_sra(sra)
    x, t, emb = sd2_inputs(1, 10, 14)
    out = run(sra, state, x, t, emb, torch.ones(1, 10, 14, dtype=torch.bool), mode=mode)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, run(stock, None, x, t, emb, None), rtol=1e-5, atol=1e-6)


def test_split_and_bias_modes_agree_in_the_unet(sd2_pair):
    _, sra = sd2_pair
    state = install_sra(sra)
    x, t, emb = sd2_inputs(2, 15, 11)
    M = box_mask(2, 15, 11, [(1, 9, 2, 8), (0, 15, 0, 11)])
    torch.testing.assert_close(
        run(sra, state, x, t, emb, M, mode="split"), run(sra, state, x, t, emb, M, mode="bias"), rtol=1e-5, atol=1e-6
    )


@st.composite
def attention_case(draw):
    b = draw(st.integers(1, 3))
    heads = draw(st.integers(1, 3))
    n = draw(st.integers(1, 24))
    d = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    p = draw(st.sampled_from([0.0, 0.2, 0.5, 0.9, 1.0]))
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, heads, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    m = torch.rand(b, n, generator=g) < p
    return q, k, v, m


@given(attention_case(), st.integers(1, 3))
@settings(max_examples=60)
def test_split_attention_equals_core_sra_attention(case, repeat):
    """The split formulation is exactly Eq. 11 (float64, tolerance of summation order only)."""
    q, k, v, m = case
    b, _, n, _ = q.shape
    q, k, v = (torch.cat([a] * repeat) for a in (q, k, v))  # attention batch = repeat × mask batch
    state = SRAState()
    state.set_mode("split")
    state.set(m.view(b, 1, n))
    plan = state.split_plan(n, b * repeat, q.device)
    expected = c.sra_attention(q, k, v, m.repeat(repeat, 1))
    got = expected if plan is None else split_attention(q, k, v, plan)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    if plan is None:
        effective = m & ~m.all(dim=1, keepdim=True)
        assert not effective.any(), "no plan only when nothing is masked (or everything, per sample)"


@pytest.mark.parametrize("mode", MODES)
def test_processor_matches_core_sra_attention(mode):
    """One Attention layer through the processor equals a hand-built Eq. 11 with eradiff.core."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    state = install_sra(torch.nn.ModuleDict({"a": attn}))
    state.set_mode(mode)
    hs = torch.randn(2, 6 * 5, 16)
    M = box_mask(2, 6, 5, [(1, 4, 1, 3), (0, 6, 2, 5)])
    with torch.no_grad(), state.use(M):
        got = attn(hs)
        q = attn.to_q(hs).view(2, -1, 2, 8).transpose(1, 2)
        k = attn.to_k(hs).view(2, -1, 2, 8).transpose(1, 2)
        v = attn.to_v(hs).view(2, -1, 2, 8).transpose(1, 2)
        o = c.sra_attention(q, k, v, c.tokens_mask(M, 30)).transpose(1, 2).reshape(2, -1, 16)
        expected = attn.to_out[0](o)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_grid_masks_are_built_once_per_image_across_steps(sd2_pair, monkeypatch):
    import eradiff.models.sra as sra_module

    _, sra = sd2_pair
    state = install_sra(sra)
    state.set_mode("split")
    calls = []
    real = sra_module._build_split_plan
    monkeypatch.setattr(sra_module, "_build_split_plan", lambda *a: calls.append(a[1]) or real(*a))
    x, t, emb = sd2_inputs(1, 16, 16)
    M = box_mask(1, 16, 16, [(3, 10, 4, 12)])
    for _ in range(3):  # three "denoising steps", each sets an equal (new) mask tensor
        run(sra, state, x, t, emb, M.clone(), mode="split")
    assert sorted(calls) == [64, 256], "one build per grid (16×16 and 8×8), not per layer or step"
    run(sra, state, x, t, emb, ~M, mode="split")
    assert len(calls) == 4, "a different mask rebuilds"


def test_state_rejects_bad_masks():
    state = SRAState()
    with pytest.raises(ValueError, match="boolean tensor"):
        state.set(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="mode="):
        state.set_mode("nope")
