"""Tiny random models of both families and their ONNX exports, built once per test session.

Exports are cached per (family, flavour, opset): a dynamo export of even a tiny UNet takes
15–70 s on this CPU, the TorchScript one (opset 17) a few seconds.

Exports run with the test-time shape checker (jaxtyping + beartype on ``eradiff.core``, see the
root conftest) switched off: on symbolic shapes its dimension checks become extra guards
(``int_truediv`` of sizes) that the dynamo exporter's runtime-assert pass cannot handle for the
``UNet2DConditionModel``. Users never run with the checker; eager tests keep it on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jaxtyping
import pytest
import torch

from eradiff.export.onnx import ExportResult, export_onnx
from eradiff.models.family import LatentInpaintModel, PixelInpaintModel
from eradiff.models.loading import load_model
from eradiff.testing import tiny_pixel_config, tiny_sd2_inpaint_folder


@pytest.fixture(scope="session")
def pixel_model() -> PixelInpaintModel:
    torch.manual_seed(0)
    model = PixelInpaintModel(tiny_pixel_config())
    model.unet.eval().requires_grad_(False)
    return model


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory) -> Path:
    return tiny_sd2_inpaint_folder(tmp_path_factory.mktemp("tiny-sd2"), seed=0)


@pytest.fixture(scope="session")
def latent_model(sd_folder) -> LatentInpaintModel:
    model = load_model(str(sd_folder))
    assert isinstance(model, LatentInpaintModel)
    return model


@contextmanager
def shape_checker_off() -> Iterator[None]:
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


class Exports:
    """Lazily exported ONNX files, one per (family, flavour, opset, options)."""

    def __init__(self, root: Path, models: dict) -> None:
        self.root = root
        self.models = models
        self.cache: dict[tuple, ExportResult] = {}

    def get(self, family: str, flavour: str, opset: int, **options) -> ExportResult:
        key = (family, flavour, opset, tuple(sorted(options.items())))
        if key not in self.cache:
            name = "-".join(str(k) for k in key[:3]) + "".join(f"-{k}{v}" for k, v in key[3]) + ".onnx"
            model = self.models[family]()
            with shape_checker_off():
                self.cache[key] = export_onnx(model, self.root / name, flavour=flavour, opset=opset, **options)
        return self.cache[key]


@pytest.fixture(scope="session")
def exports(tmp_path_factory, request) -> Exports:
    models = {
        "pixel": lambda: request.getfixturevalue("pixel_model"),
        "latent": lambda: request.getfixturevalue("latent_model"),
    }
    return Exports(tmp_path_factory.mktemp("onnx"), models)
