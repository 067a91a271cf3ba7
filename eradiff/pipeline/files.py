"""Erase one image file with one mask file into the bytes of its output file.

``eradiff erase`` and ``eradiff batch`` share this step (read, erase, encode); each writes the
bytes itself (atomically, :func:`eradiff.pipeline.io.atomic_write`). A mask with nothing to erase
gives the input file's own bytes when the output has the input's format.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from eradiff.errors import EraDiffError, first_line
from eradiff.formats import format_for_suffix
from eradiff.models.family import ErasureModel
from eradiff.options import EraseOptions
from eradiff.pipeline.erase import EraseResult, ProgressFn
from eradiff.pipeline.io import LoadedImage, encode_image, output_format, read_image, read_mask


@dataclass
class ErasedFile:
    """What :func:`erase_file` made.

    Attributes:
        data: the output file's bytes.
        loaded: the input image as read.
        result: the erased array and its report.
        copied: the mask was empty; ``data`` is the input unchanged.
        format: the output's format key.
        warnings: one-line warnings (mask resized, empty mask, …).
        timings: seconds spent reading (``read``), erasing (``erase``) and encoding (``encode``).
    """

    data: bytes
    loaded: LoadedImage
    result: EraseResult
    copied: bool
    format: str
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def erase_file(
    model: ErasureModel,
    image: Path,
    mask: Path,
    options: EraseOptions,
    *,
    output: Path,
    fmt: str | None = None,
    progress: ProgressFn | None = None,
) -> ErasedFile:
    """Read ``image`` and ``mask``, erase, and encode the result for ``output``.

    Args:
        model: the erasure model.
        image: the image file.
        mask: the mask file (white = erase; same aspect ratio as the image).
        options: the erase options (their seed included).
        output: where the result will be written (its suffix picks the format unless ``fmt``).
        fmt: a format key that overrides the suffix.
        progress: the step callback of :func:`eradiff.pipeline.erase.erase`.

    Raises:
        InputError: an unreadable image or mask, or a mask of another aspect ratio.
        OutputError: an unknown output format.
    """
    from eradiff.pipeline.erase import erase  # looked up per call (tests replace it to simulate Ctrl+C)

    t0 = time.perf_counter()
    loaded = read_image(image)
    mask_array, notes = read_mask(mask, loaded.size)
    key = output_format(loaded, output, fmt)
    t1 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = erase(model, loaded.pixels, mask_array, options, progress=progress)
    notes.extend(str(w.message) for w in caught if issubclass(w.category, UserWarning))
    t2 = time.perf_counter()
    copied = result.report.masked_pixels == 0
    if copied and key == loaded.format == format_for_suffix(image.suffix):
        data = image.read_bytes()  # nothing to erase: the input file itself, not a re-encoding
    else:
        data = encode_image(result.image, key, like=loaded)
    timings = {"read": t1 - t0, "erase": t2 - t1, "encode": time.perf_counter() - t2}
    return ErasedFile(data=data, loaded=loaded, result=result, copied=copied, format=key, warnings=notes,
                      timings=timings)  # fmt: skip


def failure_message(exc: Exception, *, image: str | Path, output: str | Path) -> str:
    """The one-line message of a file that could not be erased (the run goes on with the next).

    An :class:`~eradiff.errors.EraDiffError` says it all; an OS error names its file (else the
    output); anything else is a bug: its type and first line, with the image it happened on.
    """
    if isinstance(exc, EraDiffError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{str(exc.filename or output)!r}: {exc.strerror or first_line(exc)}"
    return f"{str(image)!r}: {type(exc).__name__}: {first_line(exc)}"


__all__ = ["ErasedFile", "erase_file", "failure_message"]
