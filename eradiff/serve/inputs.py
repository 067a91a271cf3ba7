"""Request bodies → checked arrays and options, with a 4xx :class:`ApiError` for every bad input.

| check                         | status | code                | when                                            |
| ----------------------------- | ------ | ------------------- | ----------------------------------------------- |
| not multipart, missing part   | 400    | ``bad_request``     | before reading files                            |
| body or file over the limit   | 413    | ``too_large``       | from Content-Length, else while streaming       |
| pixel count over the limit    | 413    | ``too_many_pixels`` | from the header dimensions, before decoding     |
| not an image / unsupported    | 415    | ``not_an_image``    | Pillow cannot identify it (or a format not used)|
| truncated / undecodable       | 422    | ``cannot_decode``   | full decode fails                               |
| mask of another aspect ratio  | 422    | ``aspect_ratio``    | the pipeline's rule (:func:`fit_mask`)           |
| empty mask / whole-image mask | 422    | ``empty_mask`` / ``mask_covers_image`` |                              |
| bad options                   | 422    | ``bad_options``     | unknown key, wrong type, out of range           |

Uploads are held in memory while the body streams in (bounded by the limits). Decoding reuses the
pipeline's readers (:func:`~eradiff.pipeline.io.read_image`, :func:`~eradiff.pipeline.io.read_mask`:
EXIF orientation, 16-bit, alpha masks), which read files: the bytes are written to fixed names
(``image``, ``mask``) in a fresh temporary folder that is removed before the function returns.
Nothing a request sends (file names included) ever becomes a path.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import types
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from python_multipart.multipart import MultipartParser, parse_options_header

from eradiff.errors import InputError, first_line
from eradiff.formats import format_key
from eradiff.options import EraseOptions, OptionInfo, option_infos
from eradiff.pipeline.io import FORMATS, LoadedImage, read_image, read_mask

# formats Pillow may open for a request (others, e.g. EPS through Ghostscript, are refused)
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", "PPM")
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff", "bmp": "image/bmp"}
SUFFIXES = {key: suffix for key, (_, suffix) in FORMATS.items()}
PARTS = ("image", "mask", "options")
MAX_FIELD_BYTES = 64 * 1024


class ApiError(Exception):
    """An HTTP error with a JSON body ``{"error": message, "code": code}``."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@dataclass
class Part:
    """One multipart part: its field name, the client's file name (display only) and bytes."""

    name: str
    filename: str | None
    data: bytearray = field(default_factory=bytearray)


def max_body_bytes(max_file_bytes: int) -> int:
    """The largest accepted request body: two files, the options and multipart framing."""
    return 2 * max_file_bytes + MAX_FIELD_BYTES + 16 * 1024


