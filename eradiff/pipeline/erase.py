"""Erase what a mask covers: windows → model → blend (the Python API under ``eradiff erase``).

Steps for one image:

1. Dilate the mask by ``dilate`` px (leftover object borders bring objects back).
2. Plan windows (:mod:`eradiff.pipeline.windows`): the whole image if its longer side is at most
   ``crop_trigger``, else one window per mask region with ``crop_margin`` around it, merged.
3. Per window: resize (longer side = the model's native size), pad to its size multiple, build
   the conditioning, sample (:func:`erase_tensors`: DDIM or DPM-Solver++, SRA on or off), decode,
   crop, resize back.
4. Paste with a feathered alpha (:mod:`eradiff.pipeline.blend`): every pixel outside the dilated
   mask is bit-identical to the input.

Images are channels-last integer arrays: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB,
(H, W, 4) RGBA, uint8 or uint16. Alpha passes through unchanged; grey images are erased as RGB
and converted back with Rec. 601 luma.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from eradiff.errors import InputError
from eradiff.models.family import ErasureModel, classical_fill
from eradiff.options import INIT_KINDS, EraseOptions, InitKind  # noqa: F401  (re-exported)
from eradiff.pipeline.blend import blend, feather_alpha
from eradiff.pipeline.sampler import sample
from eradiff.pipeline.windows import (
    Box,
    dilate_mask,
    mask_windows,
    pad_to,
    resize,
    resize_mask,
    window_geometry,
)

ProgressFn = Callable[[int, int, int, int], None]  # (window, windows, step, steps), 1-based


@dataclass
class WindowReport:
    """One processed window: its box in the image, the model-input size and the time it took."""

    box: Box
    model_size: tuple[int, int]
    seconds: float


@dataclass
class EraseReport:
    """What an erase call did (JSON-ready through :meth:`to_dict`)."""

    seed: int
    steps_run: int
    sra: bool
    masked_pixels: int
    dilated_pixels: int
    windows: list[WindowReport] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["windows"] = [
            {"box": list(w.box), "model_size": list(w.model_size), "seconds": round(w.seconds, 4)} for w in self.windows
        ]
        d["seconds"] = round(self.seconds, 4)
        return d


@dataclass
class EraseResult:
    """The erased image (same shape and dtype as the input) and the report."""

    image: np.ndarray
    report: EraseReport


def _check_inputs(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"image must be a uint8 or uint16 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)):
        raise InputError(f"image must be (H, W), (H, W, 2), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"image is empty: {image.shape}")
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        mask = mask > 127
    if mask.shape != image.shape[:2]:
        raise InputError(f"mask shape {mask.shape} must equal the image's height and width {image.shape[:2]}")
    return mask


def _colour(image: np.ndarray) -> np.ndarray:
    """The (H, W, 3) float32 colour part of an image on its own integer scale."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    if image.shape[2] == 2:
        return np.repeat(image[..., :1], 3, axis=2).astype(np.float32)
    return image[..., :3].astype(np.float32)


