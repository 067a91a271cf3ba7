"""Turn a :class:`~eradiff.train.config.TrainingConfig` into the objects the loop runs.

| function             | builds                                                                    |
| -------------------- | ------------------------------------------------------------------------- |
| ``build_model``      | the :class:`~eradiff.models.family.ErasureModel` (UNet trainable, rest frozen) |
| ``build_objective``  | ``CROObjective`` / ``StandardObjective`` bound to the model's schedule    |
| ``build_source``     | the material source of the training or validation split                  |
| ``build_datasets``   | ``(train, val)`` :class:`~eradiff.train.data.PairDataset` (val may be None) |
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

import eradiff.core as core
from eradiff.core.schedules import ScheduleConfig
from eradiff.models.family import ErasureModel
from eradiff.models.registry import family_class
from eradiff.train.config import ConfigError, DataConfig, ModelConfig, ObjectiveConfig, TrainingConfig

__all__ = ["DataError", "build_datasets", "build_model", "build_objective", "build_source"]


class DataError(RuntimeError):
    """The training data cannot be used: missing paths, nothing usable, too few pairs for a batch."""


def build_model(config: ModelConfig, *, crop_size: int) -> ErasureModel:
    """The erasure model a run trains, on the CPU in fp32, UNet in train mode and trainable.

    The family (:mod:`eradiff.models.registry`) builds it: the pixel family from ``config`` with
    freshly initialised weights (seed the global RNG first), then ``model.init``; the latent family
    from ``model.base_model`` (safetensors only), its VAE and text encoder frozen.

    Raises:
        ConfigError: a config the family refuses (a UNet diffusers rejects, ``model.init`` that
            does not fit it).
    """
    try:
        model = family_class(config.family, where="model.family").for_training(config, crop_size=crop_size)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    model.unet.train()
    model.unet.requires_grad_(True)
    return model


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
    fill = family_class(config.model.family, where="model.family").training_fill(config.model)
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
