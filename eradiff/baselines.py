"""Classical (non-learned) inpainting baselines to measure erasure models against.

| method         | implementation                                    | ``radius`` means                 | package      |
| -------------- | ------------------------------------------------- | -------------------------------- | ------------ |
| ``telea``      | OpenCV ``cv2.inpaint``, INPAINT_TELEA             | neighbourhood radius (px)        | opencv       |
| ``ns``         | OpenCV ``cv2.inpaint``, INPAINT_NS                | neighbourhood radius (px)        | opencv       |
| ``biharmonic`` | scikit-image ``inpaint_biharmonic``, per channel  | unused                           | scikit-image |
| ``patchmatch`` | PatchMatch (Barnes et al. 2009), ``pypatchmatch`` | patch radius: (2r+1)² px patches | pypatchmatch |

Every method returns the input's pixels outside the mask bit-identical: the fill is computed, then
only the masked pixels are copied into a copy of the input.
"""

from __future__ import annotations

from typing import Literal, get_args

import cv2
import numpy as np

from eradiff.core._checks import check_choice

Method = Literal["telea", "ns", "biharmonic", "patchmatch"]
METHODS: tuple[str, ...] = get_args(Method)


def inpaint_classical(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    method: Method,
    radius: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Fill the masked pixels of an RGB image with a classical inpainting method.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = pixel to fill.
        method: ``"telea"``, ``"ns"``, ``"biharmonic"`` or ``"patchmatch"``.
        radius: ≥ 1; see the module table for each method's use of it.
        seed: PatchMatch's random seed (the others are deterministic); same seed ⇒ same output.

    Returns:
        (H, W, 3) uint8; equal to ``image`` wherever ``mask`` is False.

    Raises:
        ValueError: bad method, radius, shapes or dtypes.
        ImportError: the method's optional package is missing (the message names it).
    """
    check_choice("method", method, METHODS)
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {_describe(image)}")
    if not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == image.shape[:2]):
        raise ValueError(f"mask must be an (H, W) = {image.shape[:2]} bool array, got {_describe(mask)}")
    if radius < 1:
        raise ValueError(f"radius must be ≥ 1, got {radius}")
    if not mask.any():
        return image.copy()
    if method in ("telea", "ns"):
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8), float(radius), flag)
    elif method == "biharmonic":
        filled = _biharmonic(image, mask)
    else:
        filled = _patchmatch(image, mask, radius=radius, seed=seed)
    out = image.copy()
    out[mask] = filled[mask]
    return out


def fill_from_known(
    image: np.ndarray, mask: np.ndarray, *, method: Method, radius: int = 5, seed: int = 0
) -> np.ndarray:
    """:func:`inpaint_classical` of ``image`` with the pixels under ``mask`` zeroed first.

    OpenCV's Telea and NS read a little of what lies under the mask, so an object there would leak
    into their fill; this fill depends on the known region only (the built-in model's prefill, in
    training and in erasing alike). Arguments and result as :func:`inpaint_classical`.
    """
    hole = np.asarray(mask, dtype=bool)
    known = np.ascontiguousarray(np.where(hole[..., None], np.uint8(0), image), dtype=np.uint8)
    return inpaint_classical(known, hole, method=method, radius=radius, seed=seed)


def _biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    try:
        from skimage.restoration import inpaint_biharmonic
    except ImportError as err:
        raise ImportError("method='biharmonic' needs scikit-image: pip install scikit-image") from err
    filled = inpaint_biharmonic(image.astype(np.float64) / 255, mask, channel_axis=-1)
    return np.clip(np.rint(filled * 255), 0, 255).astype(np.uint8)


def _patchmatch(image: np.ndarray, mask: np.ndarray, *, radius: int, seed: int) -> np.ndarray:
    try:
        from patchmatch import patch_match
    except ImportError as err:
        raise ImportError("method='patchmatch' needs PatchMatch: pip install pypatchmatch") from err
    if not patch_match.patchmatch_available:
        raise ImportError("method='patchmatch': pypatchmatch is installed but its native library did not load")
    patch_match.set_random_seed(seed)
    return patch_match.inpaint(np.ascontiguousarray(image), mask, patch_size=radius)


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