async def read_multipart(
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterator[bytes],
    *,
    max_file_bytes: int,
) -> dict[str, Part]:
    """Parse a ``multipart/form-data`` body with the parts ``image``, ``mask`` and ``options``.

    Args:
        content_type: the request's Content-Type header.
        content_length: the request's Content-Length header (None for chunked bodies).
        chunks: the body as it streams in.
        max_file_bytes: limit for each file part; the whole body may hold two such files plus
            ``MAX_FIELD_BYTES`` of fields and multipart framing.

    Returns:
        The parts by name.

    Raises:
        ApiError: 400 for a malformed body or unknown/duplicate parts, 413 over a limit.
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(400, "bad_request", "send multipart/form-data with the parts image, mask and (optional) options")
    max_body = max_body_bytes(max_file_bytes)
    if content_length is not None and content_length.isdigit() and int(content_length) > max_body:
        raise ApiError(413, "too_large", _too_large(max_file_bytes))
    parts: dict[str, Part] = {}
    header_field, header_value = bytearray(), bytearray()
    headers: dict[bytes, bytes] = {}
    current: list[Part | None] = [None]
    received = 0

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if name not in PARTS:
            raise ApiError(400, "bad_request", f"unexpected part {name[:40]!r}; send image, mask and options")
        if name in parts:
            raise ApiError(400, "bad_request", f"part {name!r} sent twice")
        filename = disposition.get(b"filename")
        part = Part(name=name, filename=None if filename is None else filename.decode("utf-8", "replace")[:200])
        parts[name] = part
        current[0] = part

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = current[0]
        assert part is not None
        part.data.extend(data[start:end])
        limit = MAX_FIELD_BYTES if part.name == "options" else max_file_bytes
        if len(part.data) > limit:
            if part.name == "options":
                raise ApiError(413, "too_large", f"options are over {MAX_FIELD_BYTES // 1024} KiB")
            raise ApiError(413, "too_large", f"{part.name}: " + _too_large(max_file_bytes))

    def on_part_end() -> None:
        current[0] = None

    callbacks = {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    }  # fmt: skip
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_body:
                raise ApiError(413, "too_large", _too_large(max_file_bytes))
            parser.write(chunk)
        parser.finalize()
    except ApiError as exc:
        if exc.status != 413:
            await drain(chunks, limit=max_body - received)
        raise
    except Exception as exc:  # python-multipart's parse errors
        await drain(chunks, limit=max_body - received)
        raise ApiError(400, "bad_request", f"malformed multipart body ({first_line(exc)})") from exc
    for name in ("image", "mask"):
        if name not in parts:
            raise ApiError(400, "bad_request", f"the {name!r} part is missing")
    return parts


async def drain(chunks: AsyncIterator[bytes], *, limit: int) -> None:
    """Read and drop the rest of a body (at most ``limit`` bytes) before answering early.

    A server that answers and closes while the request body is still arriving makes the client's
    TCP stack see a reset, and the client may lose the answer (a 503, a 400); reading the
    bounded remainder first lets every client read its error.
    """
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            return


def _too_large(max_file_bytes: int) -> str:
    return f"the upload is over the {max_file_bytes / 2**20:.3g} MiB limit per file"


@dataclass
class Upload:
    """A decoded request: the image as the pipeline reads it, the mask and notes for the reply."""

    image: LoadedImage
    mask: np.ndarray
    warnings: list[str]


def probe(data: bytes | bytearray, what: str, *, max_pixels: int) -> tuple[int, int]:
    """Identify an upload from its header only and check its pixel count: (width, height).

    Raises:
        ApiError: 415 when it is no image of an allowed format, 413 over ``max_pixels``.
    """
    if not data:
        raise ApiError(415, "not_an_image", f"{what}: the file is empty")
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as im:  # lazy: reads the header only
            w, h = im.size
    except Image.DecompressionBombError as exc:
        raise ApiError(413, "too_many_pixels", f"{what}: {first_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise ApiError(
            415, "not_an_image", f"{what}: not an image (accepted: {', '.join(f.lower() for f in UPLOAD_FORMATS)})"
        ) from exc
    except Exception as exc:
        raise ApiError(422, "cannot_decode", f"{what}: cannot be read ({first_line(exc)})") from exc
    if w * h > max_pixels:
        raise ApiError(
            413, "too_many_pixels",
            f"{what}: {w}×{h} = {w * h / 1e6:.1f} MP is above the {max_pixels / 1e6:g} MP limit",
        )  # fmt: skip
    return w, h


def decode_upload(image: Part, mask: Part, *, max_pixels: int, tmp_root: str | Path | None) -> Upload:
    """Probe both files, decode them with the pipeline's readers and check the mask.

    Raises:
        ApiError: see the module table.
    """
    image_name = _display_name(image, "image")
    mask_name = _display_name(mask, "mask")
    probe(image.data, image_name, max_pixels=max_pixels)
    probe(mask.data, mask_name, max_pixels=max_pixels)
    with tempfile.TemporaryDirectory(prefix="req-", dir=tmp_root) as folder:
        image_path, mask_path = Path(folder) / "image", Path(folder) / "mask"
        image_path.write_bytes(image.data)
        mask_path.write_bytes(mask.data)
        try:
            loaded = read_image(image_path, max_pixels=max_pixels)
        except InputError as exc:
            raise ApiError(422, "cannot_decode", _rename(exc, image_path, image_name)) from exc
        try:
            M, notes = read_mask(mask_path, loaded.size, max_pixels=max_pixels)
        except InputError as exc:
            message = _rename(exc, mask_path, mask_name)
            code = "aspect_ratio" if "aspect ratio" in message else "cannot_decode"
            raise ApiError(422, code, message) from exc
    loaded.path = None
    notes = [note.replace(repr(str(mask_path)), repr(mask_name)) for note in notes]
    if not M.any():
        raise ApiError(422, "empty_mask", "the mask is empty: paint over what to erase (white = erase)")
    if M.all():
        raise ApiError(422, "mask_covers_image", "the mask covers the whole image: there is no background to fill from")
    return Upload(image=loaded, mask=M, warnings=notes)


def _display_name(part: Part, what: str) -> str:
    return f"{what} {part.filename!r}" if part.filename else what


def _rename(exc: BaseException, path: Path, name: str) -> str:
    """The pipeline's one-line message with the temporary path replaced by the upload's name."""
    return first_line(exc).replace(f"image {str(path)!r}", name).replace(f"mask {str(path)!r}", name)


# -- options -------------------------------------------------------------------------------------

# the API's options: EraseOptions' fields marked ``api`` (their help and range declared there) + format
API_OPTIONS: dict[str, OptionInfo] = {name: info for name, info in option_infos().items() if info.api}


def _json_types(name: str) -> tuple[type, ...]:
    """The JSON value types an option accepts, from EraseOptions' annotation (ints for floats too)."""
    hint = typing.get_type_hints(EraseOptions)[name]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds: list[type] = []
    for a in args:
        if a is type(None) or API_OPTIONS[name].random:
            kinds.append(type(None))
        if a is float:
            kinds += [int, float]
        elif a in (int, bool, str):
            kinds.append(a)
        elif typing.get_origin(a) is typing.Literal:
            kinds.append(str)
    return tuple(dict.fromkeys(kinds))


