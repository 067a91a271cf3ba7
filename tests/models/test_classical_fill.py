"""Classical prefills of the pixel family (Telea, PatchMatch) and the precomputed-fill path."""

import pytest
import torch

from eradiff.models.family import PixelInpaintModel, classical_fill
from eradiff.testing import tiny_pixel_config


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    M = torch.zeros(2, 32, 32, dtype=torch.bool)
    M[:, 8:20, 10:24] = True
    return x, M


@pytest.mark.parametrize("method", ["telea", "patchmatch"])
def test_fill_keeps_the_known_region_and_ignores_what_is_under_the_hole(method):
    x, M = _batch()
    out = classical_fill(x, M, method=method)
    assert torch.equal(out[~M[:, None].expand_as(x)], x[~M[:, None].expand_as(x)])
    assert not torch.equal(out, x)
    other = x.clone()
    other[M[:, None].expand_as(x)] = 0.9  # an "object" under the mask
    torch.testing.assert_close(classical_fill(other, M, method=method), out, rtol=0, atol=0)


def test_patchmatch_fill_is_deterministic_and_textured():
    x, M = _batch(1)
    a = classical_fill(x, M, method="patchmatch", seed=3)
    assert torch.equal(a, classical_fill(x, M, method="patchmatch", seed=3))
    # on a noise image PatchMatch copies texture into the hole; Telea diffuses a smooth fill
    hole = M[:, None].expand_as(x)
    telea = classical_fill(x, M, method="telea")
    assert float(a[hole].std()) > 0.6 * float(x[hole].std()) > float(telea[hole].std())


def test_condition_accepts_a_precomputed_fill():
    torch.manual_seed(0)
    model = PixelInpaintModel(tiny_pixel_config(space="residual", residual_scale=0.25, fill="patchmatch"))
    x, M = _batch(2)
    cond = model.condition(x, M)
    again = model.condition(x, M, fill=cond.fill)
    assert torch.equal(cond.channels, again.channels) and torch.equal(cond.fill, again.fill)
    z = model.encode(x, cond)
    assert float(z[~cond.mask[:, None].expand_as(z)].abs().max()) == 0.0


def test_unknown_fill_is_refused():
    with pytest.raises(ValueError, match="fill="):
        PixelInpaintModel(tiny_pixel_config(fill="lama"))
