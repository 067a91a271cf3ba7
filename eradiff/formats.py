"""Image file formats eradiff reads and writes: plain tables, no imaging library.

The command line checks paths and ``--format`` against these before it imports torch (a wrong
suffix fails in a fraction of a second); :mod:`eradiff.pipeline.io` encodes with them.

| name               | what                                                                  |
| ------------------ | --------------------------------------------------------------------- |
| ``IMAGE_SUFFIXES`` | suffixes of the files a folder of images is made of (read)            |
| ``FORMATS``        | format key → (Pillow format, default suffix) of the formats written   |
| ``format_key``     | a user's format name (``jpg``, ``TIF``…) → its key, or None           |
| ``format_for_suffix`` | a file suffix (``.jpg``) → its format key, or None                 |
"""

from __future__ import annotations

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm")
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", ".png"),
    "jpeg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
    "tiff": ("TIFF", ".tif"),
    "bmp": ("BMP", ".bmp"),
}
_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
_SUFFIX_TO_KEY = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp",
}  # fmt: skip


def format_key(name: str) -> str | None:
    """Our format key for a format name in any case, aliases included (``"JPG"`` → ``"jpeg"``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    return key if key in FORMATS else None


def format_for_suffix(suffix: str) -> str | None:
    """Our format key for a file suffix (``".jpg"`` → ``"jpeg"``), or None if not writable."""
    return _SUFFIX_TO_KEY.get(suffix.lower())


__all__ = ["FORMATS", "IMAGE_SUFFIXES", "format_for_suffix", "format_key"]
