"""Erasure models around exported files: the loader, and erase() on onnxruntime vs torch.

End-to-end tolerance: the pipeline's DDIM loop, conditioning, VAE and paste are shared code; only
the UNet call differs, by ≤ ~3e-6 per step (see test_onnx_export). Over a few steps that stays far
below half a uint8 level, so the images are expected to be identical; ≤ 1 level (a rounding flip
at a .5 boundary) is allowed, and at most 0.1 % of pixels may differ at all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eradiff.errors import ModelLoadError
from eradiff.export import load_backend_model
from eradiff.export.ort_backend import ExternalUNet, OrtUNetBackend, load_onnx_model, ort_providers
from eradiff.models.family import LatentInpaintModel, PixelInpaintModel
from eradiff.pipeline.erase import EraseOptions, erase


def _image_and_mask(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (h + w))], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), bool)
    mask[h // 4 : h // 2 + 3, w // 3 : w // 3 + w // 4 + 2] = True
    return img, mask


def _assert_images_match(a: np.ndarray, b: np.ndarray) -> None:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    assert diff.max() <= 1, f"largest difference {diff.max()} levels"
    assert (diff > 0).mean() <= 1e-3, f"{(diff > 0).mean():.2%} of values differ"


def test_pixel_model_loads_from_the_onnx_file_alone(exports, pixel_model):
    path = exports.get("pixel", "trt", 23).path
    model = load_onnx_model(path, providers="cpu")
    assert isinstance(model, PixelInpaintModel)
    assert isinstance(model.backend, OrtUNetBackend) and model.backend.name == "onnx"
    assert isinstance(model.unet, ExternalUNet)
    assert model.unet.config.in_channels == pixel_model.unet.config.in_channels
    assert (model.name, model.native_size, model.size_multiple, model.factor) == (
        pixel_model.name, pixel_model.native_size, pixel_model.size_multiple, pixel_model.factor)  # fmt: skip
    assert model.schedule == pixel_model.schedule
    with pytest.raises(RuntimeError, match="runs in onnxruntime"):
        model.unet(torch.zeros(1))


@pytest.mark.parametrize(("flavour", "opset"), [("trt", 23), ("portable", 18)])
@pytest.mark.parametrize("sra", [True, False])
def test_erase_on_onnx_equals_erase_on_torch_pixel(exports, pixel_model, flavour, opset, sra):
    model = load_backend_model(exports.get("pixel", flavour, opset).path, "onnx", providers="cpu")
    img, mask = _image_and_mask(40, 52)
    options = EraseOptions(steps=4, seed=11, sra=sra)
    ref = erase(pixel_model, img, mask, options).image
    out = erase(model, img, mask, options).image
    assert not np.array_equal(ref, img)
    _assert_images_match(out, ref)


def test_erase_on_onnx_equals_erase_on_torch_latent(exports, latent_model):
    """The latent family: the VAE comes from the base folder recorded at export; the UNet from ONNX."""
    model = load_backend_model(exports.get("latent", "portable", 17).path, "onnx", providers="cpu")
    assert isinstance(model, LatentInpaintModel)
    assert model.text_encoder is None, "a constant-prompt graph needs no text encoder"
    img, mask = _image_and_mask(36, 44, seed=1)
    options = EraseOptions(steps=3, seed=5)
    _assert_images_match(erase(model, img, mask, options).image, erase(latent_model, img, mask, options).image)
    with pytest.raises(ValueError, match="needs a text encoder"):
        erase(model, img, mask, EraseOptions(steps=1, prompt="a cat"))


def test_latent_base_can_be_given_explicitly(exports, sd_folder, tmp_path):
    path = exports.get("latent", "portable", 17).path
    model = load_onnx_model(path, base=sd_folder, providers="cpu")
    assert model.source == str(sd_folder)
    with pytest.raises(ModelLoadError, match="cannot load the VAE/text parts from base"):
        load_onnx_model(path, base=tmp_path / "nowhere", providers="cpu", offline=True)


def test_loader_errors_are_one_line(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_onnx_model(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError, match="cannot open") as info:
        load_onnx_model(junk)
    assert "\n" not in str(info.value)


def test_foreign_onnx_without_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelLoadError, match="has no eradiff metadata"):
        load_onnx_model(path)


def test_providers():
    assert ort_providers("cpu") == ["CPUExecutionProvider"]
    assert ort_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="providers='gpu' is not valid"):
        ort_providers("gpu")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="CUDAExecutionProvider is not available here"):
            ort_providers("cuda")


def test_load_backend_model_rejects_unknown_backends(tmp_path):
    with pytest.raises(ValueError, match="backend='tvm' is not valid; choose one of 'onnx', 'trt'"):
        load_backend_model(tmp_path / "x.onnx", "tvm")  # type: ignore[arg-type]
