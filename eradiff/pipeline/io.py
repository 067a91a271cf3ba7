"""Reading images and masks, and writing results atomically.

Images. Read with Pillow (EXIF orientation applied with ``ImageOps.exif_transpose``) into a
channels-last array: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA, uint8.
Palette images become RGB (RGBA when they carry transparency), CMYK/YCbCr/1-bit become RGB/grey.
16-bit PNG and TIFF files keep 16 bits (uint16 arrays, decoded with OpenCV), so that the erased
result can keep every unmasked pixel bit-identical.

Masks. White = erase. Grey, RGB or palette masks are converted to grey; a mask with an alpha
channel (RGBA, LA, palette with transparency) uses its alpha channel when the alpha is not
uniformly opaque (a fully opaque alpha carries no mask, so the grey values are used). The mask is
thresholded at 127 (erase where value > 127 on the 8-bit scale). A mask of another size but the
same aspect ratio (one scale factor brings both sides within 1 px of the image's) is resized
nearest with a warning; another aspect ratio is an error.

Writing. The output is encoded in memory, written to a temporary file in the destination folder
and moved into place with ``os.replace``, so an interrupted run never leaves a partial image.
The format follows the input (or ``format=``); EXIF (orientation reset to 1) and ICC profile are
kept where the format stores them. JPEG is written at quality 95 (lossy: unmasked pixels are
re-encoded; use PNG for exact pixels). The output is 8-bit unless the input was 16-bit PNG/TIFF
and the output format is PNG or TIFF: then it is 16-bit with unmasked pixels bit-identical.
OpenCV writes the 16-bit files: PNG keeps EXIF (an ``eXIf`` chunk), 16-bit TIFF drops it.
Formats Pillow cannot write faithfully (GIF, PPM, …) are written as PNG.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from eradiff.errors import InputError, OutputError, first_line
from eradiff.formats import FORMATS, IMAGE_SUFFIXES, format_for_suffix, format_key

MAX_PIXELS = 16384 * 16384  # decompression-bomb limit (268 MP), checked before decoding
_PIL_TO_KEY = {pil: key for key, (pil, _) in FORMATS.items()}
_ORIENTATION = 0x0112
JPEG_QUALITY = 95


@dataclass
class LoadedImage:
    """An image as read from disk: pixels plus what is needed to write a result like it.

    Attributes:
        pixels: (H, W), (H, W, 2), (H, W, 3) or (H, W, 4), uint8 or uint16, upright (EXIF applied).
        format: output format key (``"png"``, ``"jpeg"``, ``"webp"``, ``"tiff"``, ``"bmp"``).
        exif: EXIF bytes with the orientation tag removed, or None.
        icc_profile: ICC profile bytes, or None.
        path: where it was read from (None for in-memory images).
    """

    pixels: np.ndarray
    format: str = "png"
    exif: bytes | None = None
    icc_profile: bytes | None = None
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]


def _open(path: Path, what: str, max_pixels: int) -> Image.Image:
    if not path.exists():
        raise InputError(f"{what} {str(path)!r}: no such file")
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r}: not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{what} {str(path)!r}: too large ({exc})") from exc
    except Image.UnidentifiedImageError as exc:
        raise InputError(f"{what} {str(path)!r}: not an image file Pillow can read") from exc
    except Exception as exc:
        raise InputError(f"{what} {str(path)!r}: cannot be read ({first_line(exc)})") from exc
    w, h = im.size
    if w < 1 or h < 1:
        im.close()
        raise InputError(f"{what} {str(path)!r}: empty image ({w}×{h})")
    if w * h > max_pixels:
        im.close()
        raise InputError(
            f"{what} {str(path)!r}: {w}×{h} = {w * h / 1e6:.0f} MP is above the {max_pixels / 1e6:.0f} MP limit"
        )
    return im


def _load(im: Image.Image, path: Path, what: str) -> Image.Image:
    """Decode fully (truncated files fail here) and apply EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
            return ImageOps.exif_transpose(im)
    except Exception as exc:
        raise InputError(f"{what} {str(path)!r}: cannot be decoded ({first_line(exc)})") from exc


