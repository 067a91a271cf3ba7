"""Exported artifacts (ONNX graphs, TensorRT engines): their eradiff metadata, and the erasure model
rebuilt around a backend that runs their UNet. Shared by :mod:`eradiff.export.ort_backend` and
:mod:`eradiff.export.trt`; the family's class (:mod:`eradiff.models.registry`) builds the rest:

| family  | what besides the artifact                                                             |
| ------- | ------------------------------------------------------------------------------------- |
| pixel   | nothing: encode/decode are pixel (un)shuffles, the config is in the metadata          |
| latent  | the VAE, tokenizer and text encoder of the base diffusers folder (metadata or ``base``) |
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from eradiff.errors import ModelLoadError, first_line
from eradiff.models.family import ErasureModel
from eradiff.models.registry import family_class


class ExternalUNet(nn.Module):
    """Stands in for ``model.unet`` when the UNet runs outside torch: holds its diffusers config
    (so code that reads ``model.unet.config`` keeps working) and no weights."""

    def __init__(self, config: Any, where: str) -> None:
        super().__init__()
        self.config = config
        self.where = where

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"this model's UNet runs in {self.where}; call model.backend, not model.unet")


class GraphBackend:
    """The UNet backend of an exported graph: checks and assembles its inputs once for every runtime.

    Subclasses (ONNX Runtime, TensorRT) set ``artifact`` (the file, named in messages), ``made``
    (``"exported"`` / ``"built"``), ``rebuild`` (how to make a prompt-input graph instead),
    ``has_sra``, ``has_prompt`` and ``prompt_reference`` (the empty-prompt embedding baked into a
    graph without a prompt input, when known), and implement :meth:`run`.
    """

    artifact: Any
    made: str
    rebuild: str
    has_sra: bool
    has_prompt: bool
    prompt_reference: torch.Tensor | None

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        sra_mask: torch.Tensor | None,
        *,
        sra: bool,
        encoder_hidden_states: torch.Tensor | None,
    ) -> torch.Tensor:
        b, _, h, w = sample.shape
        t = torch.as_tensor(timestep).reshape(-1)
        feed = {"sample": sample, "timestep": t.expand(b) if t.numel() == 1 else t}
        name = self.artifact.name
        if sra and not self.has_sra:
            raise ValueError(f"{name} was {self.made} without SRA (--no-sra); erase with sra=False")
        if self.has_sra:
            if sra_mask is None or not sra:
                sra_mask = torch.zeros(b, h, w, dtype=torch.bool)
            if sra_mask.shape != (b, h, w):
                raise ValueError(f"sra_mask must have shape {(b, h, w)}, got {tuple(sra_mask.shape)}")
            feed["sra_mask"] = sra_mask
        if self.has_prompt:
            if encoder_hidden_states is None:
                raise ValueError(f"{name} takes encoder_hidden_states; none was given")
            feed["encoder_hidden_states"] = encoder_hidden_states
        elif encoder_hidden_states is not None and self.prompt_reference is not None:
            ref = self.prompt_reference.to(encoder_hidden_states.device, encoder_hidden_states.dtype)
            if not torch.equal(encoder_hidden_states, ref.expand_as(encoder_hidden_states)):
                raise ValueError(
                    f"{name} has the empty-prompt embedding built in; {self.rebuild} to use prompts or guidance"
                )
        return self.run(feed).to(sample.device, sample.dtype)

    def run(self, feed: dict[str, torch.Tensor]) -> torch.Tensor:
        """The graph's output for the named inputs (torch tensors on any device)."""
        raise NotImplementedError


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
    cls = family_class(meta["family"], where=where)
    model = cls.around_unet(meta, unet, where=where, base=None if base is None else str(base), offline=offline)
    model.unet = stand_in  # type: ignore[attr-defined]
    model.backend = backend
    return model


__all__ = ["ExternalUNet", "model_around_backend", "read_artifact_metadata"]
