"""How a folder of images is paired with masks and named on output: plain rules on file names.

``eradiff erase`` (local folders) and ``eradiff batch`` (local folders and fsspec URLs) share
these, so both commands pair and name files the same way. No torch, no imaging library.

| name              | rule                                                                          |
| ----------------- | ----------------------------------------------------------------------------- |
| ``image_names``   | the names of a folder that count as images: not hidden, an image suffix, sorted |
| ``masks_by_stem`` | mask names grouped by file stem (``a.png`` and ``a.jpg`` are both ``a``)      |
| ``mask_for``      | an image's mask: the one mask with its stem, else an error naming the folder  |
| ``output_suffix`` | an output's suffix: ``--format``'s, else the input's when writable, else .png |
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from eradiff.formats import FORMATS, IMAGE_SUFFIXES, format_for_suffix


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix


def stem(name: str) -> str:
    """A file name's stem (``"a.b.png"`` → ``"a.b"``), as :attr:`pathlib.Path.stem`."""
    return PurePosixPath(name).stem


def image_names(names: Iterable[str]) -> list[str]:
    """The names (base names of a folder's files) that count as images, sorted."""
    return sorted(n for n in names if not n.startswith(".") and _suffix(n).lower() in IMAGE_SUFFIXES)


def masks_by_stem(names: Iterable[str]) -> dict[str, list[str]]:
    """Image names (see :func:`image_names`) grouped by stem."""
    masks: dict[str, list[str]] = {}
    for name in image_names(names):
        masks.setdefault(stem(name), []).append(name)
    return masks


def mask_for(image_stem: str, masks: dict[str, list[str]], *, folder: str) -> tuple[str | None, str | None]:
    """The mask name for an image stem: ``(name, None)``, or ``(None, error)`` when none or several match."""
    found = masks.get(image_stem, [])
    if not found:
        return None, f"no mask named {image_stem}.* in {folder!r}"
    if len(found) > 1:
        return None, f"several masks named {image_stem}.* in {folder!r}: {', '.join(found)}"
    return found[0], None


def output_suffix(image_name: str, fmt: str | None) -> str:
    """The suffix of an image's output: ``fmt``'s, else the input's when writable, else ``.png``."""
    if fmt is not None:
        return FORMATS[fmt][1]
    suffix = _suffix(image_name)
    return suffix if format_for_suffix(suffix) is not None else ".png"


__all__ = ["image_names", "mask_for", "masks_by_stem", "output_suffix", "stem"]
