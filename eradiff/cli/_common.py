"""What every command shares: the one-line error, the device and backend choices, the model loader.

Errors: a command raises :class:`CLIError` (message, exit code) wherever it finds a problem; its
entry point turns it into ``error: MESSAGE`` on stderr and the exit code with :func:`fail`. Exit
codes: 2 for an invalid option, 1 for everything else, 130 for Ctrl+C.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer

from eradiff.options import BACKENDS, DEVICES

F = TypeVar("F", bound=Callable[..., Any])


class CLIError(Exception):
    """A one-line error with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def model_option() -> Any:
    """``--model/-m`` of erase and serve: the spec :func:`load_erasure_model` loads."""
    return typer.Option(
        None,
        "--model",
        "-m",
        help="'default', a classical fill (telea | ns | biharmonic | patchmatch), a diffusers SD2-inpainting "
        "folder, a .safetensors file or a hub id.",
    )


def erase_option(name: str) -> Any:
    """The ``typer.Option`` of an :class:`~eradiff.options.EraseOptions` field: its flag, default and help.

    The help adds the field's range or choices; a ``random`` option says that -1 draws one.
    """
    from eradiff.options import option_defaults, option_infos

    info = option_infos()[name]
    if info.flag is None:
        raise ValueError(f"{name} is not a command-line option")
    text = info.range_text()
    if info.random:
        text = f"{text}; -1 picks a random one and prints it"
    help_text = f"{info.help[0].upper()}{info.help[1:]}" + (f" ({text})." if text else ".")
    return typer.Option(option_defaults()[name], info.flag, help=help_text)


def with_erase_options(*, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Give a command every CLI option of :class:`~eradiff.options.EraseOptions` (but ``exclude``).

    The options are appended to the command's signature (typer reads ``__signature__``) with the
    flag, default and help of :func:`erase_option`; the command receives them in its ``**erase``
    keyword arguments, ready for :func:`erase_options_from`. ``erase`` and ``batch`` share them so.
    """
    import inspect
    import typing

    from eradiff.options import EraseOptions, option_infos

    hints = typing.get_type_hints(EraseOptions)

    def cli_type(name: str) -> Any:
        return str if typing.get_origin(hints[name]) is typing.Literal else hints[name]

    def wrap(command: F) -> F:
        sig = inspect.signature(command)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        keyword = inspect.Parameter.KEYWORD_ONLY
        added = [
            inspect.Parameter(name, keyword, default=erase_option(name), annotation=cli_type(name))
            for name, info in option_infos().items()
            if info.flag is not None and name not in exclude
        ]
        command.__signature__ = sig.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return command

    return wrap


def erase_options_from(values: dict[str, Any], *, seed: int) -> Any:
    """:class:`~eradiff.options.EraseOptions` from a command's option values (unknown keys ignored).

    Raises:
        CLIError: a value out of range (exit code 2).
    """
    from eradiff.options import EraseOptions, option_infos  # torch-free: ranges are checked before torch loads

    try:
        return EraseOptions(**{**{k: values[k] for k in option_infos() if k in values}, "seed": seed})
    except ValueError as exc:
        raise CLIError(str(exc), 2) from exc


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: MESSAGE`` on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def check_device_and_backend(device: str, backend: str, model: str | None) -> None:
    """The ``--device``/``--backend`` choices and ``--backend``'s need of an exported file (no torch).

    Raises:
        CLIError: exit code 2.
    """
    if backend not in BACKENDS:
        raise CLIError(f"backend {backend!r} is not available; choose one of {', '.join(BACKENDS)}", 2)
    if device not in DEVICES:
        raise CLIError(f"device {device!r} is not valid; choose one of {', '.join(DEVICES)}", 2)
    if backend != "torch" and model is None:
        suffix = ".onnx" if backend == "onnx" else ".plan"
        raise CLIError(f"--backend {backend} needs --model FILE{suffix} (written by eradiff export)", 2)


def load_erasure_model(spec: str | None, *, backend: str, device: str, offline: bool) -> tuple[Any, Any, Any]:
    """The model for erase and serve: ``(model, torch device, dtype)``.

    ``--backend torch`` loads ``spec`` with :func:`eradiff.models.loading.load_model` (fp16 on
    CUDA); ``onnx``/``trt`` wrap an exported file (:func:`eradiff.export.load_backend_model`).

    Raises:
        CLIError: a device this machine lacks or a missing TensorRT (2), any load error (1).
    """
    import torch

    from eradiff.errors import EraDiffError
    from eradiff.models.loading import load_model, resolve_device, set_offline

    if offline:
        set_offline()
    try:
        dev = resolve_device(device)
    except ValueError as exc:
        raise CLIError(str(exc), 2) from exc
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    try:
        if backend == "torch":
            return load_model(spec, device=dev, dtype=dtype, offline=offline), dev, dtype
        from eradiff.export import load_backend_model

        assert spec is not None  # check_device_and_backend refused --backend without --model
        return load_backend_model(spec, backend, device=str(dev), offline=offline), dev, dtype  # type: ignore[arg-type]
    except EraDiffError as exc:
        from eradiff.export.trt import TensorRTUnavailable

        raise CLIError(str(exc), 2 if isinstance(exc, TensorRTUnavailable) else 1) from exc
    except ImportError as exc:
        raise CLIError(f"--backend {backend} is not available here ({exc}); install the onnx or gpu extra", 1) from exc


__all__ = ["CLIError", "check_device_and_backend", "fail", "load_erasure_model", "model_option"]
