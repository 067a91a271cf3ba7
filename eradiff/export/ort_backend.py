"""ONNX Runtime as a UNet backend, and erasure models built around an exported ``.onnx`` file.

:class:`OrtUNetBackend` satisfies :class:`~eradiff.models.family.UNetBackend`: the sampler, the
conditioning, the VAE and the paste are the torch path's own code; only the UNet call runs in
onnxruntime. :func:`load_onnx_model` reads the file's ``metadata_props`` (written by
:func:`eradiff.export.onnx.export_onnx`) and rebuilds the model family around it:

| family  | what besides the ``.onnx`` file                                                      |
| ------- | ------------------------------------------------------------------------------------- |
| pixel   | nothing: encode/decode are pixel (un)shuffles, the config is in the metadata          |
| latent  | the VAE, tokenizer and text encoder of the base diffusers folder (metadata or ``base``) |

Execution providers: ``"auto"`` picks CUDA when ``onnxruntime-gpu`` offers it and torch sees a
GPU, else the CPU; TensorRT's provider is used only when named.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from eradiff.errors import ModelLoadError, first_line
from eradiff.export.artifact import ExternalUNet, GraphBackend, model_around_backend, read_artifact_metadata
from eradiff.models.family import ErasureModel, LatentInpaintModel

_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(bool)": np.bool_,
    "tensor(int64)": np.int64,
}


def ort_providers(providers: str | Sequence[str] = "auto") -> list[str]:
    """Execution providers to ask onnxruntime for.

    Args:
        providers: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"tensorrt"``, or an explicit list of
            onnxruntime provider names.

    Raises:
        ValueError: an unknown name, or a provider this onnxruntime build does not have.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    short = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}  # fmt: skip
    if isinstance(providers, str):
        if providers == "auto":
            gpu = "CUDAExecutionProvider" in available and torch.cuda.is_available()
            return short["cuda"] if gpu else short["cpu"]
        if providers not in short:
            raise ValueError(
                f"providers={providers!r} is not valid; choose 'auto', 'cpu', 'cuda', 'tensorrt' or a list"
            )
        wanted = short[providers]
    else:
        wanted = list(providers)
    missing = [p for p in wanted[:1] if p not in available]
    if missing:
        raise ValueError(
            f"onnxruntime provider {missing[0]} is not available here (available: {', '.join(available)}); "
            "GPU providers need the onnxruntime-gpu package"
        )
    return [p for p in wanted if p in available]


class OrtUNetBackend(GraphBackend):
    """The exported UNet in an ``onnxruntime.InferenceSession`` (see the module docstring).

    Inputs are cast to the graph's dtypes (fp16 graphs take fp16 samples; the timestep is
    float32) and the output comes back as a torch tensor on the sample's device and dtype.
    ``sra=False`` on a graph with SRA feeds an all-False mask, which is exactly plain attention;
    ``sra=True`` on a graph exported without SRA is an error.

    Args:
        path: the ``.onnx`` file.
        providers: see :func:`ort_providers`.
        threads: intra-op threads (None: onnxruntime's default, one per core).
    """

    name = "onnx"
    made, rebuild = "exported", "export with --prompt-input"

    def __init__(
        self, path: str | os.PathLike[str], *, providers: str | Sequence[str] = "auto", threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        self.path = self.artifact = Path(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=ort_providers(providers))
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_name = self.session.get_outputs()[0].name
        self.has_sra = "sra_mask" in self.inputs
        self.has_prompt = "encoder_hidden_states" in self.inputs
        self.prompt_reference: Tensor | None = None  # the constant embedding baked into the graph, if known

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def _np(self, name: str, x: Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.detach().cpu().numpy().astype(_NUMPY[self.inputs[name].type], copy=False))

    def run(self, feed: dict[str, Tensor]) -> Tensor:
        arrays = {k: self._np(k, v) for k, v in feed.items()}
        return torch.from_numpy(self.session.run([self.output_name], arrays)[0])


def load_onnx_model(
    path: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    providers: str | Sequence[str] = "auto",
    threads: int | None = None,
    device: torch.device | str = "cpu",
    offline: bool = False,
) -> ErasureModel:
    """An erasure model whose UNet runs in onnxruntime.

    Args:
        path: an ``.onnx`` file from :func:`eradiff.export.onnx.export_onnx`.
        base: latent family: diffusers folder or hub id for the VAE/text parts (default: the one
            recorded at export).
        providers: see :func:`ort_providers`.
        threads: onnxruntime intra-op threads.
        device: torch device of the rest of the pipeline (VAE, sampler).
        offline: never contact the hub.

    Raises:
        ModelLoadError: a missing or foreign file, malformed metadata, or an unloadable base.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX model {str(path)!r}: no such file")
    try:
        backend = OrtUNetBackend(path, providers=providers, threads=threads)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelLoadError(f"cannot open {str(path)!r} with onnxruntime: {first_line(exc)}") from exc
    meta = read_artifact_metadata(backend.metadata, repr(str(path)))
    model = model_around_backend(meta, backend, where=f"onnxruntime ({path.name})", base=base, offline=offline)
    model.to(device)
    if isinstance(model, LatentInpaintModel) and not backend.has_prompt:
        backend.prompt_reference = model.encode_prompt("")
    return model


__all__ = [
    "ExternalUNet",
    "OrtUNetBackend",
    "load_onnx_model",
    "model_around_backend",
    "ort_providers",
    "read_artifact_metadata",
]
