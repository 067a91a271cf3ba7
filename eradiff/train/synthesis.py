"""Dynamic image synthesis: training pairs (x_ori, x_obj, M) from a photo and an object (Sec. 3.2).

The paper segments the main object of x_0^ori, transforms it (rotation, scaling) and pastes it at a
random place in the background region, giving x_0^obj. Here the object comes as an RGBA cut-out
(from the same photo, a segmentation data set or a stamp collection, see ``sources.py``).

| code name   | symbol      | meaning                                                            |
| ----------- | ----------- | ------------------------------------------------------------------ |
| ``x_ori``   | x_0^ori     | the clean photo (crop); the training target                        |
| ``x_obj``   | x_0^obj     | x_ori with a transformed copy of the object pasted                 |
| ``mask``    | M           | the pixels the paste may have changed, True = erase                |
| ``obj_rgba``| —           | the transformed object exactly as pasted (alpha after thresholding) |

Exactness (tested): with α the pasted alpha in 0..255,
``x_obj = (α·obj + (255 − α)·x_ori + 127) // 255`` in integers, so α = 255 gives the object's
pixel and α = 0 gives x_ori bit for bit. Alpha ≤ ``alpha_threshold`` is set to 0 *before*
compositing and the mask is ``α > 0`` (then dilated), so every pixel that differs between x_obj and
x_ori lies in the mask; there is no faint halo outside it.

Steps of :func:`synthesize_pair` (all randomness from the ``rng`` argument, drawn in this order):

1. Frame: with ``crop_size`` S, the background is virtually resized so its short side is
   ``s ~ U(short_side_range)`` and an S×S window is cut at a uniform position; only that window is
   resampled (INTER_AREA when shrinking), never the whole photo. Without ``crop_size`` the frame is
   the full background.
2. Object: trimmed to its alpha box, flipped horizontally with ``flip_prob``, scaled so its longer
   side is ``u·short(frame)`` with ``u ~ U(scale_range)`` (capped so the rotated box fits the
   frame), rotated by ``θ ~ U(−rotation_deg, rotation_deg)``, colour-jittered. Resampling works
   on premultiplied colour so transparent pixels do not bleed dark fringes.
3. Placement: uniform over the positions where the object fits in the frame; with a background
   object mask (the object's own place in x_ori) and ``avoid_object``, only over the positions
   where the (dilated) paste does not touch it, found exactly with a correlation.
4. Compositing and mask as above.

Failures (empty or tiny object after the transform, no free position) raise
:class:`DegenerateObjectError` with a short ``reason`` that callers count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DegenerateObjectError",
    "Pair",
    "SynthesisConfig",
    "alpha_box",
    "composite",
    "sample_frame",
    "synthesize_pair",
    "transform_object",
]


class DegenerateObjectError(ValueError):
    """The object cannot make a valid pair; ``reason`` is a short key for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class SynthesisConfig:
    """Hyper-parameters of the pair synthesis (bound once, passed to :func:`synthesize_pair`).

    Args:
        crop_size: side S of the square training crop, or None to use the whole background.
        short_side_range: (lo, hi) short side, in pixels, the background is resized to before an
            S×S crop is taken; values below S are raised to S. Ignored without ``crop_size``.
        scale_range: (lo, hi) longer side of the pasted object as a fraction of the frame's short
            side (the crop size, or the background's short side without crops), 0 < lo ≤ hi ≤ 1.
        rotation_deg: rotation is uniform in [−rotation_deg, rotation_deg], 0..180.
        flip_prob: probability of a horizontal flip, 0..1.
        color_jitter: strength j ≥ 0: brightness, contrast and saturation factors ~ U(1−j, 1+j).
        mask_dilation: the mask is dilated by this many pixels (elliptic kernel), ≥ 0.
        alpha_threshold: pasted alpha ≤ this is set to 0 before compositing, 0..254.
        min_object_area: fewer pasted pixels (α > 0) than this raise DegenerateObjectError.
        avoid_object: keep the paste (with its dilation) off the background object mask.
    """

    crop_size: int | None = 256
    short_side_range: tuple[int, int] = (256, 768)
    scale_range: tuple[float, float] = (0.15, 0.6)
    rotation_deg: float = 25.0
    flip_prob: float = 0.5
    color_jitter: float = 0.1
    mask_dilation: int = 0
    alpha_threshold: int = 0
    min_object_area: int = 64
    avoid_object: bool = True

    def __post_init__(self) -> None:
        if self.crop_size is not None and self.crop_size < 8:
            raise ValueError(f"crop_size must be ≥ 8 or None, got {self.crop_size}")
        lo, hi = self.short_side_range
        if not 1 <= lo <= hi:
            raise ValueError(f"short_side_range must satisfy 1 ≤ lo ≤ hi, got {self.short_side_range}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale_range must satisfy 0 < lo ≤ hi ≤ 1, got {self.scale_range}")
        if not 0 <= self.rotation_deg <= 180:
            raise ValueError(f"rotation_deg must be in [0, 180], got {self.rotation_deg}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")
        if self.mask_dilation < 0:
            raise ValueError(f"mask_dilation must be ≥ 0, got {self.mask_dilation}")
        if not 0 <= self.alpha_threshold <= 254:
            raise ValueError(f"alpha_threshold must be in [0, 254], got {self.alpha_threshold}")
        if self.min_object_area < 1:
            raise ValueError(f"min_object_area must be ≥ 1, got {self.min_object_area}")


