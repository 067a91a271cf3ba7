"""Tiny models shared by the model, pipeline and CLI tests (built once per session)."""

import pytest

from eradiff.models.loading import load_model
from eradiff.testing import cached, tiny_pixel_file, tiny_sd2_inpaint_folder


@pytest.fixture(scope="session")
def sd2_folder(tmp_path_factory):
    """A randomly initialised SD2-inpainting-architecture diffusers folder (save_pretrained)."""
    return cached(tmp_path_factory.getbasetemp() / "tiny-sd2-inpaint", tiny_sd2_inpaint_folder)


@pytest.fixture(scope="session")
def pixel_file(tmp_path_factory):
    """A tiny pixel-family model saved as one fp16 safetensors file."""
    return cached(tmp_path_factory.getbasetemp() / "tiny-pixel.safetensors", tiny_pixel_file)


@pytest.fixture(scope="session")
def latent_model(sd2_folder):
    return load_model(sd2_folder)


@pytest.fixture(scope="session")
def pixel_model(pixel_file):
    return load_model(pixel_file)
