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
