"""Load an erasure model from a spec, and save the single-file checkpoints it reads.

| spec                                   | what is loaded                                               |
| -------------------------------------- | ------------------------------------------------------------ |
| ``None`` or ``"default"``              | the built-in model, ``eradiff/weights/default.safetensors``  |
| ``telea``, ``ns``, ``biharmonic``, ``patchmatch`` | a classical fill (:mod:`eradiff.models.classical`) |
| a folder with ``model_index.json``     | a Stable-Diffusion-2-inpainting-class diffusers folder       |
| a ``.safetensors`` file                | an eradiff checkpoint (format below)                         |
| ``owner/name``                         | a Hugging Face hub repository, loaded like a folder          |

Single-file checkpoint (written by :func:`save_checkpoint` / :func:`save_pixel_model`, and by
``eradiff train``): a safetensors file whose tensors are the UNet's ``state_dict`` (diffusers key
names, usually fp16; cast back to the model dtype on load) and whose metadata holds
``eradiff_config``, a JSON object:

* pixel family: the full :class:`~eradiff.models.family.PixelModelConfig` (``"family": "pixel"``,
  the ``UNet2DModel`` config, schedule, unshuffle factor, fill, native size);
* latent family: ``{"family": "latent", "base_model": SPEC, "schedule": {...}, "name": ...}``;
  the VAE, text encoder, tokenizer and UNet architecture come from ``base_model`` (a diffusers
  folder or hub id; a relative path is tried against the working directory, then against the
  checkpoint's folder), and the UNet weights from the file.

Only safetensors is ever read (``use_safetensors=True``): no pickle.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from eradiff.core.schedules import ScheduleConfig
from eradiff.errors import ModelLoadError, first_line
from eradiff.models.family import ErasureModel, LatentInpaintModel, PixelInpaintModel
from eradiff.models.registry import family_class
from eradiff.options import CLASSICAL_MODELS, DEVICES

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"
CONFIG_KEY = "eradiff_config"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → cuda if available, else mps if available, else cpu; other names are checked.

    Raises:
        ValueError: for an unknown name, or a device this machine does not have.
    """
    if name not in DEVICES:
        raise ValueError(f"device={name!r} is not valid; choose one of {', '.join(map(repr, DEVICES))}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU on this machine")
    if name == "mps" and not has_mps:
        raise ValueError("device 'mps' was asked for, but MPS is not available on this machine")
    return torch.device(name)


