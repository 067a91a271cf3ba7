"""Export: ONNX graphs with SRA inside, an ONNX Runtime backend, TensorRT engines.

| name                    | module          | what                                                          |
| ----------------------- | --------------- | ------------------------------------------------------------- |
| ``export_onnx``         | ``onnx``        | the UNet → ``.onnx``, flavours ``"trt"`` / ``"portable"``      |
| ``attention_report``    | ``onnx``        | how attention appears in a graph                              |
| ``OrtUNetBackend``      | ``ort_backend`` | onnxruntime as a ``UNetBackend``                              |
| ``load_onnx_model``     | ``ort_backend`` | an ``ErasureModel`` around an ``.onnx`` file                   |
| ``build_engine``        | ``trt``         | ``.onnx`` → TensorRT ``.plan`` (+ ``PLAN.json``, layer report)  |
| ``TrtUNetBackend``      | ``trt``         | a TensorRT engine as a ``UNetBackend``                        |
| ``load_trt_model``      | ``trt``         | an ``ErasureModel`` around a ``.plan``                        |
| ``load_backend_model``  | here            | the one call ``eradiff erase --backend onnx|trt`` needs       |

Submodules import onnx, onnxruntime and tensorrt lazily, so ``import eradiff.export`` is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from eradiff.models.family import ErasureModel
from eradiff.options import BACKENDS

ArtifactBackend = Literal["onnx", "trt"]
ARTIFACT_BACKENDS: tuple[str, ...] = tuple(b for b in BACKENDS if b != "torch")


def load_backend_model(
    path: str | os.PathLike[str],
    backend: ArtifactBackend,
    *,
    base: str | os.PathLike[str] | None = None,
    providers: str | Sequence[str] = "auto",
    threads: int | None = None,
    device: str = "cpu",
    offline: bool = False,
) -> ErasureModel:
    """Load an exported artifact as an erasure model for the shared erase pipeline.

    Args:
        path: ``.onnx`` file (``backend="onnx"``) or TensorRT ``.plan`` (``backend="trt"``).
        backend: ``"onnx"`` (onnxruntime) or ``"trt"`` (TensorRT).
        base: latent family: the diffusers folder or hub id for the VAE/text parts (default: the
            ``base_model`` recorded at export).
        providers: onnxruntime execution providers (``"auto"``, ``"cpu"``, ``"cuda"``,
            ``"tensorrt"`` or a list); onnx only.
        threads: onnxruntime intra-op threads; onnx only.
        device: torch device for the rest of the pipeline; onnx only (TensorRT runs on CUDA).
        offline: never contact the Hugging Face hub for the base model.

    Raises:
        ValueError: an unknown backend.
        eradiff.errors.ModelLoadError: a missing or foreign artifact (one-line message).
        eradiff.export.trt.TensorRTUnavailable: ``"trt"`` without TensorRT or a CUDA GPU.
    """
    if backend not in ARTIFACT_BACKENDS:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {', '.join(map(repr, ARTIFACT_BACKENDS))}")
    if backend == "onnx":
        from eradiff.export.ort_backend import load_onnx_model

        return load_onnx_model(path, base=base, providers=providers, threads=threads, device=device, offline=offline)
    from eradiff.export.trt import load_trt_model

    return load_trt_model(path, base=base, offline=offline)


__all__ = ["ARTIFACT_BACKENDS", "load_backend_model"]
