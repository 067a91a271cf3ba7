"""Test-wide setup: runtime shape checking (jaxtyping + beartype) of eradiff.core.

The import hook must be installed before eradiff.core is imported anywhere, so it lives here,
in the root conftest, which pytest imports first.
"""

import os

import jaxtyping

jaxtyping.install_import_hook("eradiff.core", "beartype.beartype")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from hypothesis import settings  # noqa: E402

settings.register_profile("default", deadline=None, max_examples=50)
settings.register_profile("ci", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


import pytest  # noqa: E402

from eradiff.models.loading import load_model  # noqa: E402
from eradiff.testing import cached, tiny_pixel_file, tiny_sd2_inpaint_folder  # noqa: E402


@pytest.fixture
def without_shape_checker():
    """Run a test as a user would (no jaxtyping/beartype wrapper), e.g. to see eradiff's own errors."""
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


# Tiny models shared by the model, pipeline, CLI and serve tests (built once per session).


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
