"""The items of a batch: folders or a manifest → one :class:`Item` per image, before any image is read.

Sources. A folder of images with a folder of masks (matched by stem) or one mask file, with the
rules of ``eradiff erase`` (:mod:`eradiff.pairing`); or a manifest: CSV, JSONL or Parquet with the
columns ``image`` and ``mask``, and optionally ``output`` and ``seed`` (other columns are ignored).
Locations are local paths or fsspec URLs (``file://``, ``memory://``, ``s3://`` with its fsspec
backend); a manifest's relative locations are relative to the manifest.

Outputs lie under one local folder OUT: a manifest's ``output`` is relative to it; by default an
item is written to ``OUT/STEM.EXT`` (the suffix rule of ``eradiff erase``). An item's **key** is
its output path relative to OUT (POSIX separators): unique within a batch, independent of where
its inputs live, and what resume and the results manifest identify it by.

Seeds. An item's seed is its manifest ``seed``, else :func:`item_seed` of the global seed and its
key: never its position, nor the worker that erases it, so every engine writes the same bits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import posixpath
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from eradiff.formats import format_for_suffix
from eradiff.pairing import image_names, mask_for, masks_by_stem, output_suffix, stem

MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
SEED_LIMIT = 2**62  # item seeds lie in [0, 2^62); window k of an image uses seed + k (EraseOptions allows < 2^63)
COLUMNS = ("image", "mask", "output", "seed")


class PlanError(ValueError):
    """A source, manifest or output that cannot make a batch; the message is one line."""


@dataclass(frozen=True)
class Item:
    """One image of a batch.

    Attributes:
        index: its position in the source (rows and results keep this order).
        key: its output path relative to OUT, POSIX separators.
        image: the image's location (local path or URL).
        mask: the mask's location; None when ``error`` says why there is none.
        output: the local output path.
        seed: the erase seed.
        error: a reason the item fails without being read (no mask matched its stem), or None.
    """

    index: int
    key: str
    image: str
    mask: str | None
    output: str
    seed: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_seed(seed: int, key: str) -> int:
    """The seed of an item without a manifest seed: a hash of the global ``seed`` and the item's ``key``.

    In [0, 2^62); the same for the same (seed, key) on every machine and in every order.
    """
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def is_url(location: str) -> bool:
    """True for ``scheme://…`` locations (fsspec), False for local paths."""
    return "://" in location


def local_path(location: str) -> Path | None:
    """The local path of a plain path or a ``file://`` URL; None for other URLs."""
    if not is_url(location):
        return Path(location).expanduser()
    if location.startswith("file://"):
        from fsspec.implementations.local import LocalFileSystem

        return Path(LocalFileSystem._strip_protocol(location))
    return None


def _fs(location: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as exc:  # no backend for the scheme (s3fs, gcsfs, …)
        raise PlanError(f"{location!r}: {exc}") from exc


def _kind(location: str) -> str:
    """``"dir"``, ``"file"`` or ``"missing"``."""
    path = local_path(location)
    if path is not None:
        return "dir" if path.is_dir() else "file" if path.exists() else "missing"
    fs, p = _fs(location)
    try:
        info = fs.info(p)
    except FileNotFoundError:
        return "missing"
    return "dir" if info.get("type") == "directory" else "file"


def _file_names(folder: str) -> list[str]:
    """Base names of the files directly in a folder."""
    path = local_path(folder)
    if path is not None:
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_file()]
    fs, p = _fs(folder)
    return [posixpath.basename(e["name"].rstrip("/")) for e in fs.ls(p, detail=True) if e.get("type") == "file"]


def _join(folder: str, name: str) -> str:
    return str(Path(folder) / name) if not is_url(folder) else f"{folder.rstrip('/')}/{name}"


def _base_name(location: str) -> str:
    return posixpath.basename(location.split("?", 1)[0].rstrip("/")) if is_url(location) else Path(location).name