def set_offline() -> None:
    """Forbid Hugging Face hub downloads in this process (env variables and the live constant)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        pass


def load_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    offline: bool = False,
) -> ErasureModel:
    """Load an erasure model (see the module docstring for the specs), in eval mode on ``device``.

    Args:
        spec: ``None``/``"default"``, a diffusers folder, an eradiff ``.safetensors`` checkpoint or
            a hub id.
        device: torch device for the weights.
        dtype: floating dtype of the weights (fp16 checkpoints are cast to it).
        offline: never contact the hub (sets ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` and loads
            from the local cache only).

    Returns:
        A :class:`~eradiff.models.family.ErasureModel` (pixel or latent family).

    Raises:
        ModelLoadError: missing, malformed or unknown model, or not an inpainting model; the
            message is one line.
    """
    if offline:
        set_offline()
    text = "default" if spec is None else str(spec)
    try:
        with _quiet_libraries():
            model = _load(text, offline=offline)
            model.to(device, dtype)
    except ModelLoadError:
        raise
    except Exception as exc:  # diffusers/transformers/safetensors raise many kinds
        raise ModelLoadError(f"cannot load model {text!r}: {first_line(exc)}") from exc
    for module in _modules(model):
        module.eval()
        module.requires_grad_(False)
    return model


def _load(spec: str, *, offline: bool) -> ErasureModel:
    if spec in CLASSICAL_MODELS:
        from eradiff.models.classical import ClassicalFillModel

        return ClassicalFillModel(spec)
    if spec == "default":
        if not DEFAULT_MODEL_PATH.is_file():
            raise ModelLoadError(
                "the built-in default model is not shipped yet; pass --model with a diffusers SD2-inpainting "
                "folder, an eradiff .safetensors checkpoint or a hub id"
            )
        return _load_checkpoint(DEFAULT_MODEL_PATH, offline=offline)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(f"folder {spec!r} is not a diffusers model folder (no model_index.json)")
        return _load_diffusers(str(path), offline=offline)
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ModelLoadError(f"model file {spec!r} is not a .safetensors checkpoint (pickle files are not loaded)")
        return _load_checkpoint(path, offline=offline)
    if path.suffix.lower() == ".safetensors" or not _HUB_ID.match(spec):
        raise ModelLoadError(f"model {spec!r}: no such file or folder, and not a hub id (owner/name)")
    return _load_diffusers(spec, offline=offline)


def _load_diffusers(root: str, *, offline: bool) -> LatentInpaintModel:
    """An SD2-inpainting-class diffusers folder or hub repo (safetensors weights only)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    kw: dict[str, Any] = {"local_files_only": True} if offline else {}
    index = _read_model_index(root, kw)
    for part in ("unet", "vae", "scheduler", "text_encoder", "tokenizer"):
        if part not in index:
            raise ModelLoadError(f"model {root!r} has no {part!r} component; an SD2-inpainting-class model is needed")
    unet_config = UNet2DConditionModel.load_config(root, subfolder="unet", **kw)
    if unet_config.get("in_channels") != 9:
        raise ModelLoadError(
            f"model {root!r} is not an inpainting model: its UNet has {unet_config.get('in_channels')} input "
            "channels, an SD2-inpainting-class UNet has 9"
        )
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", use_safetensors=True, **kw)
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", use_safetensors=True, **kw)
    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **kw)
    text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", use_safetensors=True, **kw)
    text_encoder.eval()
    scheduler_config = DDIMScheduler.load_config(root, subfolder="scheduler", **kw)
    schedule = schedule_from_diffusers(scheduler_config, where=f"{root!r} scheduler")
    name = Path(root).name if Path(root).exists() else root
    return LatentInpaintModel(
        unet, vae, schedule, tokenizer=tokenizer, text_encoder=text_encoder, name=name, source=str(root)
    )


def _read_model_index(root: str, kw: dict[str, Any]) -> dict[str, Any]:
    local = Path(root)
    if local.is_dir():
        file = local / "model_index.json"
    else:
        from huggingface_hub import hf_hub_download

        file = Path(hf_hub_download(root, "model_index.json", **kw))
    try:
        index = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model {root!r}: model_index.json is not valid JSON ({first_line(exc)})") from exc
    if not isinstance(index, dict):
        raise ModelLoadError(f"model {root!r}: model_index.json is not a JSON object")
    return index


def schedule_from_diffusers(config: dict[str, Any], *, where: str = "scheduler") -> ScheduleConfig:
    """The :class:`ScheduleConfig` of a diffusers scheduler config (DDIM, PNDM, DDPM, Euler…).

    Raises:
        ModelLoadError: for a beta schedule or prediction type the sampler does not implement.
    """
    schedule = ScheduleConfig.from_diffusers(config)
    if config.get("trained_betas") is not None:
        raise ModelLoadError(f"{where}: explicit trained_betas are not supported")
    if schedule.beta_schedule not in _BETA_SCHEDULES:
        raise ModelLoadError(f"{where}: beta_schedule {schedule.beta_schedule!r} is not supported")
    if schedule.prediction_type not in ("epsilon", "v_prediction"):
        raise ModelLoadError(f"{where}: prediction_type {schedule.prediction_type!r} is not supported")
    if schedule.timestep_spacing not in ("leading", "trailing", "linspace"):
        raise ModelLoadError(f"{where}: timestep_spacing {schedule.timestep_spacing!r} is not supported")
    return schedule


def read_checkpoint_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``eradiff_config`` metadata object of a single-file checkpoint.

    Raises:
        ModelLoadError: if the file is not a safetensors file or has no valid ``eradiff_config``.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:
        raise ModelLoadError(f"{str(path)!r} is not a valid safetensors file ({first_line(exc)})") from exc
    if CONFIG_KEY not in metadata:
        raise ModelLoadError(f"{str(path)!r} has no {CONFIG_KEY!r} metadata; it is not an eradiff checkpoint")
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{str(path)!r}: {CONFIG_KEY} metadata is not valid JSON ({first_line(exc)})") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{str(path)!r}: {CONFIG_KEY} metadata is not a JSON object")
    family_class(config.get("family"), where=repr(str(path)))
    return config


def _load_checkpoint(path: Path, *, offline: bool) -> ErasureModel:
    from safetensors.torch import load_file

    config = read_checkpoint_config(path)
    state = load_file(str(path))
    cls = family_class(config["family"], where=repr(str(path)))
    model = cls.from_checkpoint_config(config, path=path, load=lambda spec: _load(spec, offline=offline))
    mismatch = load_fitting_weights(model.unet, state)  # type: ignore[attr-defined]
    if mismatch is not None:
        raise ModelLoadError(f"{str(path)!r}: weights do not match the model config ({mismatch})")
    return model


def weight_mismatch(reference: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """None when ``state`` has exactly the keys and shapes of ``reference``; else the first mismatch
    in words (``missing [...]``, ``unexpected [...]`` or ``weight K has shape …, the config needs …``)."""
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        return f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
    for key, value in state.items():
        if value.shape != reference[key].shape:
            return f"weight {key} has shape {tuple(value.shape)}, the config needs {tuple(reference[key].shape)}"
    return None


def load_fitting_weights(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Load ``state`` into ``module`` (cast to its dtypes) if it fits exactly; else return the
    mismatch (:func:`weight_mismatch`) and leave the module unchanged. The one fit-checked weight
    load of the package: model checkpoints, ``model.init`` and training resume use it."""
    reference = module.state_dict()
    mismatch = weight_mismatch(reference, state)
    if mismatch is None:
        module.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()}, strict=True)
    return mismatch


def save_checkpoint(model: ErasureModel, path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float16) -> None:
    """Write a model's UNet and config as one safetensors file (atomically; format in module doc).

    Args:
        model: a pixel- or latent-family model (a latent model's ``source`` becomes ``base_model``).
        path: destination ``.safetensors`` file.
        dtype: floating dtype of the stored weights (fp16 halves the file; loading casts back).
    """
    from safetensors.torch import save_file

    config = model.checkpoint_config()
    unet: torch.nn.Module = model.unet  # type: ignore[attr-defined]
    tensors = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous().clone()
        for k, v in unet.state_dict().items()
    }
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={CONFIG_KEY: json.dumps(config, sort_keys=True), "format": "pt"})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_pixel_model(
    model: PixelInpaintModel, path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float16
) -> None:
    """Write a pixel-family model as a single safetensors file that :func:`load_model` reads back."""
    if not isinstance(model, PixelInpaintModel):
        raise TypeError(f"save_pixel_model needs a PixelInpaintModel, got {type(model).__name__}")
    save_checkpoint(model, path, dtype=dtype)


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Silence diffusers/transformers info logs and progress bars while loading (errors still raise).

    transformers is only needed by latent-family models; the built-in pixel model loads without it.
    """
    from diffusers.utils import logging as diffusers_logging

    loggers = [diffusers_logging]
    try:
        from transformers.utils import logging as transformers_logging

        loggers.append(transformers_logging)
    except ImportError:
        pass
    levels = [lg.get_verbosity() for lg in loggers]
    for lg in loggers:
        lg.set_verbosity_error()
        lg.disable_progress_bar()
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.set_verbosity(level)
            lg.enable_progress_bar()


def _modules(model: ErasureModel) -> list[torch.nn.Module]:
    names = ("unet", "vae", "text_encoder")
    return [m for m in (getattr(model, n, None) for n in names) if isinstance(m, torch.nn.Module)]


__all__ = [
    "CONFIG_KEY",
    "DEFAULT_MODEL_PATH",
    "DEVICES",
    "ModelLoadError",
    "load_fitting_weights",
    "load_model",
    "read_checkpoint_config",
    "resolve_device",
    "save_checkpoint",
    "save_pixel_model",
    "schedule_from_diffusers",
    "set_offline",
    "weight_mismatch",
]
