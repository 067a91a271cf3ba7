"""A model family reaches training through the registry alone (issue 14: one module + one registry line)."""

import pytest

from eradiff.models import registry
from eradiff.models.family import PixelInpaintModel
from eradiff.train.build import build_model
from eradiff.train.config import ConfigError, config_from_dict


class EchoFamily(PixelInpaintModel):
    """A third family for the test: the pixel model under another name, without ``model.init``."""

    training_keys = ("unet", "schedule")
    built: list[int] = []

    @classmethod
    def for_training(cls, config, *, crop_size):
        cls.built.append(crop_size)
        return super().for_training(config, crop_size=crop_size)

    @classmethod
    def training_size_multiple(cls, config):
        return 48

    @classmethod
    def training_fill(cls, config):
        return "patchmatch"


TINY_UNET = {
    "in_channels": 28, "out_channels": 12, "block_out_channels": [16], "down_block_types": ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"], "layers_per_block": 1, "norm_num_groups": 8,
}  # fmt: skip


@pytest.fixture
def echo(monkeypatch):
    monkeypatch.setitem(registry.FAMILIES, "echo", EchoFamily)
    EchoFamily.built = []
    return EchoFamily


def test_a_registered_family_is_validated_built_and_asked_for_its_fill(echo):
    cfg = config_from_dict({"model": {"family": "echo", "factor": 2, "unet": TINY_UNET}, "data": {"crop_size": 96}})
    model = build_model(cfg.model, crop_size=96)
    assert echo.built == [96] and model.unet.training
    assert all(p.requires_grad for p in model.unet.parameters())
    from eradiff.models.registry import family_class

    assert family_class("echo", where="test").training_fill(cfg.model) == "patchmatch"


def test_the_family_sets_the_size_rule_and_its_own_keys(echo):
    with pytest.raises(ConfigError, match="must be a multiple of 48"):
        config_from_dict({"model": {"family": "echo", "factor": 2, "unet": TINY_UNET}, "data": {"crop_size": 64}})
    with pytest.raises(ConfigError, match="model.init is for the pixel family; remove it for echo"):
        config_from_dict({"model": {"family": "echo", "unet": TINY_UNET, "init": "x.safetensors"}})
    with pytest.raises(ConfigError, match="model.unet is for the pixel or echo family; remove it for latent"):
        config_from_dict({"model": {"family": "latent", "base_model": "x/y", "unet": TINY_UNET}})


def test_an_unregistered_family_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="model.family='echo' is not valid; choose one of 'pixel', 'latent'"):
        config_from_dict({"model": {"family": "echo"}})