def plan_folder(images: str, masks: str, out: Path, *, seed: int, fmt: str | None = None) -> list[Item]:
    """Items for a folder of images and a folder of masks (matched by stem) or one mask file.

    Raises:
        PlanError: a missing folder or mask, an empty folder, the same folder twice, or two images
            that would share an output.
    """
    if _kind(images) != "dir":
        raise PlanError(f"image folder {images!r}: no such folder")
    mask_kind = _kind(masks)
    if mask_kind == "missing":
        raise PlanError(f"mask {masks!r}: no such file or folder")
    names = image_names(_file_names(images))
    if not names:
        raise PlanError(f"folder {images!r} holds no image files")
    image_dir, mask_dir = local_path(images), local_path(masks)
    both_local = image_dir is not None and mask_dir is not None
    same = images == masks or (both_local and image_dir.resolve() == mask_dir.resolve())
    if mask_kind == "dir" and same:
        raise PlanError("SOURCE and MASKS are the same folder; put the masks in a folder of their own")
    by_stem = masks_by_stem(_file_names(masks)) if mask_kind == "dir" else {}
    items = []
    for index, name in enumerate(names):
        mask, error = masks, None
        if mask_kind == "dir":
            found, error = mask_for(stem(name), by_stem, folder=masks)
            mask = None if found is None else _join(masks, found)
        key = f"{stem(name)}{output_suffix(name, fmt)}"
        items.append(_item(index, key, _join(images, name), mask, out, seed=seed, error=error))
    _check_outputs(items, "images")
    return items


def _item(index: int, key: str, image: str, mask: str | None, out: Path, *, seed: int, error=None, own_seed=None):
    return Item(index=index, key=key, image=image, mask=mask, output=str(out / key),
                seed=item_seed(seed, key) if own_seed is None else own_seed, error=error)  # fmt: skip


def _check_outputs(items: list[Item], what: str) -> None:
    """No two items share an output, and no output replaces a local input."""
    seen: dict[str, Item] = {}
    for item in items:
        other = seen.setdefault(item.key, item)
        if other is not item:
            raise PlanError(
                f"{what} {other.image!r} and {item.image!r} would both be written to {item.output!r}; "
                + ("name distinct outputs in an 'output' column" if what == "rows" else "use a manifest")
            )
    inputs = set()
    for item in items:
        for location in (item.image, item.mask):
            path = None if location is None else local_path(location)
            if path is not None:
                inputs.add(path.resolve())
    for item in items:
        if Path(item.output).resolve() in inputs:
            raise PlanError(f"output {item.output!r} would overwrite an input; choose another -o")


