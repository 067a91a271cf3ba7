"""Training configuration: frozen dataclasses read from YAML, validated with one-line errors.

A config file has the sections below; every key is optional (defaults in the table) except where
a family or source needs a path. Unknown keys are errors. ``--set section.key=value`` overrides
any key (the value is parsed as YAML, so ``--set optim.lr=1e-4`` and ``--set train.ema_decay=null``
work).

| key                          | default       | meaning                                                     |
| ---------------------------- | ------------- | ----------------------------------------------------------- |
| model.family                 | pixel         | pixel (UNet2DModel) or latent (SD2-inpainting class)        |
| model.unet                   | null          | pixel: UNet2DModel kwargs; null = default_pixel_unet_config |
| model.factor                 | 4             | pixel: pixel-unshuffle factor f                             |
| model.fill                   | telea         | pixel: hole fill (telea/patchmatch/zeros): conditioning+base|
| model.native_size            | null          | pixel: window size of ``eradiff erase``; null = crop size   |
| model.schedule               | null          | pixel: ScheduleConfig fields over the family default        |
| model.name                   | eradiff-pixel | name stored with the exported weights                       |
| model.default_steps          | 20            | pixel: sampling steps ``eradiff erase`` uses by default     |
| model.init                   | null          | pixel: an exported .safetensors to start from               |
| model.init_grow              | null          | pixel: true lets model.unet add attention blocks model.init |
|                              |               | lacks; they start as the identity (zero output projection)  |
| model.base_model             | null          | latent: diffusers folder or hub id (required)               |
| model.sra                    | true          | Self-Rectifying Attention during training (Sec. 4.2)        |
| data.source                  | debian        | debian, cutouts, folder, coco, openimages or toy            |
| data.manifest                | see right     | debian: data/debian/manifest.json (has a val split)         |
| data.objects                 | null          | cutouts: folder of RGBA PNG cut-outs (recursive)            |
| data.backgrounds             | null          | cutouts: folder of photos (recursive)                       |
| data.root                    | null          | folder: photos with per-instance mask PNGs                  |
| data.annotations             | null          | coco: instances JSON; openimages: segmentation CSV          |
| data.images                  | null          | coco, openimages: image folder                              |
| data.masks                   | null          | openimages: mask PNG folder                                 |
| data.val_<path>              | null          | the same paths for a validation set (optional)              |
| data.crop_size               | 256           | S, side of the square training crop (pixels)                |
| data.synthesis               | {}            | SynthesisConfig fields (scale_range, rotation_deg, …)       |
| data.min_area                | 64            | objects with fewer pixels are rejected (counted)            |
| data.size                    | null          | pairs per epoch; null = the source's item count             |
| data.val_size                | 16            | validation pairs (the sample grid uses the first)           |
| data.num_workers             | 0             | DataLoader workers per training process                     |
| objective.kind               | cro           | cro (Eq. 9, λ_t = 1 − ᾱ_t), cro-const, standard (Eq. 3)     |
| objective.lam                | 0.5           | cro-const: the constant λ                                   |
| objective.gamma_max          | 100           | γ_m (Sec. 5.1)                                              |
| objective.weighting          | paper         | paper (literal Eq. 9) or output (divided by b²)             |
| objective.mask_weight        | 1.0           | per-pixel loss weight inside the mask                       |
| objective.timesteps          | uniform       | τ draw: uniform (Alg. 1) or lognormal (EDM ln σ ~ N)        |
| objective.p_mean, p_std      | −1.2, 1.2     | lognormal: the normal distribution of ln σ                  |
| objective.uniform_share      | 0.5           | lognormal: share of uniform draws mixed in                  |
| objective.perceptual         | none          | none, alex, vgg or alex+vgg: + LPIPS of x̂_0 on the mask box |
| objective.perceptual_weight  | 1.0           | weight of that LPIPS term in the per-sample loss            |
| objective.perceptual_size    | 96            | side the mask-box crops are resized to for it (pixels)      |
| objective.texture            | none          | none or gram: + VGG Gram-matrix (style) loss on the mask box |
| objective.texture_weight     | 1.0           | weight of that texture term in the per-sample loss          |
| objective.texture_size       | 64            | side the mask-box crops are resized to for it (pixels)      |
| optim.lr                     | 3.0e-6        | AdamW learning rate (the paper's, for SD fine-tuning)       |
| optim.betas                  | [0.9, 0.999]  | AdamW β₁, β₂                                                |
| optim.eps                    | 1.0e-8        | AdamW ε                                                     |
| optim.weight_decay           | 0.01          | AdamW decoupled weight decay                                |
| optim.warmup_steps           | 0             | linear warm-up over this many optimizer steps               |
| optim.schedule               | constant      | constant or cosine (to min_lr_ratio·lr at max_steps)        |
| optim.min_lr_ratio           | 0.0           | cosine floor as a fraction of lr                            |
| optim.grad_clip              | 1.0           | max global gradient norm; null = no clipping                |
| train.batch_size             | 8             | GLOBAL batch per optimizer step (all processes)             |
| train.grad_accum             | 1             | micro-steps per step (memory only: same results)            |
| train.max_steps              | 1000          | optimizer steps (data steps) of the run                     |
| train.stop_at                | null          | stop (checkpoint + export) at this step; schedule unchanged |
| train.mixed_precision        | no            | no, fp16 or bf16 (autocast; weights stay fp32)              |
| train.ema_decay              | 0.9999        | EMA decay (1+n/10+n warm-up); null = no EMA                 |
| train.gradient_checkpointing | false         | recompute activations in backward                           |
| train.seed                   | 0             | seeds init, data order, pairs and every t, γ, ε             |
| train.max_nonfinite_steps    | 10            | stop after this many non-finite steps in a row              |
| checkpoint.every             | 1000          | checkpoint every N steps (0 = only at the end)              |
| checkpoint.keep_last         | 3             | checkpoints kept (older ones are deleted)                   |
| checkpoint.export_dtype      | fp16          | dtype of the exported weights (fp16/bf16/fp32)              |
| log.every                    | 10            | metrics row (JSONL, TensorBoard) every N steps              |
| log.sample_every             | 0             | sample-grid PNG every N steps (0 = never)                   |
| log.sample_count             | 4             | validation pairs in the grid                                |
| log.sample_steps             | 20            | DDIM steps of the preview sampler                           |
| log.tensorboard              | true          | TensorBoard events too, when it is installed                |
| log.progress                 | true          | rich progress bar on the main process                       |
| output_dir                   | runs/eradiff  | run folder: config, metrics, checkpoints, weights           |

YAML 1.1 reads a bare ``no`` as false and ``3e-6`` (no dot) as a string; both are accepted where
they can only mean ``"no"`` or a number.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "LogConfig",
    "LoopConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "TrainingConfig",
    "apply_overrides",
    "config_from_dict",
    "dump_config",
    "load_config",
]


class ConfigError(ValueError):
    """A bad training configuration; the message names the key and the value."""


Source = Literal["debian", "cutouts", "folder", "coco", "openimages", "toy"]
ObjectiveKind = Literal["cro", "cro-const", "standard"]
Weighting = Literal["paper", "output"]
LRSchedule = Literal["constant", "cosine"]
MixedPrecision = Literal["no", "fp16", "bf16"]
ExportDtype = Literal["fp16", "bf16", "fp32"]


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelConfig:
    """``model:`` section (see the module table)."""

    family: str = "pixel"  # a name of eradiff.models.registry.FAMILIES
    unet: dict[str, Any] | None = None
    factor: int = 4
    fill: Literal["telea", "patchmatch", "zeros"] = "telea"
    space: Literal["pixel", "residual"] = "pixel"
    residual_scale: float = 1.0
    native_size: int | None = None
    schedule: dict[str, Any] | None = None
    name: str = "eradiff-pixel"
    default_steps: int = 20
    init: str | None = None
    init_grow: bool | None = None
    base_model: str | None = None
    sra: bool = True

    def __post_init__(self) -> None:
        _require(self.factor >= 1, f"model.factor must be ≥ 1, got {self.factor}")
        _require(self.default_steps >= 1, f"model.default_steps must be ≥ 1, got {self.default_steps}")
        _require(
            self.native_size is None or self.native_size >= 8,
            f"model.native_size must be ≥ 8 or null, got {self.native_size}",
        )
        from eradiff.models.registry import FAMILIES

        _require(
            self.family in FAMILIES,
            f"model.family={self.family!r} is not valid; choose one of {', '.join(map(repr, FAMILIES))}",
        )
        for key in FAMILIES[self.family].required_training_keys:
            _require(bool(getattr(self, key)), f"model.{key} is required for model.family={self.family}")
        chosen = FAMILIES[self.family].training_keys
        for key in sorted({k for cls in FAMILIES.values() for k in cls.training_keys} - set(chosen)):
            users = " or ".join(name for name, cls in FAMILIES.items() if key in cls.training_keys)
            _require(getattr(self, key) is None, f"model.{key} is for the {users} family; remove it for {self.family}")
        if self.schedule is not None:
            from eradiff.core.schedules import ScheduleConfig

            valid = {f.name for f in dataclasses.fields(ScheduleConfig)}
            bad = sorted(set(self.schedule) - valid)
            _require(not bad, f"unknown key model.schedule.{bad[0] if bad else ''} (valid: {', '.join(sorted(valid))})")


@dataclass(frozen=True)
class DataConfig:
    """``data:`` section (see the module table)."""

    source: Source = "debian"
    manifest: str | None = "data/debian/manifest.json"
    objects: str | None = None
    backgrounds: str | None = None
    root: str | None = None
    annotations: str | None = None
    images: str | None = None
    masks: str | None = None
    val_objects: str | None = None
    val_backgrounds: str | None = None
    val_root: str | None = None
    val_annotations: str | None = None
    val_images: str | None = None
    val_masks: str | None = None
    crop_size: int = 256
    synthesis: dict[str, Any] = field(default_factory=dict)
    min_area: int = 64
    size: int | None = None
    val_size: int = 16
    num_workers: int = 0

    _NEEDS: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        "debian": ("manifest",),
        "cutouts": ("objects", "backgrounds"),
        "folder": ("root",),
        "coco": ("annotations", "images"),
        "openimages": ("annotations", "masks", "images"),
        "toy": (),
    }

    def __post_init__(self) -> None:
        for key in self._NEEDS[self.source]:
            _require(bool(getattr(self, key)), f"data.{key} is required for data.source={self.source}")
        _require(self.crop_size >= 8, f"data.crop_size must be ≥ 8, got {self.crop_size}")
        _require(self.min_area >= 1, f"data.min_area must be ≥ 1, got {self.min_area}")
        _require(self.size is None or self.size >= 1, f"data.size must be ≥ 1 or null, got {self.size}")
        _require(self.val_size >= 0, f"data.val_size must be ≥ 0, got {self.val_size}")
        _require(self.num_workers >= 0, f"data.num_workers must be ≥ 0, got {self.num_workers}")
        from eradiff.train.synthesis import SynthesisConfig

        valid = {f.name for f in dataclasses.fields(SynthesisConfig)} - {"crop_size", "min_object_area"}
        bad = sorted(set(self.synthesis) - valid)
        _require(not bad, f"unknown key data.synthesis.{bad[0] if bad else ''} (valid: {', '.join(sorted(valid))})")
        try:
            self.synthesis_config()
        except (TypeError, ValueError) as e:
            raise ConfigError(f"data.synthesis: {e}") from None

    def synthesis_config(self):
        """The :class:`~eradiff.train.synthesis.SynthesisConfig` these options describe."""
        from eradiff.train.synthesis import SynthesisConfig

        opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.synthesis.items()}
        return SynthesisConfig(crop_size=self.crop_size, min_object_area=self.min_area, **opts)


@dataclass(frozen=True)
class ObjectiveConfig:
    """``objective:`` section (see the module table)."""

    kind: ObjectiveKind = "cro"
    lam: float = 0.5
    gamma_max: int = 100
    weighting: Weighting = "paper"
    mask_weight: float = 1.0
    timesteps: Literal["uniform", "lognormal"] = "uniform"
    p_mean: float = -1.2
    p_std: float = 1.2
    uniform_share: float = 0.5
    perceptual: Literal["none", "alex", "vgg", "alex+vgg"] = "none"
    perceptual_weight: float = 1.0
    perceptual_size: int = 96
    texture: Literal["none", "gram"] = "none"
    texture_weight: float = 1.0
    texture_size: int = 64

    def __post_init__(self) -> None:
        _require(self.texture_weight >= 0, f"objective.texture_weight must be ≥ 0, got {self.texture_weight}")
        _require(self.texture_size >= 16, f"objective.texture_size must be ≥ 16, got {self.texture_size}")
        _require(self.perceptual_weight >= 0, f"objective.perceptual_weight must be ≥ 0, got {self.perceptual_weight}")
        _require(self.perceptual_size >= 32, f"objective.perceptual_size must be ≥ 32, got {self.perceptual_size}")
        _require(self.p_std > 0, f"objective.p_std must be > 0, got {self.p_std}")
        _require(
            0.0 <= self.uniform_share <= 1.0, f"objective.uniform_share must be in [0, 1], got {self.uniform_share}"
        )
        _require(0.0 <= self.lam <= 1.0, f"objective.lam must be in [0, 1], got {self.lam}")
        _require(self.gamma_max >= 1, f"objective.gamma_max must be ≥ 1, got {self.gamma_max}")
        _require(self.mask_weight > 0, f"objective.mask_weight must be > 0, got {self.mask_weight}")


@dataclass(frozen=True)
class OptimConfig:
    """``optim:`` section (see the module table)."""

    lr: float = 3e-6
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2
    warmup_steps: int = 0
    schedule: LRSchedule = "constant"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        _require(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        _require(all(0.0 <= b < 1.0 for b in self.betas), f"optim.betas must lie in [0, 1), got {list(self.betas)}")
        _require(self.eps > 0, f"optim.eps must be > 0, got {self.eps}")
        _require(self.weight_decay >= 0, f"optim.weight_decay must be ≥ 0, got {self.weight_decay}")
        _require(self.warmup_steps >= 0, f"optim.warmup_steps must be ≥ 0, got {self.warmup_steps}")
        _require(0.0 <= self.min_lr_ratio <= 1.0, f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _require(
            self.grad_clip is None or self.grad_clip > 0, f"optim.grad_clip must be > 0 or null, got {self.grad_clip}"
        )


@dataclass(frozen=True)
class LoopConfig:
    """``train:`` section (see the module table)."""

    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int = 1000
    mixed_precision: MixedPrecision = "no"
    ema_decay: float | None = 0.9999
    gradient_checkpointing: bool = False
    seed: int = 0
    max_nonfinite_steps: int = 10
    stop_at: int | None = None

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"train.batch_size must be ≥ 1, got {self.batch_size}")
        _require(self.grad_accum >= 1, f"train.grad_accum must be ≥ 1, got {self.grad_accum}")
        _require(
            self.batch_size % self.grad_accum == 0,
            f"train.batch_size={self.batch_size} must be a multiple of train.grad_accum={self.grad_accum}",
        )
        _require(self.max_steps >= 1, f"train.max_steps must be ≥ 1, got {self.max_steps}")
        _require(
            self.stop_at is None or 1 <= self.stop_at <= self.max_steps,
            f"train.stop_at must be null or in [1, train.max_steps={self.max_steps}], got {self.stop_at}",
        )
        _require(
            self.ema_decay is None or 0.0 <= self.ema_decay < 1.0,
            f"train.ema_decay must be in [0, 1) or null, got {self.ema_decay}",
        )
        _require(self.seed >= 0, f"train.seed must be ≥ 0, got {self.seed}")
        _require(
            self.max_nonfinite_steps >= 1, f"train.max_nonfinite_steps must be ≥ 1, got {self.max_nonfinite_steps}"
        )


@dataclass(frozen=True)
class CheckpointConfig:
    """``checkpoint:`` section (see the module table)."""

    every: int = 1000
    keep_last: int = 3
    export_dtype: ExportDtype = "fp16"

    def __post_init__(self) -> None:
        _require(self.every >= 0, f"checkpoint.every must be ≥ 0, got {self.every}")
        _require(self.keep_last >= 1, f"checkpoint.keep_last must be ≥ 1, got {self.keep_last}")


@dataclass(frozen=True)
class LogConfig:
    """``log:`` section (see the module table)."""

    every: int = 10
    sample_every: int = 0
    sample_count: int = 4
    sample_steps: int = 20
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        _require(self.every >= 1, f"log.every must be ≥ 1, got {self.every}")
        _require(self.sample_every >= 0, f"log.sample_every must be ≥ 0, got {self.sample_every}")
        _require(self.sample_count >= 1, f"log.sample_count must be ≥ 1, got {self.sample_count}")
        _require(self.sample_steps >= 1, f"log.sample_steps must be ≥ 1, got {self.sample_steps}")


@dataclass(frozen=True)
class TrainingConfig:
    """The whole run: one frozen object, built by :func:`load_config` / :func:`config_from_dict`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    output_dir: str = "runs/eradiff"

    def __post_init__(self) -> None:
        from eradiff.models.registry import FAMILIES

        try:
            multiple = FAMILIES[self.model.family].training_size_multiple(self.model)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        size = self.model.native_size or self.data.crop_size
        _require(
            self.data.crop_size % multiple == 0 and size % multiple == 0,
            f"data.crop_size={self.data.crop_size} (and model.native_size) must be a multiple of {multiple} "
            f"(what model.family={self.model.family} needs)",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists) that :func:`config_from_dict` turns back into this config."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **sections: Any) -> TrainingConfig:
        """A copy with whole sections (or ``output_dir``) replaced, re-validated."""
        return dataclasses.replace(self, **sections)


