"""--model telea | ns | biharmonic | patchmatch: classical fills through the erase pipeline (issue 15 item 9)."""

import numpy as np
import pytest

from eradiff.baselines import METHODS, inpaint_classical
from eradiff.models.classical import ClassicalFillModel
from eradiff.models.loading import load_model
from eradiff.options import CLASSICAL_MODELS, EraseOptions
from eradiff.pipeline.erase import erase


def _photo(h=40, w=56):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    image = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), bool)
    mask[12:26, 18:34] = True
    return image, mask


def test_the_names_are_those_of_eval_and_baselines():
    assert CLASSICAL_MODELS == METHODS


@pytest.mark.parametrize("method", CLASSICAL_MODELS)
def test_load_model_by_name_and_erase_equals_the_baseline_inside_the_mask(method):
    model = load_model(method)
    assert isinstance(model, ClassicalFillModel)
    assert (model.family, model.name) == ("classical", method)
    image, mask = _photo()
    result = erase(model, image, mask, EraseOptions(dilate=0, feather=0, seed=3))
    held = image.copy()
    held[mask] = 0  # the fill sees only the known region, as classical_fill feeds it
    expected = inpaint_classical(held, mask, method=method, seed=3)  # type: ignore[arg-type]
    assert np.array_equal(result.image[~mask], image[~mask])
    assert np.abs(result.image.astype(int) - expected.astype(int)).max() <= 1
    assert len(result.report.windows) == 1 and result.report.windows[0].model_size == (56, 40)


def test_dilation_and_feather_apply_as_for_a_model():
    image, mask = _photo()
    model = load_model("telea")
    out = erase(model, image, mask, EraseOptions(dilate=4, feather=2)).image
    grown = np.zeros_like(mask)
    grown[8:30, 14:38] = True
    assert np.array_equal(out[~grown], image[~grown])
    assert not np.array_equal(out[mask], image[mask])


def test_unknown_method_and_export_are_refused():
    with pytest.raises(ValueError, match="method='lama' is not valid"):
        ClassicalFillModel("lama")
    with pytest.raises(ValueError, match="no weights to save"):
        ClassicalFillModel("ns").checkpoint_config()
