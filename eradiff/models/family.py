"""Erasure model families: what the sampler and the trainer need from a model.

An :class:`ErasureModel` maps images to the space the UNet denoises (``encode``/``decode``),
the image mask to that space's grid (``latent_mask``), and builds the conditioning channels
(mask + masked image) that are concatenated after the noisy sample. Its UNet is called through a
*backend* — a callable ``(sample, t, sra_mask, sra, encoder_hidden_states) -> output`` — so the same
sampler runs on eager torch, ONNX Runtime or TensorRT.

Two families:

* :class:`LatentInpaintModel` — Stable-Diffusion-2-inpainting class: ``UNet2DConditionModel``
  with 9 input channels (4 noisy latents + 1 mask + 4 masked-image latents), ``AutoencoderKL``,
  CLIP text encoder (the prompt embedding is computed once per prompt and cached).
* :class:`PixelInpaintModel` — the small built-in family: ``UNet2DModel`` on the exactly
  invertible pixel-unshuffled image (factor f: (3, H, W) → (3f², H/f, W/f)), with the mask and a
  hole-filled copy of the image (OpenCV Telea, or zeros) as conditioning. No VAE, so nothing
  outside the mask is ever approximated. With ``space="residual"`` the diffusion runs on the
  residual (x − fill)/s (unshuffled): the chain starts, in effect, from the classical fill and only
  has to add what the fill lacks (texture, structure); encode/decode then need the conditioning.
  The scale s (``residual_scale``) plays the role of SD's latent scaling factor: inside holes the
  residual of photos has a standard deviation of about 0.26, and dividing by s ≈ 0.25 gives the
  unit-variance data that the v-prediction parametrisation assumes (with s = 1 the network must
  learn to cancel most of its skip path at high noise, and the early sampling steps leak noise).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

import eradiff.core as core
from eradiff.core.schedules import ScheduleConfig  # noqa: F401  (re-exported: its home before core)
from eradiff.errors import ModelLoadError, first_line
from eradiff.models.sra import SRAState, install_sra


class UNetBackend(Protocol):
    """Anything that evaluates the denoiser: eager torch, ONNX Runtime, TensorRT."""

    def __call__(
        self,
        sample: Tensor,
        timestep: Tensor,
        sra_mask: Tensor | None,
        *,
        sra: bool,
        encoder_hidden_states: Tensor | None,
    ) -> Tensor: ...


class TorchUNetBackend:
    """Eager diffusers UNet with SRA installed on its self-attention layers."""

    name = "torch"

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self.state: SRAState = install_sra(unet)

    def __call__(
        self,
        sample: Tensor,
        timestep: Tensor,
        sra_mask: Tensor | None,
        *,
        sra: bool,
        encoder_hidden_states: Tensor | None,
    ) -> Tensor:
        kwargs = {} if encoder_hidden_states is None else {"encoder_hidden_states": encoder_hidden_states}
        with self.state.use(sra_mask if sra else None, enabled=sra):
            return self.unet(sample, timestep, **kwargs, return_dict=False)[0]


@dataclass
class Conditioning:
    """Per-image conditioning, built once per erase call.

    Attributes:
        channels: mask and masked-image channels at the latent grid, (b, C_c, h, w).
        mask: the latent-grid mask (b, h, w) bool (any-pixel rule; SRA and re-imposition use it).
        prompt_embeds: text embeddings, (b, L, D) or (2b, L, D) with guidance; None for pixel models.
        guidance_scale: classifier-free guidance weight (1 = off).
        fill: the hole-filled image (b, 3, H, W) in [−1, 1] for residual-space models, else None.
    """

    channels: Tensor
    mask: Tensor
    prompt_embeds: Tensor | None = None
    guidance_scale: float = 1.0
    fill: Tensor | None = None


class ErasureModel:
    """Base class: see the module docstring. Subclasses set the attributes below."""

    family: str
    name: str
    native_size: int | None  # pixels; windows are resized so their longer side equals this (None: kept)
    size_multiple: int  # pixels; image sides must be multiples of this (the pipeline pads)
    schedule: ScheduleConfig
    backend: UNetBackend
    device: torch.device
    dtype: torch.dtype
    clip_x0: float | None = None  # the sampler clips x̂_0 to [−clip_x0, clip_x0] (None: no clipping)

    def x0_bounds(self, cond: Conditioning) -> float | tuple[Tensor, Tensor] | None:
        """What the sampler clips x̂_0 to for this window (``clip_x0`` of :func:`eradiff.core.ddim_step`)."""
        return self.clip_x0

    reimpose_known_default: bool = False  # re-impose the known region each step when EraseOptions leaves it None
    crop_trigger: int = 800  # images with a longer side up to this are erased whole (IOPaint's default)
    default_steps: int = 20  # sampling steps when the caller does not choose (EraseOptions.steps=None)

    def encode(self, x: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Images (b, 3, H, W) in [−1, 1] → the denoised space (b, C, h, w).

        ``cond`` (from :meth:`condition` on the same window and mask) is required by models whose
        space depends on it (residual pixel models) and ignored by the others.
        """
        raise NotImplementedError

    def decode(self, z: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Inverse of :meth:`encode` → images (b, 3, H, W) in [−1, 1] (not clamped)."""
        raise NotImplementedError

    def latent_mask(self, M: Tensor) -> Tensor:
        """Image mask (b, H, W) bool → mask at the latent grid (b, h, w) bool, any-pixel rule."""
        raise NotImplementedError

    def condition(self, x: Tensor, M: Tensor, *, prompt: str = "", guidance_scale: float = 1.0) -> Conditioning:
        """Build the conditioning for images x (b, 3, H, W) in [−1, 1] with masks M (b, H, W)."""
        raise NotImplementedError

    def model_output(self, z_t: Tensor, t: Tensor, cond: Conditioning, *, sra: bool = True) -> Tensor:
        """ε_θ or v_θ at (z_t, t) with the conditioning concatenated; classifier-free guidance if set."""
        sample = torch.cat([z_t, cond.channels.to(z_t.dtype)], dim=1)
        if cond.prompt_embeds is not None and cond.guidance_scale != 1.0:
            sample = torch.cat([sample, sample])
            t2 = torch.cat([t, t])
            mask = torch.cat([cond.mask, cond.mask])
            out = self.backend(sample, t2, mask, sra=sra, encoder_hidden_states=cond.prompt_embeds)
            uncond, text = out.chunk(2)
            return uncond + cond.guidance_scale * (text - uncond)
        return self.backend(sample, t, cond.mask, sra=sra, encoder_hidden_states=cond.prompt_embeds)

    def config_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def checkpoint_config(self) -> dict[str, Any]:
        """The ``eradiff_config`` stored with a single-file checkpoint (raises if it cannot be saved)."""
        return self.config_dict()

    def fill_without_sampling(self, x: Tensor, M: Tensor, *, seed: int) -> Tensor | None:
        """A fill computed without the sampler (classical methods), (b, 3, H, W) in [−1, 1]; None for
        a diffusion model, which the erase pipeline samples."""
        return None

    def sra_scope(self, mask: Tensor | None, *, enabled: bool) -> AbstractContextManager[None]:
        """Context in which the eager UNet's self-attention layers use SRA with ``mask`` (training).

        Raises:
            TypeError: the UNet runs outside torch (an exported backend), so there is nothing to set.
        """
        state = getattr(self.backend, "state", None)
        if not isinstance(state, SRAState):
            raise TypeError(f"the {getattr(self.backend, 'name', 'external')} backend has no SRA state to set")
        return state.use(mask, enabled=enabled)

    def prepare_for_training(self, device: torch.device, *, frozen_dtype: torch.dtype = torch.float32) -> None:
        """Move what training does not optimise to ``device`` (frozen parts in ``frozen_dtype``).

        The UNet is left to the training loop (accelerate places and wraps it).
        """
        self.device = device

    # -- the family's constructors (see eradiff.models.registry) ----------------------------------

    @classmethod
    def from_checkpoint_config(
        cls, config: dict[str, Any], *, path: Path, load: Callable[[str], ErasureModel]
    ) -> ErasureModel:
        """The model a single-file checkpoint's ``eradiff_config`` describes; its UNet weights are
        loaded afterwards by the caller.

        Args:
            config: the checkpoint's ``eradiff_config`` object.
            path: the checkpoint file (named in messages; relative base models are also looked up
                in its folder).
            load: loads another model spec (a latent checkpoint's base model).
        """
        raise NotImplementedError

    @classmethod
    def around_unet(
        cls, meta: dict[str, Any], unet: torch.nn.Module, *, where: str, base: str | None, offline: bool
    ) -> ErasureModel:
        """The model of an exported artifact (metadata ``meta``), around ``unet`` (built on the meta
        device for its config; the caller swaps in the artifact's backend)."""
        raise NotImplementedError

    # -- training (eradiff.train builds a run's model through these) ------------------------------
    # ``config`` below is the training config's ``model:`` section (eradiff.train.config.ModelConfig);
    # Keys with a non-null default (factor, fill, name, …) are read by any family that wants them.

    training_keys: tuple[str, ...] = ()  # the optional (null-default) model.* keys this family reads
    required_training_keys: tuple[str, ...] = ()  # model.* keys this family needs

    @classmethod
    def for_training(cls, config: Any, *, crop_size: int) -> ErasureModel:
        """The model a training run starts from (CPU, fp32; the caller makes the UNet trainable).

        Raises:
            ValueError: a config the family cannot build (one line naming the ``model.*`` key).
        """
        raise NotImplementedError

    @classmethod
    def training_size_multiple(cls, config: Any) -> int:
        """What the crop size (and the native window size) must be a multiple of.

        Raises:
            ValueError: a UNet config too malformed to say.
        """
        return 8

    @classmethod
    def training_fill(cls, config: Any) -> str | None:
        """The classical hole fill the data workers precompute for each pair, or None."""
        return None


# --------------------------------------------------------------------------------------------
# Pixel-space family (the built-in default model)
# --------------------------------------------------------------------------------------------

FillKind = Literal["telea", "patchmatch", "zeros"]
FILL_KINDS: tuple[str, ...] = ("telea", "patchmatch", "zeros")


def classical_fill(x: Tensor, M: Tensor, *, method: str = "telea", radius: int = 5, seed: int = 0) -> Tensor:
    """Fill the masked pixels of images in [−1, 1] with a classical method (outside unchanged).

    The fill depends on the known region only (:func:`eradiff.baselines.fill_from_known`), so an
    object under the mask never leaks into it.

    Args:
        x: images (b, 3, H, W) in [−1, 1].
        M: masks (b, H, W) bool, True = hole.
        method: ``"telea"`` (OpenCV) or ``"patchmatch"`` (pypatchmatch, seeded), see
            :func:`eradiff.baselines.inpaint_classical`.
        radius: the method's radius (Telea neighbourhood; PatchMatch patch size).
        seed: PatchMatch's seed (same seed and input ⇒ same fill).
    """
    from eradiff.baselines import fill_from_known

    out = x.clone()
    for i in range(x.shape[0]):
        m = M[i].cpu().numpy().astype(bool)
        if not m.any():
            continue
        img = ((x[i].detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        filled = fill_from_known(img, m, method=method, radius=radius, seed=seed)  # type: ignore[arg-type]
        f = torch.from_numpy(filled).permute(2, 0, 1).to(x.device, x.dtype) / 127.5 - 1
        out[i] = torch.where(M[i][None].to(x.device), f, x[i])
    return out


@dataclass(frozen=True)
class PixelModelConfig:
    """Everything needed to rebuild a :class:`PixelInpaintModel` (stored with the weights)."""

    unet: dict[str, Any]
    schedule: dict[str, Any] = field(default_factory=lambda: ScheduleConfig(
        beta_schedule="scaled_linear", prediction_type="v_prediction", timestep_spacing="trailing", steps_offset=0,
        set_alpha_to_one=True).to_dict())  # fmt: skip
    factor: int = 4
    fill: str = "telea"
    space: str = "pixel"
    residual_scale: float = 1.0
    native_size: int = 256
    name: str = "eradiff-pixel"
    family: str = "pixel"
    default_steps: int = 20  # the sampler steps this model was validated with (erase's default)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PixelModelConfig:
        data = json.loads(text)
        if data.get("family") != "pixel":
            raise ValueError(f"not a pixel-family config (family={data.get('family')!r})")
        return cls(**data)


def _pixel_config(data: dict[str, Any], *, where: str) -> PixelModelConfig:
    try:
        return PixelModelConfig.from_json(json.dumps(data))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{where}: malformed pixel-model config ({first_line(exc)})") from exc


def default_pixel_unet_config(factor: int = 4) -> dict[str, Any]:
    """The UNet2DModel configuration of the built-in default model (``configs/default-stage1.yaml``).

    ~11 M parameters: four levels of 48/96/160/224 channels on the f-times pixel-unshuffled image,
    one ResNet per level, self-attention (SRA) at the two lowest levels.
    """
    c = 3 * factor * factor
    return dict(
        sample_size=64,
        in_channels=c + factor * factor + c,
        out_channels=c,
        block_out_channels=(48, 96, 160, 224),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        attention_head_dim=32,
        norm_num_groups=16,
        add_attention=True,
    )


class PixelInpaintModel(ErasureModel):
    """UNet2DModel on pixel-unshuffled images; see the module docstring."""

    family = "pixel"
    reimpose_known_default = True  # no VAE: the known pixels are exact, so re-imposing them is free

    def __init__(self, config: PixelModelConfig, unet: torch.nn.Module | None = None) -> None:
        from diffusers import UNet2DModel

        self.config = config
        self.name = config.name
        self.factor = config.factor
        self.fill: FillKind = config.fill  # type: ignore[assignment]
        if self.fill not in FILL_KINDS:
            raise ValueError(f"fill={self.fill!r} is not valid; choose one of {', '.join(map(repr, FILL_KINDS))}")
        if config.space not in ("pixel", "residual"):
            raise ValueError(f"space={config.space!r} is not valid; choose one of 'pixel', 'residual'")
        if not config.residual_scale > 0 or (config.space == "pixel" and config.residual_scale != 1.0):
            raise ValueError(f"residual_scale must be > 0 (and 1 for space='pixel'), got {config.residual_scale}")
        self.space = config.space
        self.residual_scale = float(config.residual_scale)
        # residual: see x0_bounds for the exact, per-pixel range
        self.clip_x0 = 1.0 if self.space == "pixel" else 2.0 / self.residual_scale
        self.schedule = ScheduleConfig(**config.schedule)
        if unet is None:
            unet = UNet2DModel(**config.unet)
            if self.space == "residual":  # a fresh residual model starts as "the fill": output 0
                torch.nn.init.zeros_(unet.conv_out.weight)
                torch.nn.init.zeros_(unet.conv_out.bias)
        self.unet = unet
        levels = len(self.unet.config.block_out_channels)
        self.native_size = config.native_size
        self.crop_trigger = config.native_size
        if config.default_steps < 1:
            raise ValueError(f"default_steps must be ≥ 1, got {config.default_steps}")
        self.default_steps = int(config.default_steps)
        self.size_multiple = self.factor * 2 ** (levels - 1)
        self.backend = TorchUNetBackend(self.unet)
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PixelInpaintModel:
        self.device = torch.device(device)
        self.dtype = dtype or self.dtype
        self.unet.to(self.device, self.dtype)
        return self

    def _fill(self, cond: Conditioning | None) -> Tensor:
        if cond is None or cond.fill is None:
            raise ValueError("a residual-space model needs cond=model.condition(x, M) to encode or decode")
        return cond.fill

    def encode(self, x: Tensor, cond: Conditioning | None = None) -> Tensor:
        if self.space == "residual":
            x = (x - self._fill(cond).to(x.dtype)) / self.residual_scale
        return F.pixel_unshuffle(x, self.factor)

    def decode(self, z: Tensor, cond: Conditioning | None = None) -> Tensor:
        x = F.pixel_shuffle(z, self.factor)
        if self.space == "residual":
            x = self._fill(cond).to(x.dtype) + self.residual_scale * x
        return x

    def latent_mask(self, M: Tensor) -> Tensor:
        return core.downsample_mask(M, factor=self.factor)

    def x0_bounds(self, cond: Conditioning) -> float | tuple[Tensor, Tensor] | None:
        """[−1, 1] in pixel space; in residual space the same pixel range, [−1 − fill, 1 − fill]/s."""
        if self.space == "pixel":
            return 1.0
        fill = F.pixel_unshuffle(self._fill(cond).float(), self.factor)
        return (-1.0 - fill) / self.residual_scale, (1.0 - fill) / self.residual_scale

    def hole_fill(self, x: Tensor, M: Tensor) -> Tensor:
        """The model's classical fill of the holes of x (b, 3, H, W) in [−1, 1]; outside unchanged."""
        if self.fill == "zeros":
            return x.masked_fill(M[:, None], 0.0)
        return classical_fill(x, M, method=self.fill)

    def condition(
        self, x: Tensor, M: Tensor, *, prompt: str = "", guidance_scale: float = 1.0, fill: Tensor | None = None
    ) -> Conditioning:
        """As :meth:`ErasureModel.condition`; ``fill`` is a precomputed :meth:`hole_fill` of (x, M)
        (training computes it in its data workers), else it is computed here."""
        if prompt:
            raise ValueError("the pixel family has no text encoder; prompt must be empty")
        hole = M[:, None]
        filled = self.hole_fill(x, M) if fill is None else fill.to(x.device, x.dtype)
        mask_ch = F.pixel_unshuffle(hole.to(x.dtype), self.factor)
        channels = torch.cat([mask_ch, F.pixel_unshuffle(filled, self.factor)], dim=1)
        return Conditioning(channels=channels, mask=self.latent_mask(M), fill=filled)

    @classmethod
    def from_checkpoint_config(
        cls, config: dict[str, Any], *, path: Path, load: Callable[[str], ErasureModel]
    ) -> ErasureModel:
        from eradiff.models.loading import schedule_from_diffusers

        where = repr(str(path))
        model = cls(_pixel_config(config, where=where))
        schedule_from_diffusers(model.config.schedule, where=f"{where} schedule")
        return model

    @classmethod
    def around_unet(
        cls, meta: dict[str, Any], unet: torch.nn.Module, *, where: str, base: str | None, offline: bool
    ) -> ErasureModel:
        return cls(_pixel_config(meta["config"], where=where), unet=unet)

    training_keys = ("unet", "schedule", "init", "init_grow")

    @classmethod
    def for_training(cls, config: Any, *, crop_size: int) -> ErasureModel:
        """Freshly initialised from ``config`` (seed the global RNG first), then ``model.init`` loaded."""
        unet = dict(config.unet) if config.unet is not None else default_pixel_unet_config(config.factor)
        schedule = PixelModelConfig.__dataclass_fields__["schedule"].default_factory()
        pixel = PixelModelConfig(
            unet=unet,
            schedule=ScheduleConfig(**{**schedule, **(config.schedule or {})}).to_dict(),
            factor=config.factor,
            fill=config.fill,
            space=config.space,
            residual_scale=config.residual_scale,
            native_size=config.native_size or crop_size,
            name=config.name,
            default_steps=config.default_steps,
        )
        try:
            model = cls(pixel)
        except (TypeError, ValueError) as e:
            raise ValueError(f"model.unet: diffusers refused the UNet2DModel config ({e})") from None
        f = config.factor
        want = (2 * 3 * f * f + f * f, 3 * f * f)
        got = (model.unet.config.in_channels, model.unet.config.out_channels)
        if got != want:
            raise ValueError(
                f"model.unet has in/out channels {got[0]}/{got[1]}; factor {f} needs {want[0]}/{want[1]} "
                f"(noisy 3f², mask f², filled image 3f² → 3f²)"
            )
        if config.init_grow and config.init is None:
            raise ValueError("model.init_grow needs model.init (the file to grow from)")
        if config.init is not None:
            _load_init(model, config.init, grow=bool(config.init_grow))
        return model

    @classmethod
    def training_size_multiple(cls, config: Any) -> int:
        unet = config.unet or default_pixel_unet_config(config.factor)
        levels = len(unet.get("block_out_channels", ()))
        if levels < 1:
            raise ValueError("model.unet.block_out_channels must list at least one level")
        return config.factor * 2 ** (levels - 1)

    @classmethod
    def training_fill(cls, config: Any) -> str | None:
        return None if config.fill == "zeros" else config.fill

    def config_dict(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["unet"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(self.unet.config).items()
                       if not k.startswith("_")}  # fmt: skip
        return cfg


def _load_init(model: PixelInpaintModel, path: str, *, grow: bool = False) -> None:
    """Start ``model`` from an exported pixel-family file (``model.init``); ValueError if it does not fit.

    With ``grow`` (``model.init_grow``) the UNet may hold whole attention blocks the file lacks
    (e.g. ``DownBlock2D`` → ``AttnDownBlock2D`` at a finer level): see :func:`grown_state`.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from eradiff.models.loading import load_fitting_weights

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"model.init={path!r}: no such file")
    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata() or {}
    family = json.loads(meta.get("eradiff_config", "{}")).get("family")
    if family != "pixel":
        raise ValueError(f"model.init={path!r} is not a pixel-family eradiff checkpoint (family={family!r})")
    state = load_file(str(p))
    if grow:
        try:
            state = grown_state(model.unet, state)
        except ValueError as e:
            raise ValueError(f"model.init={path!r} with model.init_grow: {e}") from None
    mismatch = load_fitting_weights(model.unet, state)
    if mismatch is not None:
        raise ValueError(f"model.init={path!r} does not fit model.unet (first mismatch: {mismatch})")


def grown_state(unet: torch.nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` completed with the attention blocks ``unet`` has and ``state`` lacks, as identities.

    Each missing key must belong to a diffusers ``Attention`` block that is missing as a whole and
    adds its output to its input unscaled (``residual_connection``, ``rescale_output_factor`` 1,
    as in ``AttnDownBlock2D``/``AttnUpBlock2D``). Such a block keeps ``unet``'s fresh weights except
    its output projection ``to_out.0``, which is zeroed: it then returns its input exactly, so the
    grown UNet computes the same function as the one ``state`` came from (to float rounding), and
    training starts there.

    Raises:
        ValueError: a missing key outside such a block, or a block only partly present in ``state``.
    """
    from diffusers.models.attention_processor import Attention

    reference = unet.state_dict()
    missing = set(reference) - set(state)
    out = dict(state)
    for name, module in unet.named_modules():
        if not isinstance(module, Attention):
            continue
        keys = {k for k in reference if k.startswith(name + ".")}
        if not keys & missing:
            continue
        if keys - missing:
            raise ValueError(f"attention block {name} is only partly in the file ({sorted(keys - missing)[0]})")
        if not module.residual_connection or module.rescale_output_factor != 1.0:
            raise ValueError(f"attention block {name} does not add its output to its input, so it cannot start as 0")
        for k in keys:
            out[k] = torch.zeros_like(reference[k]) if k.startswith(f"{name}.to_out.0.") else reference[k].clone()
        missing -= keys
    if missing:
        raise ValueError(f"{sorted(missing)[0]} is missing from the file and is not in an attention block")
    return out


# --------------------------------------------------------------------------------------------
# Latent family (Stable Diffusion 2 inpainting class)
# --------------------------------------------------------------------------------------------


class LatentInpaintModel(ErasureModel):
    """SD2-inpainting-class model: 9-channel UNet2DConditionModel + AutoencoderKL + CLIP text."""

    family = "latent"

    def __init__(
        self,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        schedule: ScheduleConfig,
        *,
        tokenizer: Any = None,
        text_encoder: Any = None,
        prompt_embeds: dict[str, Tensor] | None = None,
        name: str = "sd-inpaint",
        source: str = "",
    ) -> None:
        if unet.config.in_channels != 9:
            raise ValueError(f"an inpainting UNet needs 9 input channels, this one has {unet.config.in_channels}")
        self.unet, self.vae = unet, vae
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.schedule = schedule
        self.name, self.source = name, source
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.size_multiple = self.vae_scale
        self.native_size = int(unet.config.sample_size) * self.vae_scale
        self._prompt_cache: dict[str, Tensor] = dict(prompt_embeds or {})
        self.backend = TorchUNetBackend(unet)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        if "" not in self._prompt_cache:
            self._prompt_cache[""] = self.encode_prompt("")

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> LatentInpaintModel:
        self.device = torch.device(device)
        self.dtype = dtype or self.dtype
        self.unet.to(self.device, self.dtype)
        self.vae.to(self.device, self.dtype)
        self._prompt_cache = {k: v.to(self.device, self.dtype) for k, v in self._prompt_cache.items()}
        return self

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> Tensor:
        """The text embedding of ``prompt`` (1, L, D), computed once and cached."""
        if prompt in self._prompt_cache:
            return self._prompt_cache[prompt]
        if self.tokenizer is None or self.text_encoder is None:
            raise ValueError(f"prompt {prompt!r} needs a text encoder, and this model was loaded without one")
        ids = self.tokenizer(
            prompt, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids  # fmt: skip
        emb = self.text_encoder(ids.to(self.text_encoder.device))[0]
        self._prompt_cache[prompt] = emb.to(self.device, self.dtype)
        return self._prompt_cache[prompt]

    def encode(self, x: Tensor, cond: Conditioning | None = None) -> Tensor:
        return self.vae.encode(x.to(self.vae.dtype)).latent_dist.mode() * self.scaling_factor

    def decode(self, z: Tensor, cond: Conditioning | None = None) -> Tensor:
        # the frozen VAE may run in another dtype than the UNet (mixed-precision training previews)
        return self.vae.decode((z / self.scaling_factor).to(self.vae.dtype), return_dict=False)[0]

    def latent_mask(self, M: Tensor) -> Tensor:
        return core.downsample_mask(M, factor=self.vae_scale)

    def condition(self, x: Tensor, M: Tensor, *, prompt: str = "", guidance_scale: float = 1.0) -> Conditioning:
        b, _, H, W = x.shape
        h, w = -(-H // self.vae_scale), -(-W // self.vae_scale)
        hole = M[:, None].to(x.dtype)
        mask_ch = F.interpolate(hole, size=(h, w))  # as diffusers' inpainting pipeline (nearest)
        masked = self.encode(x * (1 - hole))
        emb = self.encode_prompt(prompt).expand(b, -1, -1)
        if guidance_scale != 1.0:
            emb = torch.cat([self.encode_prompt("").expand(b, -1, -1), emb])
        return Conditioning(
            channels=torch.cat([mask_ch.to(masked.dtype), masked], dim=1),
            mask=self.latent_mask(M),
            prompt_embeds=emb,
            guidance_scale=guidance_scale,
        )

    def config_dict(self) -> dict[str, Any]:
        return {"family": "latent", "name": self.name, "base_model": self.source, "schedule": self.schedule.to_dict()}

    def checkpoint_config(self) -> dict[str, Any]:
        if not self.source:
            raise ValueError("a latent-family model needs a source (base_model) to be saved as a single file")
        return self.config_dict()

    training_keys = ("base_model",)
    required_training_keys = ("base_model",)

    @classmethod
    def for_training(cls, config: Any, *, crop_size: int) -> ErasureModel:
        """Loaded from ``model.base_model`` (safetensors only); VAE and text encoder stay frozen."""
        from eradiff.models.loading import load_model

        return load_model(config.base_model)

    def prepare_for_training(self, device: torch.device, *, frozen_dtype: torch.dtype = torch.float32) -> None:
        """The VAE frozen on ``device`` in ``frozen_dtype``; the empty-prompt embedding stays cached and
        the text encoder is dropped (training conditions on the empty prompt only)."""
        self.vae.to(device)
        if frozen_dtype != torch.float32:
            self.vae.to(dtype=frozen_dtype)
        self.vae.requires_grad_(False).eval()
        if self.text_encoder is not None:
            self.text_encoder.requires_grad_(False).eval()
        self._prompt_cache = {k: v.to(device) for k, v in self._prompt_cache.items()}
        self.text_encoder = None
        self.device = device

    @classmethod
    def from_checkpoint_config(
        cls, config: dict[str, Any], *, path: Path, load: Callable[[str], ErasureModel]
    ) -> ErasureModel:
        """The base model (``base_model``: a diffusers folder or hub id) with the checkpoint's name and
        schedule; a relative base is tried against the working directory, then the checkpoint's folder."""
        from eradiff.models.loading import schedule_from_diffusers

        where = repr(str(path))
        base = config.get("base_model")
        if not isinstance(base, str) or not base:
            raise ModelLoadError(f"{where}: a latent-family checkpoint must name its base_model")
        if not Path(base).expanduser().exists() and (path.parent / base).exists():
            base = str(path.parent / base)
        if Path(base).suffix.lower() == ".safetensors":
            raise ModelLoadError(f"{where}: base_model {base!r} must be a diffusers folder or hub id")
        model = load(base)
        if not isinstance(model, LatentInpaintModel):
            raise ModelLoadError(f"{where}: base_model {base!r} is not a latent-family model")
        if "schedule" in config:
            model.schedule = schedule_from_diffusers(config["schedule"], where=f"{where} schedule")
        model.name = str(config.get("name") or path.stem)
        return model

    @classmethod
    def around_unet(
        cls, meta: dict[str, Any], unet: torch.nn.Module, *, where: str, base: str | None, offline: bool
    ) -> ErasureModel:
        """The VAE (and, for a prompt-input graph, tokenizer and text encoder) of the base diffusers
        folder (``base``, else the one recorded at export) around ``unet``."""
        from diffusers import AutoencoderKL

        from eradiff.models.loading import set_offline

        root = str(base) if base is not None else meta["config"].get("base_model") or ""
        if not root:
            raise ModelLoadError(
                f"{where} is a latent-family model: name the base diffusers folder (--base) for its VAE"
            )
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
            detail = first_line(exc)
            raise ModelLoadError(f"{where}: cannot load the VAE/text parts from base {root!r}: {detail}") from exc
        vae.eval().requires_grad_(False)
        schedule = ScheduleConfig(**meta["schedule"])
        # A constant-prompt graph needs no text encoder; the embedding placeholder only satisfies the
        # family's "" cache (the graph ignores it) and any other prompt raises.
        prompt_embeds = None
        if text_encoder is None:
            dim = int(meta["unet_config"].get("cross_attention_dim") or 1)
            prompt_embeds = {"": torch.zeros(1, 1, dim)}
        return cls(
            unet, vae, schedule, tokenizer=tokenizer, text_encoder=text_encoder, prompt_embeds=prompt_embeds,
            name=meta["name"], source=root,
        )  # fmt: skip
