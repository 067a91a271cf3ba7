"""Errors the user can act on. The command line prints their message as one line, no traceback."""


class EraDiffError(Exception):
    """Base class: a problem with the user's input, model or output, explained in one line."""


class ModelLoadError(EraDiffError):
    """A model spec that names nothing loadable: missing, malformed, unknown or not an inpainting model."""


class InputError(EraDiffError):
    """An image or mask that cannot be read or used (unreadable, truncated, too large, wrong shape)."""


class OutputError(EraDiffError):
    """An output that cannot be written (unwritable folder, would overwrite an input, bad format)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name if it has none)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