def _as_layout(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Generated RGB (h, w, 3) float → the layout of ``like`` (alpha copied from ``like``)."""
    if like.ndim == 2 or like.shape[2] == 2:
        grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return grey if like.ndim == 2 else np.stack([grey, like[..., 1].astype(np.float32)], axis=-1)
    if like.shape[2] == 4:
        return np.concatenate([rgb, like[..., 3:].astype(np.float32)], axis=-1)
    return rgb


@torch.inference_mode()
def erase_tensors(
    model: ErasureModel,
    x: torch.Tensor,
    M: torch.Tensor,
    options: EraseOptions,
    *,
    generators: list[torch.Generator],
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Erase a batch of model-sized windows: condition, sample with the chosen step rule, decode.

    1. conditioning from (x, M); z_known = encode(x), re-imposed outside the latent mask when
       ``options.reimpose_known`` (None: the model's ``reimpose_known_default``);
    2. the chain of :func:`eradiff.pipeline.sampler.sample` (``options.sampler``, steps, strength
       from ``init``, η, SRA), sample i drawing from ``generators[i]``;
    3. decode and clamp to [−1, 1].

    Args:
        model: the erasure model.
        x: (b, 3, h, w) float32 in [−1, 1], h and w multiples of ``model.size_multiple``.
        M: (b, h, w) bool, True = regenerate.
        options: the erase options (``steps=None`` takes the model's default).
        generators: one generator per sample.
        callback: step callback ``(i, n)``.

    Returns:
        (b, 3, h, w) float32 in [−1, 1].
    """
    options = options.for_model(model)
    direct = model.fill_without_sampling(x, M, seed=options.seed)
    if direct is not None:  # a classical method: nothing to sample
        return direct.float().clamp(-1, 1)
    dtype = model.dtype
    x_model = x.to(dtype)
    cond = model.condition(x_model, M, prompt=options.prompt, guidance_scale=options.guidance_scale)
    reimpose = options.reimpose_known if options.reimpose_known is not None else model.reimpose_known_default
    z_known = model.encode(x_model, cond).float()
    z_init = z_known
    if options.strength < 1.0 and options.init != "noise":
        same = cond.fill is not None and getattr(model, "fill", None) == options.init
        filled = cond.fill if same else classical_fill(x, M, method=options.init).to(dtype)
        z_init = model.encode(filled, cond).float()
    keep = ~cond.mask[:, None].to(z_known.device) if reimpose else None

    def denoise(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.model_output(z_t.to(dtype), t, cond, sra=options.sra)

    z0 = sample(
        denoise, z_init, schedule=model.schedule, generators=generators, sampler=options.sampler,
        steps=options.steps, strength=options.strength, eta=options.eta, z_known=z_known if reimpose else None,
        keep=keep, clip_x0=model.x0_bounds(cond), callback=callback,
    )  # fmt: skip
    return model.decode(z0.to(dtype), cond).float().clamp(-1, 1)


def erase_window(
    model: ErasureModel,
    rgb: np.ndarray,
    mask: np.ndarray,
    options: EraseOptions,
    *,
    generator: torch.Generator,
    callback: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Erase one model-sized window (:func:`erase_tensors` on arrays).

    Args:
        model: the erasure model.
        rgb: (h, w, 3) float32 in [0, 1], h and w multiples of ``model.size_multiple``.
        mask: (h, w) bool, True = regenerate.
        options: the erase options.
        generator: the window's generator.
        callback: step callback ``(i, n)``.

    Returns:
        The decoded window, (h, w, 3) float32 in [0, 1].
    """
    device = model.device
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device, torch.float32) * 2 - 1
    M = torch.from_numpy(mask)[None].to(device)
    out = erase_tensors(model, x, M, options, generators=[generator], callback=callback)
    return ((out[0].permute(1, 2, 0).cpu().numpy() + 1) / 2).astype(np.float32)


def erase(
    model: ErasureModel,
    image: np.ndarray,
    mask: np.ndarray,
    options: EraseOptions | None = None,
    *,
    progress: ProgressFn | None = None,
) -> EraseResult:
    """Erase the masked region of ``image`` and fill it with coherent background.

    Args:
        model: a loaded erasure model (:func:`eradiff.models.loading.load_model`).
        image: (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) uint8/uint16 array.
        mask: (H, W) bool (True = erase), or uint8 thresholded at 127.
        options: :class:`EraseOptions` (defaults if None).
        progress: called as ``progress(window, windows, step, steps)`` after each denoising step.

    Returns:
        :class:`EraseResult`; the image has the input's shape and dtype. A mask with nothing to
        erase returns a copy of the image with a warning.

    Raises:
        InputError: malformed arrays, or a mask (or dilated mask) covering the whole image.
    """
    options = (options or EraseOptions()).for_model(model)
    start = time.perf_counter()
    M = _check_inputs(image, mask)
    H, W = M.shape
    rows, cols = np.flatnonzero(M.any(axis=1)), np.flatnonzero(M.any(axis=0))
    report = EraseReport(seed=options.seed, steps_run=int(options.steps * options.strength), sra=options.sra,
                         masked_pixels=0, dilated_pixels=0)  # fmt: skip
    if rows.size == 0:
        message = "the mask is empty: nothing to erase, the image is copied unchanged"
        warnings.warn(message, stacklevel=2)
        report.warnings.append(message)
        report.seconds = time.perf_counter() - start
        return EraseResult(image=image.copy(), report=report)
    # 1–2. dilate and plan windows inside the mask's bounding box grown by what can reach out of it,
    # so a small mask on a large photo costs small-array work only
    trigger = options.crop_trigger if options.crop_trigger is not None else model.crop_trigger
    whole = max(H, W) <= trigger
    reach = options.dilate + options.crop_margin + 1
    rx0, ry0 = (0, 0) if whole else (max(0, int(cols[0]) - reach), max(0, int(rows[0]) - reach))
    rx1, ry1 = (W, H) if whole else (min(W, int(cols[-1]) + 1 + reach), min(H, int(rows[-1]) + 1 + reach))
    M_r = M[ry0:ry1, rx0:rx1]
    report.masked_pixels = int(M_r.sum())
    if report.masked_pixels == H * W:
        raise InputError("the mask covers the whole image: there is no background to fill from")
    dilated = dilate_mask(M_r, options.dilate)  # region coordinates
    report.dilated_pixels = int(dilated.sum())
    if report.dilated_pixels == H * W:
        raise InputError(f"the mask dilated by {options.dilate} px covers the whole image; lower dilate")
    if whole:
        boxes = [(0, 0, W, H)]
    else:
        region_boxes = mask_windows(dilated, trigger=1, margin=options.crop_margin)
        boxes = [(x0 + rx0, y0 + ry0, x1 + rx0, y1 + ry0) for x0, y0, x1, y1 in region_boxes]
    out = image.copy()
    top = float(np.iinfo(image.dtype).max)
    for k, box in enumerate(boxes):
        t0 = time.perf_counter()
        x0, y0, x1, y1 = box
        native = model.native_size or max(x1 - x0, y1 - y0)  # None: the window keeps its size
        geometry = window_geometry(box, native_size=native, size_multiple=model.size_multiple)
        crop = image[y0:y1, x0:x1]
        rgb = resize(_colour(crop) / top, geometry.size)
        dilated_w = dilated[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0]
        m = resize_mask(dilated_w, geometry.size)
        rgb_p, m_p = pad_to(rgb, geometry.padded), pad_to(m, geometry.padded)
        generator = torch.Generator().manual_seed(options.seed + k)

        def step(i: int, n: int, k: int = k) -> None:
            if progress is not None:
                progress(k + 1, len(boxes), i, n)

        generated = erase_window(model, rgb_p, m_p, options, generator=generator, callback=step)
        generated = resize(generated[: geometry.size[1], : geometry.size[0]], (x1 - x0, y1 - y0))
        generated = _as_layout(np.clip(generated, 0.0, 1.0) * top, crop)
        alpha = feather_alpha(M[y0:y1, x0:x1], dilated_w, feather=options.feather)
        out[y0:y1, x0:x1] = blend(crop, generated, alpha)
        report.windows.append(WindowReport(box=box, model_size=geometry.padded, seconds=time.perf_counter() - t0))
    report.seconds = time.perf_counter() - start
    return EraseResult(image=out, report=report)


__all__ = [
    "INIT_KINDS",
    "EraseOptions",
    "EraseReport",
    "EraseResult",
    "WindowReport",
    "erase",
    "erase_tensors",
    "erase_window",
]
