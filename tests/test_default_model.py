"""The built-in default model: shipped inside the package, small, and erasing the example offline."""

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from eradiff.cli import app
from eradiff.models.loading import CONFIG_KEY, DEFAULT_MODEL_PATH, load_model
from eradiff.pipeline.erase import EraseOptions, erase

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the default model is not shipped")
ROOT = DEFAULT_MODEL_PATH.parents[2]


def test_weights_are_small_safetensors_with_a_config():
    from safetensors import safe_open

    assert DEFAULT_MODEL_PATH.stat().st_size <= 40 * 1024 * 1024
    with safe_open(str(DEFAULT_MODEL_PATH), framework="pt") as f:
        config = json.loads(f.metadata()[CONFIG_KEY])
    assert config["family"] == "pixel"
    assert config["native_size"] >= 256


def test_default_model_erases_the_example():
    model = load_model(None)
    image = np.asarray(Image.open(ROOT / "examples" / "photo.jpg").convert("RGB")).copy()
    mask = np.asarray(Image.open(ROOT / "examples" / "mask.png").convert("L")) > 127
    assert model.default_steps == 1 and model.fill == "patchmatch"  # the sampler the README describes
    result = erase(model, image, mask, EraseOptions(seed=0, dilate=0, feather=0))
    assert result.report.steps_run == 1
    out = result.image
    assert np.array_equal(out[~mask], image[~mask])
    inside = np.abs(out[mask].astype(int) - image[mask].astype(int)).mean()
    assert inside > 20, "the red ladybird must be replaced"
    # no ladybird red left: the mean colour of the hole is close to the surrounding green
    grown = np.asarray(Image.fromarray(mask).filter(ImageFilter.MaxFilter(31))) > 0
    ring = grown & ~mask
    assert np.abs(out[mask].mean(0) - image[ring].mean(0)).max() < 40


def test_readme_first_command_runs_offline(tmp_path):
    out = tmp_path / "erased.png"
    res = CliRunner().invoke(
        app, ["erase", str(ROOT / "examples" / "photo.jpg"), str(ROOT / "examples" / "mask.png"), "-o", str(out),
              "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert out.stat().st_size > 10_000
