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


@pytest.fixture
def without_shape_checker():
    """Run a test as a user would (no jaxtyping/beartype wrapper), e.g. to see eradiff's own errors."""
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
