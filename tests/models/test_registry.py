"""The family registry: one class per family, dispatch by the stored family name, public seams."""

import pytest
import torch

from eradiff.errors import ModelLoadError
from eradiff.models.family import LatentInpaintModel, PixelInpaintModel
from eradiff.models.registry import FAMILIES, family_class
from eradiff.testing import tiny_pixel_config


def test_families_by_name():
    assert FAMILIES == {"pixel": PixelInpaintModel, "latent": LatentInpaintModel}
    assert all(cls.family == name for name, cls in FAMILIES.items())
    assert family_class("pixel", where="x") is PixelInpaintModel
    with pytest.raises(ModelLoadError, match="x: unknown model family 'gan' \\(expected 'pixel' or 'latent'\\)"):
        family_class("gan", where="x")


def test_reimposition_default_is_the_familys():
    assert PixelInpaintModel.reimpose_known_default and not LatentInpaintModel.reimpose_known_default


def test_training_reaches_sra_through_a_public_method():
    model = PixelInpaintModel(tiny_pixel_config())
    model.prepare_for_training(torch.device("cpu"))
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    with model.sra_scope(mask, enabled=True):
        assert model.backend.state.mask is mask
    model.backend = lambda *a, **k: None  # an exported backend has no SRA state
    with pytest.raises(TypeError, match="has no SRA state"):
        model.sra_scope(mask, enabled=True)