def read_manifest(manifest: str) -> list[dict[str, Any]]:
    """The rows of a CSV, JSONL or Parquet manifest as dicts (every column as read).

    Raises:
        PlanError: unknown suffix, unreadable file, malformed row, no ``image`` or ``mask`` column,
            or Parquet without pyarrow.
    """
    kind = MANIFEST_SUFFIXES.get(PurePosixPath(_base_name(manifest)).suffix.lower())
    if kind is None:
        raise PlanError(f"manifest {manifest!r}: the suffix must be one of {', '.join(MANIFEST_SUFFIXES)}")
    try:
        data = _read_bytes(manifest)
    except FileNotFoundError as exc:
        raise PlanError(f"manifest {manifest!r}: no such file") from exc
    except OSError as exc:
        raise PlanError(f"manifest {manifest!r}: cannot be read ({exc.strerror or exc})") from exc
    if kind == "parquet":
        rows, columns = _parquet_rows(manifest, data)
    elif kind == "jsonl":
        rows = []
        for n, line in enumerate(data.decode("utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PlanError(f"manifest {manifest!r} line {n}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise PlanError(f"manifest {manifest!r} line {n}: not a JSON object")
            rows.append(row)
        columns = set().union(*(r.keys() for r in rows)) if rows else set()
    else:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        rows = list(reader)
        columns = set(reader.fieldnames or ())
    missing = [c for c in ("image", "mask") if c not in columns]
    if missing:
        raise PlanError(f"manifest {manifest!r} has no {' or '.join(map(repr, missing))} column")
    if not rows:
        raise PlanError(f"manifest {manifest!r} has no rows")
    return rows


def _read_bytes(location: str) -> bytes:
    path = local_path(location)
    if path is not None:
        return path.read_bytes()
    fs, p = _fs(location)
    return fs.cat_file(p)


def _parquet_rows(manifest: str, data: bytes) -> tuple[list[dict[str, Any]], set[str]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise PlanError('a Parquet manifest needs pyarrow: pip install -e ".[ray]"') from exc
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # pyarrow raises its own types for a file that is not Parquet
        raise PlanError(f"manifest {manifest!r}: not a Parquet file ({str(exc).splitlines()[0]})") from exc
    return table.to_pylist(), set(table.column_names)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _row_seed(value: Any, where: str) -> int | None:
    if _text(value) is None:
        return None
    try:
        number = float(value) if isinstance(value, float) else int(str(value).strip())
    except ValueError as exc:
        raise PlanError(f"{where}: seed {value!r} is not an integer") from exc
    if isinstance(number, float) and not number.is_integer():
        raise PlanError(f"{where}: seed {value!r} is not an integer")
    if not 0 <= int(number) < SEED_LIMIT:
        raise PlanError(f"{where}: seed {value!r} must be in [0, 2^62)")
    return int(number)


def _resolve(value: str, manifest: str) -> str:
    """A manifest location: URLs and absolute paths as they are, others relative to the manifest."""
    if is_url(value) or Path(value).expanduser().is_absolute():
        return value
    if is_url(manifest):
        return f"{manifest.rsplit('/', 1)[0]}/{value}"
    return str(Path(manifest).expanduser().parent / value)


def _output_key(value: str, where: str, fmt: str | None) -> str:
    key = PurePosixPath(value.replace("\\", "/"))
    if is_url(value) or key.is_absolute() or ".." in key.parts or key.name in ("", "."):
        raise PlanError(f"{where}: output {value!r} must be a file path relative to the output folder")
    if not key.suffix or (fmt is None and format_for_suffix(key.suffix) is None):
        raise PlanError(f"{where}: output {value!r} needs an image suffix (.png, .jpg, .webp, .tif, .bmp)")
    return key.as_posix()


def plan_manifest(manifest: str, out: Path, *, seed: int, fmt: str | None = None) -> list[Item]:
    """Items for the rows of a manifest (see the module docstring).

    Raises:
        PlanError: see :func:`read_manifest`; a row without an image, an output outside OUT or
            without an image suffix, a seed that is not an integer in [0, 2^62), two rows with one
            output.
    """
    items = []
    for index, row in enumerate(read_manifest(manifest)):
        where = f"manifest {manifest!r} row {index + 1}"
        image = _text(row.get("image"))
        if image is None:
            raise PlanError(f"{where}: no image")
        image = _resolve(image, manifest)
        mask = _text(row.get("mask"))
        output = _text(row.get("output"))
        name = _base_name(image)
        key = _output_key(output, where, fmt) if output else f"{stem(name)}{output_suffix(name, fmt)}"
        error = None if mask is not None else f"{where}: no mask"
        mask = None if mask is None else _resolve(mask, manifest)
        items.append(_item(index, key, image, mask, out, seed=seed, error=error,
                           own_seed=_row_seed(row.get("seed"), where)))  # fmt: skip
    _check_outputs(items, "rows")
    return items


def is_manifest(source: str) -> bool:
    """True when ``source`` names a manifest file by its suffix."""
    return PurePosixPath(_base_name(source)).suffix.lower() in MANIFEST_SUFFIXES


def plan(source: str, masks: str | None, out: Path, *, seed: int, fmt: str | None = None) -> list[Item]:
    """Items for ``eradiff batch SOURCE [MASKS]``: a manifest (no MASKS) or an image folder with MASKS.

    Raises:
        PlanError: see :func:`plan_folder` and :func:`plan_manifest`; MASKS given with a manifest
            or missing for a folder; a SOURCE that is neither.
    """
    kind = _kind(source)
    if kind == "missing":
        raise PlanError(f"source {source!r}: no such file or folder")
    if kind == "file":
        if not is_manifest(source):
            raise PlanError(f"source {source!r} is a file but not a manifest (.csv, .jsonl, .parquet)")
        if masks is not None:
            raise PlanError("a manifest names each image's mask in its 'mask' column; drop MASKS")
        return plan_manifest(source, out, seed=seed, fmt=fmt)
    if masks is None:
        raise PlanError(f"a folder of images needs MASKS: a folder of masks or one mask file after {source!r}")
    return plan_folder(source, masks, out, seed=seed, fmt=fmt)


__all__ = [
    "COLUMNS",
    "MANIFEST_SUFFIXES",
    "Item",
    "PlanError",
    "is_manifest",
    "is_url",
    "item_seed",
    "local_path",
    "plan",
    "plan_folder",
    "plan_manifest",
    "read_manifest",
]