def _is_16bit(im: Image.Image, path: Path) -> bool:
    if im.mode.startswith("I;16"):
        return True
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258)
        return bits is not None and 16 in (bits if isinstance(bits, tuple) else (bits,))
    return False


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` (1–8) to an (H, W, …) array, as ``ImageOps.exif_transpose``."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x.swapaxes(0, 1)[::-1, ::-1],
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(orientation)
    return a if op is None else np.ascontiguousarray(op(a))


def _read_16bit(path: Path, orientation: int) -> np.ndarray:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16:
        raise InputError(f"image {str(path)!r}: 16-bit file cannot be decoded")
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[..., ::-1]
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., [2, 1, 0, 3]]
    elif a.ndim != 2:
        raise InputError(f"image {str(path)!r}: unsupported 16-bit channel layout {a.shape}")
    return orient(np.ascontiguousarray(a), orientation)


def _to_array(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("I", "F"):
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535 or (mode == "F" and not np.array_equal(a, np.round(a))):
            raise InputError(f"image {str(path)!r}: {mode}-mode pixels outside the 16-bit range are not supported")
        return a.astype(np.uint16)
    elif mode not in ("RGB", "RGBA", "L", "LA") and not mode.startswith("I;16"):
        im = im.convert("RGB")
    a = np.asarray(im)
    if a.dtype not in (np.uint8, np.uint16):
        a = a.astype(np.uint16)
    return np.ascontiguousarray(a)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_ORIENTATION, 1) or 1)
    except Exception:
        return 1


def _exif_without_orientation(im: Image.Image) -> bytes | None:
    """EXIF bytes to write with the result (orientation removed: the pixels are upright), or None."""
    try:
        exif = im.getexif()
        if _ORIENTATION in exif:
            del exif[_ORIENTATION]
        return exif.tobytes() if len(exif) else None
    except Exception:
        return None


def read_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read an image for erasing (see the module docstring for modes and bit depths).

    Raises:
        InputError: missing, unreadable, truncated or too large (one-line message).
    """
    path = Path(path)
    im = _open(path, "image", max_pixels)
    with im:
        fmt = _PIL_TO_KEY.get(im.format or "", "png")
        orientation = _orientation(im)
        icc = im.info.get("icc_profile")
        sixteen = _is_16bit(im, path)
        upright = _load(im, path, "image")
        exif = _exif_without_orientation(upright)
        pixels = _read_16bit(path, orientation) if sixteen else _to_array(upright, path)
    if pixels.shape[:2] != (upright.size[1], upright.size[0]):
        raise InputError(f"image {str(path)!r}: decoders disagree on the size")
    return LoadedImage(pixels=pixels, format=fmt, exif=exif, icc_profile=icc, path=path)


def read_mask(
    path: str | os.PathLike[str], size: tuple[int, int], *, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, list[str]]:
    """Read a mask (white = erase) for an image of ``size`` = (width, height).

    Returns:
        ``(mask, warnings)``: mask (H, W) bool, True = erase; warnings as one-line strings.

    Raises:
        InputError: missing, unreadable or truncated mask, or another aspect ratio.
    """
    path = Path(path)
    im = _open(path, "mask", max_pixels)
    with im:
        upright = _load(im, path, "mask")
    values = _mask_values(upright)
    mask = values > 127
    return fit_mask(mask, size, name=str(path))


def _mask_values(im: Image.Image) -> np.ndarray:
    """The 8-bit grey (or alpha) values that decide the mask."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            return alpha
        im = im.convert("RGB")
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        return np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
    return np.asarray(im.convert("L"))


def fit_mask(mask: np.ndarray, size: tuple[int, int], *, name: str = "mask") -> tuple[np.ndarray, list[str]]:
    """Check a boolean mask against an image ``size`` = (W, H); resize nearest if only the scale differs.

    Raises:
        InputError: when the aspect ratios differ (scaling cannot reach the image size within 1 px).
    """
    W, H = size
    mh, mw = mask.shape
    if (mw, mh) == (W, H):
        return mask, []
    # one scale s must bring both sides within 1 px: [(W−1)/mw, (W+1)/mw] ∩ [(H−1)/mh, (H+1)/mh] ≠ ∅
    if max((W - 1) / mw, (H - 1) / mh) > min((W + 1) / mw, (H + 1) / mh):
        raise InputError(f"mask {name!r} is {mw}×{mh} but the image is {W}×{H}: the aspect ratios differ")
    resized = cv2.resize(mask.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST) > 0
    return resized, [f"mask {name!r} is {mw}×{mh}, the image {W}×{H}: resized (nearest)"]


def output_format(image: LoadedImage, out_path: Path | None, requested: str | None) -> str:
    """The format key to write: ``requested``, else the output suffix's, else the input's."""
    if requested is not None:
        key = format_key(requested)
        if key is None:
            raise OutputError(f"format {requested!r} is not supported; choose one of {', '.join(FORMATS)}")
        return key
    if out_path is not None and out_path.suffix:
        key = format_for_suffix(out_path.suffix)
        if key is None:
            raise OutputError(f"output {str(out_path)!r}: unknown image suffix {out_path.suffix!r}")
        return key
    return image.format


def encode_image(pixels: np.ndarray, fmt: str, *, like: LoadedImage | None = None) -> bytes:
    """Encode ``pixels`` (layout as :class:`LoadedImage`) as ``fmt``, keeping EXIF/ICC from ``like``."""
    if fmt not in FORMATS:
        raise OutputError(f"format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    exif = like.exif if like is not None else None
    icc = like.icc_profile if like is not None else None
    if pixels.dtype == np.uint16:
        if fmt in ("png", "tiff"):
            return _encode_16bit(pixels, fmt, exif)
        pixels = np.round(pixels.astype(np.float64) / 257.0).astype(np.uint8)
    if pixels.dtype != np.uint8:
        raise OutputError(f"cannot encode pixels of dtype {pixels.dtype}")
    if fmt in ("jpeg", "bmp") and pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = pixels[..., :-1] if pixels.shape[2] == 4 else pixels[..., 0]
    mode = "L" if pixels.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    if fmt == "jpeg" and mode == "LA":
        pixels, mode = pixels[..., 0], "L"
    im = Image.fromarray(np.ascontiguousarray(pixels), mode=mode)
    kwargs: dict[str, object] = {}
    if exif and fmt in ("jpeg", "png", "webp", "tiff"):
        kwargs["exif"] = exif
    if icc and fmt in ("jpeg", "png", "webp", "tiff"):
        kwargs["icc_profile"] = icc
    if fmt in ("jpeg", "webp"):
        kwargs["quality"] = JPEG_QUALITY
    buffer = io.BytesIO()
    im.save(buffer, format=FORMATS[fmt][0], **kwargs)
    return buffer.getvalue()


def _encode_16bit(pixels: np.ndarray, fmt: str, exif: bytes | None) -> bytes:
    a = pixels
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[..., ::-1]
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., [2, 1, 0, 3]]
    elif a.ndim == 3 and a.shape[2] == 2:
        grey = a[..., 0]
        a = np.stack([grey, grey, grey, a[..., 1]], axis=-1)
    ok, buf = cv2.imencode(".png" if fmt == "png" else ".tif", np.ascontiguousarray(a))
    if not ok:
        raise OutputError(f"OpenCV could not encode a 16-bit {fmt.upper()}")
    data = buf.tobytes()
    if fmt == "png" and exif:
        data = _png_with_exif(data, exif)
    return data


def _png_with_exif(png: bytes, exif: bytes) -> bytes:
    """Insert an ``eXIf`` chunk after IHDR (PNG 1.5 extension)."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    ihdr_end = 8 + 4 + 4 + 13 + 4
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif) & 0xFFFFFFFF)
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Raises:
        OutputError: the folder is missing or not writable (nothing is left behind).
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or first_line(exc)}") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _new_file_mode() -> int:
    """0o666 minus the process umask: the mode ``open(path, "w")`` would give (mkstemp uses 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_image(
    path: str | os.PathLike[str], pixels: np.ndarray, *, like: LoadedImage | None = None, fmt: str | None = None
) -> Path:
    """Encode and write atomically; the format is ``fmt``, else the suffix's, else ``like``'s."""
    path = Path(path)
    key = fmt or format_for_suffix(path.suffix) or (like.format if like is not None else "png")
    atomic_write(path, encode_image(pixels, key, like=like))
    return path


def side_by_side(before: np.ndarray, after: np.ndarray, *, gap: int = 8) -> np.ndarray:
    """An 8-bit RGB before|after comparison image (alpha dropped, grey expanded)."""

    def rgb8(a: np.ndarray) -> np.ndarray:
        if a.dtype == np.uint16:
            a = np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        elif a.shape[2] == 2:
            a = np.repeat(a[..., :1], 3, axis=2)
        elif a.shape[2] == 4:
            a = a[..., :3]
        return a

    b, a = rgb8(before), rgb8(after)
    spacer = np.full((b.shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate([b, spacer, a], axis=1)


__all__ = [
    "FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "LoadedImage",
    "atomic_write",
    "encode_image",
    "fit_mask",
    "format_for_suffix",
    "orient",
    "output_format",
    "read_image",
    "read_mask",
    "side_by_side",
    "write_image",
]
