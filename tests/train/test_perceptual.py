"""The x̂_0 terms of the training objective: LPIPS (``objective.perceptual``) and Gram (``objective.texture``)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from eradiff.train.config import ConfigError, load_config
from eradiff.train.loop import train
from eradiff.train.perceptual import PerceptualTerm, TextureTerm, box_crops, gram

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["log.progress=false", "log.sample_every=0", "log.tensorboard=false", "checkpoint.every=0"]


@pytest.fixture(scope="module", params=["lpips-alex", "gram"])
def term(request):
    return PerceptualTerm("alex", size=32) if request.param == "lpips-alex" else TextureTerm(size=32)


def _pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_ori = torch.rand(2, 3, 48, 48, generator=g) * 2 - 1
    M = torch.zeros(2, 48, 48, dtype=torch.bool)
    M[0, 10:20, 5:30] = True
    M[1, 30:46, 30:40] = True
    return x_ori, M


def test_box_crops_follow_each_mask_and_keep_an_empty_mask_whole():
    x = torch.arange(2 * 3 * 40 * 40, dtype=torch.float32).view(2, 3, 40, 40)
    M = torch.zeros(2, 40, 40, dtype=torch.bool)
    M[0, 4:8, 4:8] = True  # a 4-px box grown by 10 % → a 5-px square; upsampled to 10
    out = box_crops(x, M, size=10)
    assert out.shape == (2, 3, 10, 10)
    assert out[0].min() >= x[0, :, 3:10, 3:10].min() and out[0].max() <= x[0, :, 3:10, 3:10].max()
    whole = torch.nn.functional.interpolate(x[1:], size=(10, 10), mode="bilinear", antialias=True)
    torch.testing.assert_close(out[1:], whole)


def test_zero_at_the_truth_and_blind_outside_the_hole(term):
    x_ori, M = _pair()
    torch.testing.assert_close(term(x_ori, x_ori, M), torch.zeros(2), atol=1e-6, rtol=0)
    other = torch.rand(x_ori.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    outside = torch.where(M[:, None], x_ori, other)  # differs only outside the hole: composited away
    torch.testing.assert_close(term(outside, x_ori, M), torch.zeros(2), atol=1e-6, rtol=0)
    inside = torch.where(M[:, None], other, x_ori)
    assert (term(inside, x_ori, M) > 0.005).all()  # both terms give 0.009–0.04 here; 0 at the truth


def test_alex_plus_vgg_is_the_sum_of_the_two_lpips_terms():
    x_ori, M = _pair()
    x0_hat = torch.rand(x_ori.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
    both = PerceptualTerm("alex+vgg", size=32)(x0_hat, x_ori, M)
    alex, vgg = PerceptualTerm("alex", size=32)(x0_hat, x_ori, M), PerceptualTerm("vgg", size=32)(x0_hat, x_ori, M)
    assert (alex > 0.005).all() and (vgg > 0.005).all()
    torch.testing.assert_close(both, alex + vgg)


def test_gradient_reaches_only_the_hole(term):
    x_ori, M = _pair()
    x0_hat = (torch.rand(x_ori.shape, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8).requires_grad_(True)
    term(x0_hat, x_ori, M).sum().backward()
    g = x0_hat.grad.abs().sum(dim=1)
    assert g[~M].max() == 0
    assert g[M].sum() > 0


def test_gram_is_the_normalised_feature_correlation():
    f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    G = gram(f)
    assert G.shape == (2, 3, 3)
    torch.testing.assert_close(G, G.transpose(1, 2))
    i, a, b = 1, 0, 2
    torch.testing.assert_close(G[i, a, b], (f[i, a] * f[i, b]).sum() / (3 * 4 * 5))
    # position-free: the same features in another spatial order give the same Gram matrix
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    shuffled = f.reshape(2, 3, 20)[:, :, perm].reshape(2, 3, 4, 5)
    torch.testing.assert_close(gram(shuffled), G)


def test_texture_prefers_a_new_sample_of_the_texture_to_the_blurred_truth():
    """What the term is for: MSE prefers the blur (the conditional mean), the Gram term the texture."""
    g = torch.Generator().manual_seed(3)
    x_ori = (torch.rand(2, 3, 64, 64, generator=g) * 2 - 1) * 0.8
    other_sample = (torch.rand(2, 3, 64, 64, generator=g) * 2 - 1) * 0.8
    blurred = torch.nn.functional.avg_pool2d(x_ori, 5, stride=1, padding=2)
    M = torch.zeros(2, 64, 64, dtype=torch.bool)
    M[:, 16:48, 20:44] = True
    hole = M[:, None]
    assert ((blurred - x_ori)[hole.expand_as(x_ori)].square().mean()) < (
        (other_sample - x_ori)[hole.expand_as(x_ori)].square().mean()
    )
    term = TextureTerm(size=64)
    assert (term(other_sample, x_ori, M) < 0.5 * term(blurred, x_ori, M)).all()


BASE = ["objective.kind=standard", "optim.schedule=constant", *QUIET]


@pytest.fixture(scope="module")
def plain_losses(tmp_path_factory):
    """Losses of the tiny run without x̂_0 terms (the same seed and draws as the runs with them)."""
    out = tmp_path_factory.mktemp("plain")
    return np.array(train(load_config(ROOT / "configs/tiny-test.yaml", [*BASE, f"output_dir={out}"])).losses)


def test_training_with_the_term_adds_it_and_lowers_the_loss(tmp_path, plain_losses):
    with_term = train(
        load_config(
            ROOT / "configs/tiny-test.yaml",
            [*BASE, f"output_dir={tmp_path / 'b'}", "objective.perceptual=alex", "objective.perceptual_size=32"],
        )
    )
    a, b = plain_losses, np.array(with_term.losses)
    assert np.isfinite(b).all()
    assert b[0] > a[0] + 0.01  # same seed, same first draw: the LPIPS term is in the loss
    assert b[-10:].mean() < 0.9 * b[:10].mean()


def test_training_with_the_texture_term_adds_it_and_stays_finite(tmp_path, plain_losses):
    texture = ["objective.texture=gram", "objective.texture_size=32", "objective.texture_weight=100"]
    cfg = [*BASE, "train.max_steps=4", f"output_dir={tmp_path / 'b'}", *texture]
    with_term = train(load_config(ROOT / "configs/tiny-test.yaml", cfg))
    a, b = plain_losses, np.array(with_term.losses)
    assert np.isfinite(b).all()
    assert b[0] > a[0] + 1e-3  # same seed, same first draw: the Gram term is in the loss


def test_bad_perceptual_settings_are_refused():
    for override, fragment in [
        ("objective.perceptual=squeeze", "objective.perceptual"),
        ("objective.perceptual_size=16", "perceptual_size"),
        ("objective.perceptual_weight=-1", "perceptual_weight"),
        ("objective.texture=style", "objective.texture"),
        ("objective.texture_size=8", "texture_size"),
        ("objective.texture_weight=-0.5", "texture_weight"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            load_config(ROOT / "configs/tiny-test.yaml", [override])
