"""Turn a :class:`~eradiff.train.config.TrainingConfig` into the objects the loop runs.

| function             | builds                                                                    |
| -------------------- | ------------------------------------------------------------------------- |
| ``build_model``      | the :class:`~eradiff.models.family.ErasureModel` (UNet trainable, rest frozen) |
| ``build_objective``  | ``CROObjective`` / ``StandardObjective`` bound to the model's schedule    |
| ``build_source``     | the material source of the training or validation split                  |
| ``build_datasets``   | ``(train, val)`` :class:`~eradiff.train.data.PairDataset` (val may be None) |
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

import eradiff.core as core
from eradiff.core.schedules import ScheduleConfig
from eradiff.models.family import (
    ErasureModel,
    PixelInpaintModel,
    PixelModelConfig,
    default_pixel_unet_config,
)
from eradiff.models.loading import load_fitting_weights
from eradiff.train.config import ConfigError, DataConfig, ModelConfig, ObjectiveConfig, TrainingConfig

__all__ = ["DataError", "build_datasets", "build_model", "build_objective", "build_source"]


class DataError(RuntimeError):
    """The training data cannot be used: missing paths, nothing usable, too few pairs for a batch."""


def build_model(config: ModelConfig, *, crop_size: int) -> ErasureModel:
    """The erasure model a run trains, on the CPU in fp32, UNet in train mode and trainable.

    The pixel family is built from ``config`` with freshly initialised weights (seed the global
    RNG first), then ``model.init`` weights are loaded when given. The latent family is loaded
    from ``model.base_model`` (safetensors only); its VAE and text encoder stay frozen.

    Raises:
        ConfigError: a UNet config diffusers refuses, or ``model.init`` that does not fit it.
    """
    if config.family == "latent":
        from eradiff.models.loading import load_model

        model = load_model(config.base_model)
    else:
        unet = dict(config.unet) if config.unet is not None else default_pixel_unet_config(config.factor)
        schedule = PixelModelConfig.__dataclass_fields__["schedule"].default_factory()
        if config.schedule is not None:
            schedule = {**schedule, **config.schedule}
        pixel = PixelModelConfig(
            unet=unet,
            schedule=ScheduleConfig(**schedule).to_dict(),
            factor=config.factor,
            fill=config.fill,
            space=config.space,
            residual_scale=config.residual_scale,
            native_size=config.native_size or crop_size,
            name=config.name,
            default_steps=config.default_steps,
        )
        try:
            model = PixelInpaintModel(pixel)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.unet: diffusers refused the UNet2DModel config ({e})") from None
        _check_pixel_channels(model, config)
        if config.init is not None:
            _load_init(model, config.init)
    model.unet.train()
    model.unet.requires_grad_(True)
    return model


def _check_pixel_channels(model: PixelInpaintModel, config: ModelConfig) -> None:
    f = config.factor
    c = 3 * f * f
    want_in, want_out = 2 * c + f * f, c
    got_in, got_out = model.unet.config.in_channels, model.unet.config.out_channels
    if (got_in, got_out) != (want_in, want_out):
        raise ConfigError(
            f"model.unet has in/out channels {got_in}/{got_out}; factor {f} needs {want_in}/{want_out} "
            f"(noisy 3f², mask f², filled image 3f² → 3f²)"
        )


def _load_init(model: PixelInpaintModel, path: str) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model.init={path!r}: no such file")
    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata() or {}
    family = json.loads(meta.get("eradiff_config", "{}")).get("family")
    if family != "pixel":
        raise ConfigError(f"model.init={path!r} is not a pixel-family eradiff checkpoint (family={family!r})")
    mismatch = load_fitting_weights(model.unet, load_file(str(p)))
    if mismatch is not None:
        raise ConfigError(f"model.init={path!r} does not fit model.unet (first mismatch: {mismatch})")


def build_objective(config: ObjectiveConfig, schedule: ScheduleConfig):
    """The per-sample loss object: ``obj(model_fn, x_ori, x_obj, draw, weight=) -> (b,)``."""
    alpha_bar = schedule.alpha_bar()
    prediction_type = schedule.prediction_type
    if config.kind == "standard":
        return core.StandardObjective(alpha_bar, prediction_type)
    if config.kind == "cro":
        lam = core.mixup_lambdas(alpha_bar, kind="one_minus_alpha_bar")
    else:
        lam = core.mixup_lambdas(alpha_bar, kind="constant", value=config.lam)
    return core.CROObjective(alpha_bar, lam, prediction_type, config.weighting)


def build_source(config: DataConfig, split: Literal["train", "val"]):
    """The material source of one split, or None for a ``val`` split that has no paths of its own.

    Raises:
        DataError: a path that does not exist or a source with no items.
    """
    from eradiff.train import sources

    def path(key: str) -> Path:
        name = f"val_{key}" if split == "val" and config.source != "debian" else key
        value = getattr(config, name)
        p = Path(value)
        if not p.exists():
            raise DataError(f"data.{name}={value!r}: no such file or folder")
        return p

    kw = {"min_area": config.min_area}
    s = config.source
    if split == "val" and s not in ("debian", "toy"):
        firsts = {"cutouts": "objects", "folder": "root", "coco": "annotations", "openimages": "annotations"}
        if getattr(config, f"val_{firsts[s]}") is None:
            return None
    try:
        if s == "toy":
            from eradiff.train.toy import ToySource

            size = max(config.crop_size * 3 // 2, 8)
            source = ToySource(background_size=size, object_size=(max(2, size // 6), max(3, size // 2)))
        elif s == "debian":
            source = sources.CutoutSource.from_manifest(path("manifest"), split=split, **kw)
        elif s == "cutouts":
            source = sources.CutoutSource.from_folders(path("objects"), path("backgrounds"), **kw)
        elif s == "folder":
            source = sources.MaskedFolderSource(path("root"), **kw)
        elif s == "coco":
            source = sources.CocoSource(path("annotations"), path("images"), **kw)
        else:
            source = sources.OpenImagesSource(path("annotations"), path("masks"), path("images"), **kw)
    except (ValueError, OSError, KeyError) as e:
        raise DataError(f"data ({split}, source={s}): {e}") from None
    if len(source) == 0:
        raise DataError(f"data ({split}, source={s}): the source has no usable items; check the paths")
    return source


def build_datasets(config: TrainingConfig):
    """``(train, val)`` PairDatasets; ``val`` is None when ``data.val_size`` is 0.

    Without validation paths of its own (sources other than ``debian`` and ``toy``) the
    validation set draws different pairs from the training material (same photos and objects).
    """
    from eradiff.train.data import PairDataset

    data = config.data
    synthesis = data.synthesis_config()
    seed = config.train.seed
    train_source = build_source(data, "train")
    # pixel models' classical fills run in the data workers (PatchMatch costs ~0.1 s per crop)
    fill = config.model.fill if config.model.family == "pixel" and config.model.fill != "zeros" else None
    train = PairDataset(train_source, synthesis, seed=seed, length=data.size or len(train_source), fill=fill)
    val = None
    if data.val_size > 0:
        val_source = build_source(data, "val") or train_source
        # a different seed stream from training: these pairs are never trained on as such
        val = PairDataset(val_source, synthesis, seed=seed + 1_000_003, length=data.val_size)
    return train, val


def to_device_batch(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(x_ori, x_obj, M) on ``device``; M as (b, H, W) bool (True = erase)."""
    x_ori = batch["x_ori"].to(device, torch.float32, non_blocking=True)
    x_obj = batch["x_obj"].to(device, torch.float32, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    if mask.ndim == 4:
        mask = mask[:, 0]
    return x_ori, x_obj, mask > 0.5
