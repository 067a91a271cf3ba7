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

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from eradiff.core.schedules import ScheduleConfig
from eradiff.errors import ModelLoadError, first_line
from eradiff.models.family import (
    ErasureModel,
    LatentInpaintModel,
    PixelInpaintModel,
    PixelModelConfig,
)

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


class OrtUNetBackend:
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

    def __init__(
        self, path: str | os.PathLike[str], *, providers: str | Sequence[str] = "auto", threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
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

    def __call__(
        self,
        sample: Tensor,
        timestep: Tensor,
        sra_mask: Tensor | None,
        *,
        sra: bool,
        encoder_hidden_states: Tensor | None,
    ) -> Tensor:
        b, _, h, w = sample.shape
        t = torch.as_tensor(timestep).reshape(-1)
        t = t.expand(b) if t.numel() == 1 else t
        feed = {"sample": self._np("sample", sample), "timestep": self._np("timestep", t.float())}
        if sra and not self.has_sra:
            raise ValueError(f"{self.path.name} was exported without SRA (--no-sra); erase with sra=False")
        if self.has_sra:
            if sra_mask is None or not sra:
                sra_mask = torch.zeros(b, h, w, dtype=torch.bool)
            if sra_mask.shape != (b, h, w):
                raise ValueError(f"sra_mask must have shape {(b, h, w)}, got {tuple(sra_mask.shape)}")
            feed["sra_mask"] = self._np("sra_mask", sra_mask)
        if self.has_prompt:
            if encoder_hidden_states is None:
                raise ValueError(f"{self.path.name} takes encoder_hidden_states; none was given")
            feed["encoder_hidden_states"] = self._np("encoder_hidden_states", encoder_hidden_states)
        elif encoder_hidden_states is not None and self.prompt_reference is not None:
            ref = self.prompt_reference.to(encoder_hidden_states.device, encoder_hidden_states.dtype)
            if not torch.equal(encoder_hidden_states, ref.expand_as(encoder_hidden_states)):
                raise ValueError(
                    f"{self.path.name} has the empty-prompt embedding built in; export with --prompt-input to use "
                    "prompts or guidance"
                )
        out = self.session.run([self.output_name], feed)[0]
        return torch.from_numpy(out).to(sample.device, sample.dtype)


class ExternalUNet(nn.Module):
    """Stands in for ``model.unet`` when the UNet runs outside torch: holds its diffusers config
    (so code that reads ``model.unet.config`` keeps working) and no weights."""

    def __init__(self, config: Any, where: str) -> None:
        super().__init__()
        self.config = config
        self.where = where

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"this model's UNet runs in {self.where}; call model.backend, not model.unet")


def _meta_unet(unet_class: str, unet_config: dict[str, Any]) -> nn.Module:
    """The diffusers UNet built on the meta device (no memory, no init cost), for its config."""
    import diffusers

    cls = getattr(diffusers, unet_class, None)
    if cls is None:
        raise ModelLoadError(f"unknown UNet class {unet_class!r} in the artifact's metadata")
    with torch.device("meta"):
        return cls.from_config(unet_config)


def read_artifact_metadata(metadata: dict[str, str], where: str) -> dict[str, Any]:
    """Parse and check the eradiff keys of an artifact's metadata.

    Raises:
        ModelLoadError: a file without eradiff metadata, or malformed values.
    """
    if "eradiff.family" not in metadata:
        raise ModelLoadError(f"{where} has no eradiff metadata; export it with `eradiff export`")
    try:
        return {
            "family": metadata["eradiff.family"],
            "name": metadata["eradiff.name"],
            "schedule": json.loads(metadata["eradiff.schedule"]),
            "config": json.loads(metadata["eradiff.config"]),
            "unet_class": metadata["eradiff.unet_class"],
            "unet_config": json.loads(metadata["eradiff.unet_config"]),
            "sra": metadata["eradiff.sra"] == "1",
            "prompt": metadata["eradiff.prompt"],
        }
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{where}: malformed eradiff metadata ({first_line(exc)})") from exc


def model_around_backend(
    meta: dict[str, Any],
    backend: Any,
    *,
    where: str,
    base: str | os.PathLike[str] | None = None,
    offline: bool = False,
) -> ErasureModel:
    """Build the erasure model of an artifact's family with ``backend`` as its UNet.

    Args:
        meta: :func:`read_artifact_metadata` output.
        backend: a :class:`~eradiff.models.family.UNetBackend`.
        where: the artifact, for messages and for :class:`ExternalUNet`.
        base: latent family: the diffusers folder (or hub id) with the VAE and text encoder;
            default: the ``base_model`` recorded at export.
        offline: never contact the hub for the base model.
    """
    unet = _meta_unet(meta["unet_class"], meta["unet_config"])
    stand_in = ExternalUNet(unet.config, where)
    if meta["family"] == "pixel":
        try:
            config = PixelModelConfig.from_json(json.dumps(meta["config"]))
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"{where}: malformed pixel-model config ({first_line(exc)})") from exc
        model: ErasureModel = PixelInpaintModel(config, unet=unet)
    elif meta["family"] == "latent":
        model = _latent_model(meta, unet, where=where, base=base, offline=offline)
    else:
        raise ModelLoadError(f"{where}: unknown model family {meta['family']!r}")
    model.unet = stand_in  # type: ignore[attr-defined]
    model.backend = backend
    return model


def _latent_model(
    meta: dict[str, Any], unet: nn.Module, *, where: str, base: str | os.PathLike[str] | None, offline: bool
) -> LatentInpaintModel:
    from diffusers import AutoencoderKL

    from eradiff.models.loading import set_offline

    root = str(base) if base is not None else meta["config"].get("base_model") or ""
    if not root:
        raise ModelLoadError(f"{where} is a latent-family model: name the base diffusers folder (--base) for its VAE")
    if offline:
        set_offline()
    kw: dict[str, Any] = {"local_files_only": True} if offline else {}
    try:
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", use_safetensors=True, **kw)
        tokenizer = text_encoder = None
        if meta["prompt"] == "input":
            from transformers import CLIPTextModel, CLIPTokenizer

            tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **kw)
            text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", use_safetensors=True, **kw)
            text_encoder.eval().requires_grad_(False)
    except Exception as exc:  # diffusers/transformers raise many kinds
        raise ModelLoadError(f"{where}: cannot load the VAE/text parts from base {root!r}: {first_line(exc)}") from exc
    vae.eval().requires_grad_(False)
    schedule = ScheduleConfig(**meta["schedule"])
    # A constant-prompt graph needs no text encoder; the embedding placeholder only satisfies the
    # family's "" cache (the graph ignores it) and any other prompt raises.
    prompt_embeds = None
    if text_encoder is None:
        dim = int(meta["unet_config"].get("cross_attention_dim") or 1)
        prompt_embeds = {"": torch.zeros(1, 1, dim)}
    return LatentInpaintModel(
        unet, vae, schedule, tokenizer=tokenizer, text_encoder=text_encoder, prompt_embeds=prompt_embeds,
        name=meta["name"], source=root,
    )  # fmt: skip


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
