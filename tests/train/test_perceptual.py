"""The perceptual term of the training objective (``objective.perceptual``)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from eradiff.train.config import ConfigError, load_config
from eradiff.train.loop import train
from eradiff.train.perceptual import PerceptualTerm, box_crops

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["log.progress=false", "log.sample_every=0", "log.tensorboard=false", "checkpoint.every=0"]


@pytest.fixture(scope="module")
def term():
    return PerceptualTerm("alex", size=32)


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
    assert (term(inside, x_ori, M) > 0.01).all()


def test_gradient_reaches_only_the_hole(term):
    x_ori, M = _pair()
    x0_hat = (torch.rand(x_ori.shape, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8).requires_grad_(True)
    term(x0_hat, x_ori, M).sum().backward()
    g = x0_hat.grad.abs().sum(dim=1)
    assert g[~M].max() == 0
    assert g[M].sum() > 0


def test_training_with_the_term_adds_it_and_lowers_the_loss(tmp_path):
    base = ["objective.kind=standard", "optim.schedule=constant", *QUIET]
    plain = train(load_config(ROOT / "configs/tiny-test.yaml", [*base, f"output_dir={tmp_path / 'a'}"]))
    with_term = train(
        load_config(
            ROOT / "configs/tiny-test.yaml",
            [*base, f"output_dir={tmp_path / 'b'}", "objective.perceptual=alex", "objective.perceptual_size=32"],
        )
    )
    a, b = np.array(plain.losses), np.array(with_term.losses)
    assert np.isfinite(b).all()
    assert b[0] > a[0] + 0.01  # same seed, same first draw: the LPIPS term is in the loss
    assert b[-10:].mean() < 0.9 * b[:10].mean()


def test_bad_perceptual_settings_are_refused():
    for override, fragment in [
        ("objective.perceptual=squeeze", "objective.perceptual"),
        ("objective.perceptual_size=16", "perceptual_size"),
        ("objective.perceptual_weight=-1", "perceptual_weight"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            load_config(ROOT / "configs/tiny-test.yaml", [override])
