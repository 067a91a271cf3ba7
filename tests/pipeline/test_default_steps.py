"""EraseOptions.steps=None uses the model's own default_steps (stored with pixel-model weights)."""

import dataclasses

import numpy as np
import pytest
import torch

from eradiff.models.family import PixelInpaintModel
from eradiff.models.loading import load_model, save_pixel_model
from eradiff.pipeline.erase import EraseOptions, erase
from eradiff.testing import tiny_pixel_config


def _saved(tmp_path, default_steps: int):
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny_pixel_config(space="residual", residual_scale=0.25), default_steps=default_steps)
    path = tmp_path / f"m{default_steps}.safetensors"
    save_pixel_model(PixelInpaintModel(cfg), path)
    return load_model(str(path))


def test_default_steps_round_trip_and_drive_erase(tmp_path):
    model = _saved(tmp_path, 3)
    assert model.default_steps == 3
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    calls = []
    result = erase(model, image, mask, EraseOptions(dilate=0), progress=lambda *a: calls.append(a))
    assert result.report.steps_run == 3 and len(calls) == 3
    explicit = erase(model, image, mask, EraseOptions(steps=5, dilate=0))
    assert explicit.report.steps_run == 5
    assert EraseOptions().for_model(model).steps == 3
    assert EraseOptions(steps=7).for_model(model).steps == 7


def test_bad_default_steps_is_refused():
    with pytest.raises(ValueError, match="default_steps"):
        PixelInpaintModel(dataclasses.replace(tiny_pixel_config(), default_steps=0))