@dataclass(frozen=True, eq=False)
class Pair:
    """One training pair.

    Attributes:
        x_ori: (H, W, 3) uint8, the clean frame (target).
        x_obj: (H, W, 3) uint8, the frame with the object pasted.
        mask: (H, W) bool, True where the paste may have changed pixels (α > 0, dilated).
        obj_rgba: (h, w, 4) uint8, the transformed object as pasted.
        offset: (top, left) of ``obj_rgba`` in the frame.
    """

    x_ori: np.ndarray
    x_obj: np.ndarray
    mask: np.ndarray
    obj_rgba: np.ndarray
    offset: tuple[int, int]


def _check_image(name: str, x: np.ndarray, channels: int) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != channels:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{name} must be a uint8 array of shape (h, w, {channels}), got {got}")


def alpha_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) bounds (exclusive ends) of alpha > 0, or None when empty."""
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


# ----------------------------------------------------------------------------- step 1: frame


def sample_frame(
    background: np.ndarray,
    *,
    rng: np.random.Generator,
    config: SynthesisConfig,
    background_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Step 1: the (resized, cropped) frame x_ori and the matching part of the object mask.

    Args:
        background: (H, W, 3) uint8 photo.
        rng: source of the short side and the crop position.
        config: uses ``crop_size`` and ``short_side_range``.
        background_mask: optional (H, W) bool mask of the photo's own object(s).

    Returns:
        (x_ori, mask) where x_ori is a new (S, S, 3) array (or a copy of the background without
        ``crop_size``) and mask the resampled object mask (True wherever any covered source pixel
        was True), or None.
    """
    h, w = background.shape[:2]
    if background_mask is not None and background_mask.shape != (h, w):
        raise ValueError(f"background_mask must have shape {(h, w)}, got {background_mask.shape}")
    size = config.crop_size
    if size is None:
        frame_mask = None if background_mask is None else background_mask.astype(bool, copy=True)
        return background.copy(), frame_mask
    lo, hi = config.short_side_range
    short = min(h, w)
    target = max(size, int(rng.integers(lo, hi + 1)))
    window = min(short, max(1, round(size * short / target)))  # source pixels per crop side
    top = int(rng.integers(0, h - window + 1))
    left = int(rng.integers(0, w - window + 1))
    src = background[top : top + window, left : left + window]
    if window == size:
        x_ori = src.copy()
    else:
        interp = cv2.INTER_AREA if window > size else cv2.INTER_LINEAR
        x_ori = cv2.resize(src, (size, size), interpolation=interp)
    if background_mask is None:
        return x_ori, None
    m = background_mask[top : top + window, left : left + window].astype(np.uint8) * 255
    if window != size:
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA if window > size else cv2.INTER_LINEAR)
    return x_ori, m > 0


# ----------------------------------------------------------------------------- step 2: object


