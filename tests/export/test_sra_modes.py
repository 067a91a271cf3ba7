"""The SRA export modes of ``SRAState`` in eager torch: the default stays the eager path, and the
export modes compute the same Eq. 10–11 attention."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from hypothesis import given, settings
from hypothesis import strategies as st

from eradiff.models.sra import SRA_MODES, install_sra

# Eager fp32 on the same CPU kernels: the modes differ only in how the bias enters attention
# (−∞ additive in SDPA, boolean in SDPA, finite additive in explicit matmul/softmax), so outputs
# agree to a few fp32 ulps of O(1) activations; 1e-5 is ~100 ulps and far below SRA's own effect.
ATOL = 1e-5


def _run(unet, state, x, t, mask, **kwargs):
    with torch.no_grad(), state.use(mask):
        return unet(x, t, **kwargs, return_dict=False)[0]


def test_default_mode_is_the_eager_split_path(pixel_model):
    state = install_sra(pixel_model.unet)
    assert state.mode == "split"
    assert {"bias", "bool", "bias_finite"} <= set(SRA_MODES)


def test_default_mode_with_empty_mask_is_bit_identical_to_stock(pixel_model):
    unet = pixel_model.unet
    state = install_sra(unet)
    stock = copy.deepcopy(unet)
    for mod in stock.modules():
        if hasattr(mod, "set_processor"):
            mod.set_processor(AttnProcessor2_0())
    x = torch.randn(2, unet.config.in_channels, 8, 12)
    t = torch.tensor([3, 700])
    with torch.no_grad():
        ref = stock(x, t, return_dict=False)[0]
    out = _run(unet, state, x, t, torch.zeros(2, 8, 12, dtype=torch.bool))
    assert torch.equal(out, ref)


def test_set_mode_rejects_unknown_modes(pixel_model):
    state = install_sra(pixel_model.unet)
    with pytest.raises(ValueError, match=r"mode='soft' is not valid; choose one of 'bias', 'bool', 'bias_finite'"):
        state.set_mode("soft")  # type: ignore[arg-type]
    assert state.mode == "split"


def test_exporting_restores_the_previous_mode(pixel_model):
    state = install_sra(pixel_model.unet)
    with state.exporting("bool"):
        assert state.mode == "bool"
    assert state.mode == "split"
    with pytest.raises(RuntimeError), state.exporting("bias_finite"):
        raise RuntimeError("boom")
    assert state.mode == "split"


def test_export_mode_without_recorded_levels_says_what_to_do(pixel_model):
    unet = copy.deepcopy(pixel_model.unet)
    state = install_sra(unet)
    state.levels.clear()
    x = torch.randn(1, unet.config.in_channels, 8, 8)
    with state.exporting("bool"), pytest.raises(RuntimeError, match="record_levels"):
        _run(unet, state, x, torch.tensor([5]), torch.ones(1, 8, 8, dtype=torch.bool))


@settings(max_examples=10, deadline=None)
@given(
    b=st.integers(1, 3), hh=st.integers(1, 8), ww=st.integers(1, 8), p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(["bool", "bias_finite"]),
)  # fmt: skip
def test_export_modes_match_the_eager_default(pixel_model, b, hh, ww, p, seed, mode):
    unet = pixel_model.unet
    state = install_sra(unet)
    h, w = 2 * hh, 2 * ww  # the tiny pixel UNet has 2 levels: sides are multiples of 2
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, unet.config.in_channels, h, w, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    mask = torch.rand(b, h, w, generator=g) < p
    ref = _run(unet, state, x, t, mask)
    with state.exporting(mode):
        state.record_levels(lambda: _run(unet, state, x, t, mask), (h, w))
        out = _run(unet, state, x, t, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=ATOL)