def _describe(info: OptionInfo) -> str:
    text = info.range_text(api=True)
    if info.random:
        text = f"{text}, or -1/null for a random one"
    if info.max_length is not None:
        text = f"≤ {info.max_length} characters"
    return f"{info.help} ({text})" if text else info.help


# key → (JSON types, description)
OPTION_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    **{name: (_json_types(name), _describe(info)) for name, info in API_OPTIONS.items()},
    "format": ((str,), f"output format: {', '.join(FORMATS)} (default: the input's)"),
}


@dataclass
class RequestOptions:
    """Checked options: the pipeline's :class:`EraseOptions` and the output format (None = input's)."""

    erase: EraseOptions
    format: str | None
    random_seed: bool


def parse_options(raw: bytes | bytearray | str | None, *, defaults: EraseOptions, seed: int) -> RequestOptions:
    """Parse the ``options`` JSON object; missing keys take ``defaults``.

    The seed follows the command line's rule: absent means the default (0), -1 or null a random one.

    Args:
        raw: the JSON text (None or empty = all defaults).
        defaults: the server's default options.
        seed: the seed to use when the request asks for a random one (-1 or null).

    Raises:
        ApiError: 422 ``bad_options`` naming the key, or listing the valid keys.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else (raw or "")
    values: dict[str, Any] = {}
    if text.strip():
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise ApiError(422, "bad_options", f"options are not valid JSON ({first_line(exc)})") from exc
        if not isinstance(values, dict):
            raise ApiError(422, "bad_options", "options must be a JSON object")
    for key, value in values.items():
        if key not in OPTION_TYPES:
            raise ApiError(422, "bad_options", f"unknown option {key[:40]!r}; valid: {', '.join(OPTION_TYPES)}")
        kind, what = OPTION_TYPES[key]
        if (isinstance(value, bool) and bool not in kind) or not isinstance(value, kind):
            raise ApiError(422, "bad_options", f"option {key!r} = {json.dumps(value)[:40]}: expected {what}")
    for key, value in values.items():
        _check_api_limits(key, value)
        if OPTION_TYPES[key][0] == (int, float):
            values[key] = float(value)  # JSON's 1 is an int; the pipeline's maths takes floats
    fmt = values.pop("format", None)
    if fmt is not None:
        key = format_key(str(fmt))  # the jpg/tif aliases live in eradiff.formats only
        if key is None:
            choices = ", ".join(FORMATS)
            raise ApiError(422, "bad_options", f"option 'format' = {str(fmt)[:20]!r}: choose one of {choices}")
        fmt = key
    requested_seed = values.pop("seed", defaults.seed)
    random_seed = requested_seed is None or requested_seed == -1  # other negatives: _check_api_limits
    merged = {**_fields(defaults), **values, "seed": seed if random_seed else requested_seed}
    try:
        options = EraseOptions(**merged)
    except ValueError as exc:
        raise ApiError(422, "bad_options", first_line(exc)) from exc
    return RequestOptions(erase=options, format=fmt, random_seed=random_seed)


def _fields(options: EraseOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


def _check_api_limits(key: str, value: Any) -> None:
    """The server's own bounds (cost per request) and the numeric ranges; EraseOptions checks the rest."""
    info = API_OPTIONS.get(key)
    if info is None or value is None or (info.random and value == -1):
        return
    if info.max_length is not None and len(value) > info.max_length:
        raise ApiError(422, "bad_options", f"option {key!r} is over {info.max_length} characters")
    if info.choices is not None or isinstance(value, str | bool):
        return
    if not info.in_range(value, api=True):
        raise ApiError(422, "bad_options", f"option {key!r} = {value}: expected {OPTION_TYPES[key][1]}")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(filename: str | None, fmt: str) -> str:
    """``STEM.erased.EXT`` for the Content-Disposition header (the stem reduced to safe characters)."""
    stem = Path(filename or "image").stem if filename else "image"
    stem = _UNSAFE.sub("_", stem).strip("._")[:80] or "image"
    return f"{stem}.erased{SUFFIXES[fmt]}"


__all__ = [
    "MEDIA_TYPES",
    "OPTION_TYPES",
    "ApiError",
    "Part",
    "RequestOptions",
    "Upload",
    "decode_upload",
    "download_name",
    "drain",
    "max_body_bytes",
    "parse_options",
    "probe",
    "read_multipart",
]