def transform_object(
    obj_rgba: np.ndarray,
    *,
    scale: float,
    angle_deg: float = 0.0,
    flip: bool = False,
    jitter: tuple[float, float, float] = (1.0, 1.0, 1.0),
    alpha_threshold: int = 0,
) -> np.ndarray:
    """Step 2: flip, scale, rotate and colour-jitter an RGBA object; trimmed to alpha > 0.

    Args:
        obj_rgba: (h, w, 4) uint8 object; colour is straight (not premultiplied) alpha.
        scale: size factor > 0 applied to the alpha box of the object.
        angle_deg: counter-clockwise rotation in degrees.
        flip: mirror left-right before rotating.
        jitter: (brightness, contrast, saturation) factors, 1 = unchanged.
        alpha_threshold: resulting alpha ≤ this becomes 0 (and its colour 0).

    Returns:
        (h', w', 4) uint8 object, trimmed to its alpha > 0 box; shape (0, 0, 4) when nothing is
        left.
    """
    _check_image("obj_rgba", obj_rgba, 4)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    box = alpha_box(obj_rgba[..., 3])
    if box is None:
        return np.zeros((0, 0, 4), np.uint8)
    top, bottom, left, right = box
    obj = obj_rgba[top:bottom, left:right]
    if flip:
        obj = obj[:, ::-1]
    h0, w0 = obj.shape[:2]
    # premultiplied float RGBA, alpha in 0..255
    f = obj.astype(np.float32)
    f[..., :3] *= f[..., 3:4] * (1.0 / 255.0)
    w1, h1 = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    if (w1, h1) != (w0, h0):
        f = cv2.resize(f, (w1, h1), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if angle_deg % 360 != 0:
        rad = math.radians(angle_deg)
        c, s = abs(math.cos(rad)), abs(math.sin(rad))
        wr, hr = math.ceil(w1 * c + h1 * s) + 2, math.ceil(w1 * s + h1 * c) + 2
        m = cv2.getRotationMatrix2D(((w1 - 1) / 2, (h1 - 1) / 2), angle_deg, 1.0)
        m[0, 2] += (wr - w1) / 2
        m[1, 2] += (hr - h1) / 2
        f = cv2.warpAffine(f, m, (wr, hr), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = np.clip(f[..., 3], 0.0, 255.0)
    rgb = f[..., :3] * (255.0 / np.maximum(alpha, 1e-6))[..., None]
    rgb = _jitter(rgb, alpha, jitter)
    out = np.empty(f.shape, np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3] = np.rint(alpha)
    gone = out[..., 3] <= alpha_threshold
    out[gone] = 0
    box = alpha_box(out[..., 3])
    if box is None:
        return np.zeros((0, 0, 4), np.uint8)
    top, bottom, left, right = box
    return np.ascontiguousarray(out[top:bottom, left:right])


def _jitter(rgb: np.ndarray, alpha: np.ndarray, jitter: tuple[float, float, float]) -> np.ndarray:
    brightness, contrast, saturation = jitter
    if brightness == contrast == saturation == 1.0:
        return rgb
    rgb = rgb * brightness
    weight = alpha / max(float(alpha.sum()), 1e-6)
    gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    mean = float((gray * weight).sum())
    rgb = (rgb - mean) * contrast + mean
    gray = (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return gray + (rgb - gray) * saturation


def _draw_object(obj_rgba: np.ndarray, frame_hw: tuple[int, int], rng: np.random.Generator, config: SynthesisConfig):
    """Draw the step-2 parameters in a fixed order and apply them."""
    u = float(rng.uniform(*config.scale_range))
    angle = float(rng.uniform(-config.rotation_deg, config.rotation_deg))
    flip = bool(rng.random() < config.flip_prob)
    j = config.color_jitter
    jitter = tuple(float(v) for v in rng.uniform(1 - j, 1 + j, size=3)) if j > 0 else (1.0, 1.0, 1.0)
    box = alpha_box(obj_rgba[..., 3])
    if box is None:
        raise DegenerateObjectError("empty alpha")
    h0, w0 = box[1] - box[0], box[3] - box[2]
    fh, fw = frame_hw
    scale = u * min(fh, fw) / max(h0, w0)
    rad = math.radians(angle)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    bw, bh = w0 * c + h0 * s, w0 * s + h0 * c  # rotated box at scale 1
    scale = min(scale, (fw - 4) / bw, (fh - 4) / bh)
    if scale <= 0:
        raise DegenerateObjectError("frame too small")
    obj = transform_object(
        obj_rgba, scale=scale, angle_deg=angle, flip=flip, jitter=jitter, alpha_threshold=config.alpha_threshold
    )
    area = int(np.count_nonzero(obj[..., 3])) if obj.size else 0
    if area == 0:
        raise DegenerateObjectError("empty after transform")
    if area < config.min_object_area:
        raise DegenerateObjectError("object too small", f"{area} px < {config.min_object_area}")
    if obj.shape[0] > fh or obj.shape[1] > fw:
        raise DegenerateObjectError("object larger than frame")
    return obj


# ----------------------------------------------------------------------------- steps 3-4


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _place(
    paste: np.ndarray,
    frame_hw: tuple[int, int],
    avoid: np.ndarray | None,
    rng: np.random.Generator,
    dilation: int,
) -> tuple[int, int]:
    """Step 3: uniform (top, left) among the positions where the paste fits (and misses ``avoid``)."""
    fh, fw = frame_hw
    ph, pw = paste.shape
    ny, nx = fh - ph + 1, fw - pw + 1
    if avoid is None or not avoid.any():
        return int(rng.integers(0, ny)), int(rng.integers(0, nx))
    d = dilation
    kernel = paste.astype(np.uint8)
    if d > 0:
        kernel = cv2.dilate(np.pad(kernel, d), _disk(d))
    padded = np.pad(avoid.astype(np.float32), d)
    # hits[y, x] = Σ avoid[y−d : y+ph+d, x−d : x+pw+d] · kernel  (counts of overlapping pixels)
    hits = cv2.matchTemplate(padded, kernel.astype(np.float32), cv2.TM_CCORR)
    free = np.flatnonzero(hits.ravel() < 0.5)
    if free.size == 0:
        raise DegenerateObjectError("no free placement")
    k = int(free[rng.integers(0, free.size)])
    return k // nx, k % nx


def composite(
    x_ori: np.ndarray, obj_rgba: np.ndarray, offset: tuple[int, int], *, mask_dilation: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: paste ``obj_rgba`` at ``offset`` with exact integer alpha blending.

    Args:
        x_ori: (H, W, 3) uint8 frame (not modified).
        obj_rgba: (h, w, 4) uint8 object that fits inside the frame at ``offset``.
        offset: (top, left).
        mask_dilation: pixels to dilate the α > 0 region by.

    Returns:
        (x_obj, mask): ``x_obj = (α·obj + (255 − α)·x_ori + 127) // 255`` over the paste and x_ori
        elsewhere; ``mask`` the (H, W) bool α > 0 region, dilated.
    """
    _check_image("x_ori", x_ori, 3)
    _check_image("obj_rgba", obj_rgba, 4)
    top, left = offset
    h, w = obj_rgba.shape[:2]
    fh, fw = x_ori.shape[:2]
    if top < 0 or left < 0 or top + h > fh or left + w > fw:
        raise ValueError(f"object of shape {(h, w)} at offset {offset} does not fit a frame of {(fh, fw)}")
    x_obj = x_ori.copy()
    region = x_obj[top : top + h, left : left + w]
    a = obj_rgba[..., 3:4].astype(np.uint16)
    blended = (a * obj_rgba[..., :3] + (255 - a) * region + 127) // 255
    region[...] = blended.astype(np.uint8)
    mask = np.zeros((fh, fw), np.uint8)
    mask[top : top + h, left : left + w] = obj_rgba[..., 3] > 0
    if mask_dilation > 0:
        mask = cv2.dilate(mask, _disk(mask_dilation))
    return x_obj, mask.astype(bool)


def synthesize_pair(
    background: np.ndarray,
    obj_rgba: np.ndarray,
    *,
    rng: np.random.Generator,
    config: SynthesisConfig,
    background_mask: np.ndarray | None = None,
) -> Pair:
    """Make (x_ori, x_obj, mask) from a photo and an object (steps 1-4 of the module docstring).

    Args:
        background: (H, W, 3) uint8 photo x_0^ori (before cropping).
        obj_rgba: (h, w, 4) uint8 object cut-out (straight alpha).
        rng: the only source of randomness; the same generator state gives the same pair.
        config: the synthesis hyper-parameters.
        background_mask: optional (H, W) bool mask of the photo's own object(s): the paste avoids
            it when ``config.avoid_object``.

    Returns:
        The :class:`Pair`.

    Raises:
        DegenerateObjectError: the object is empty or too small after the transform, or there is
            no free position for it.
        ValueError: wrong array types or shapes.
    """
    _check_image("background", background, 3)
    _check_image("obj_rgba", obj_rgba, 4)
    if min(background.shape[:2]) == 0 or min(obj_rgba.shape[:2]) == 0:
        raise DegenerateObjectError("zero-size image")
    x_ori, avoid = sample_frame(background, rng=rng, config=config, background_mask=background_mask)
    frame_hw = x_ori.shape[:2]
    obj = _draw_object(obj_rgba, frame_hw, rng, config)
    offset = _place(obj[..., 3] > 0, frame_hw, avoid if config.avoid_object else None, rng, config.mask_dilation)
    x_obj, mask = composite(x_ori, obj, offset, mask_dilation=config.mask_dilation)
    return Pair(x_ori=x_ori, x_obj=x_obj, mask=mask, obj_rgba=obj, offset=offset)