# ----------------------------------------------------------------------------- loading


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}={value!r} has the wrong type")
    if origin is Literal:
        if value is False and "no" in args:
            return "no"  # YAML 1.1 reads a bare `no` as false
        if value not in args:
            raise ConfigError(f"{key}={value!r} is not valid; choose one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return {str(k): _plain(v) for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")  # a bug in this module, not in the file


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'the config'} must be a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    prefix = f"{where}." if where else ""
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (valid: {', '.join(fields)})")
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:  # a nested library config refused a value
        raise ConfigError(f"{where or 'config'}: {e}") from None


def config_from_dict(data: Mapping[str, Any] | None) -> TrainingConfig:
    """Validate plain data (as read from YAML) into a :class:`TrainingConfig`.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range; the message names
            the dotted key.
    """
    return _build(TrainingConfig, data, "")


def apply_overrides(data: Mapping[str, Any] | None, overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``section.key=value`` overrides applied (values parsed as YAML)."""
    out = _plain(dict(data or {}))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        path, text = item.split("=", 1)
        keys = path.strip().split(".")
        if not all(keys):
            raise ConfigError(f"--set has an empty key in {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {path}: cannot parse {text!r} as YAML ({e.problem})") from None
        node = out
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {path}: {k} is not a section")
            node = child
        node[keys[-1]] = value
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainingConfig:
    """Read a YAML config file, apply ``--set`` overrides and validate.

    Raises:
        ConfigError: unreadable or malformed YAML, or an invalid config (see :func:`config_from_dict`).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return config_from_dict(apply_overrides(data, overrides))


def dump_config(config: TrainingConfig) -> str:
    """The resolved config as YAML (every key, defaults included); :func:`load_config` reads it back."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
