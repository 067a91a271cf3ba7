"""Where synthesis material comes from: a photo, an object cut-out, and the region to keep clear.

Every source draws :class:`Material` from a ``numpy.random.Generator`` (so a sample depends only on
its generator) and keeps a ``rejected`` :class:`~collections.Counter` of the items it refused,
each bad item counted once, by reason ("unreadable image", "empty mask", "object too small", …).
A refused draw raises :class:`~eradiff.train.synthesis.DegenerateObjectError`; the data set
catches it and draws again, so one bad file never stops an epoch.

| source                   | layout                                                                  |
| ------------------------ | ----------------------------------------------------------------------- |
| ``MaskedFolderSource``   | ``img.jpg`` + ``img_mask_0.png``, ``img_mask_1.png`` … beside it, or     |
|                          | ``img.jpg`` + ``masks/img/*.png``; one PNG per instance (nonzero = in)  |
| ``CocoSource``           | COCO instances JSON (polygons, RLE compressed or not) + image folder    |
| ``OpenImagesSource``     | OpenImages V5 segmentation CSV + mask PNGs + ``<ImageID>.jpg`` images   |
| ``CutoutSource``         | RGBA cut-outs pasted on unrelated backgrounds (folders or the manifest) |

For the first three the object is cut from the photo itself, as in the paper: x_ori is the photo
with the object in place, and the transformed copy is pasted elsewhere, off the union of all
instance masks of that photo (``Material.background_mask``). The original object stays where it
is in both x_ori and x_obj.

Not thread-safe; with a multi-worker ``DataLoader`` every worker holds its own copy (and its own
counters).
"""

from __future__ import annotations

import csv
import json
import re
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from eradiff.train.synthesis import DegenerateObjectError, alpha_box

__all__ = [
    "CocoSource",
    "CutoutSource",
    "Material",
    "MaterialSource",
    "MaskedFolderSource",
    "OpenImagesSource",
    "coco_rle_decode",
    "coco_rle_encode",
    "coco_rle_from_string",
    "coco_rle_to_string",
    "coco_segmentation_mask",
    "polygons_to_mask",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True, eq=False)
class Material:
    """What :func:`~eradiff.train.synthesis.synthesize_pair` needs.

    Attributes:
        background: (H, W, 3) uint8 photo (x_0^ori before cropping). Shared with the source's
            cache: do not modify.
        obj_rgba: (h, w, 4) uint8 object cut-out, trimmed to its alpha box.
        background_mask: (H, W) bool region the paste must avoid (the photo's own objects), or None.
        key: a readable identifier of the item (for logs).
    """

    background: np.ndarray
    obj_rgba: np.ndarray
    background_mask: np.ndarray | None
    key: str


# ----------------------------------------------------------------------------- image loading


class _LRU:
    """A small least-recently-used cache of decoded arrays."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict = OrderedDict()

    def get(self, key, load):
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        value = load()
        if self.size > 0:
            self.data[key] = value
            if len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


def _read(path: Path, mode: str) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert(mode))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if arr.size == 0:
        return None
    return arr


def _cut_object(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGBA cut-out of ``image`` where ``mask``, trimmed to the mask's box."""
    top, bottom, left, right = alpha_box(mask)
    rgba = np.empty((bottom - top, right - left, 4), np.uint8)
    rgba[..., :3] = image[top:bottom, left:right]
    rgba[..., 3] = mask[top:bottom, left:right] * np.uint8(255)
    rgba[~mask[top:bottom, left:right]] = 0
    return rgba


def _check_area(mask: np.ndarray, min_area: int) -> str | None:
    area = int(np.count_nonzero(mask))
    if area == 0:
        return "empty mask"
    if area < min_area:
        return "object too small"
    if area >= mask.size:
        return "no background left"
    return None


# ----------------------------------------------------------------------------- base class


class MaterialSource(ABC):
    """Base class: ``len()`` items, ``draw(rng)`` material at random, ``rejected`` bad items by reason."""

    def __init__(self, *, min_area: int, cache_size: int) -> None:
        if min_area < 1:
            raise ValueError(f"min_area must be ≥ 1, got {min_area}")
        self.min_area = min_area
        self.rejected: Counter[str] = Counter()
        self._bad: dict[object, str] = {}
        self._cache = _LRU(cache_size)

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def draw(self, rng: np.random.Generator) -> Material:
        """Material drawn with ``rng`` only; raises DegenerateObjectError when the item is bad."""

    def _guarded(self, key: object, load):
        """``load()``, remembering and counting (once) an item that raises DegenerateObjectError."""
        if key in self._bad:
            raise DegenerateObjectError(self._bad[key])
        try:
            return load()
        except DegenerateObjectError as e:
            self._bad[key] = e.reason
            self.rejected[e.reason] += 1
            raise

    def _image(self, path: Path) -> np.ndarray:
        img = self._cache.get(("rgb", path), lambda: _read(path, "RGB"))
        if img is None:
            raise DegenerateObjectError("unreadable image", str(path))
        return img


class _InstanceSource(MaterialSource):
    """Objects cut from their own photo; subclasses list the (image, instance) items."""

    @abstractmethod
    def _load(self, index: int) -> Material:
        """Material of item ``index``; raises DegenerateObjectError for a bad item."""

    def material(self, index: int) -> Material:
        """Material of item ``index`` (0 ≤ index < len); a bad item is counted once."""
        return self._guarded(index, lambda: self._load(index))

    def draw(self, rng: np.random.Generator) -> Material:
        if len(self) == 0:
            raise ValueError(f"{type(self).__name__} has no items")
        return self.material(int(rng.integers(0, len(self))))

    def _instance(self, image: np.ndarray, mask: np.ndarray, union: np.ndarray, key: str) -> Material:
        if mask.shape != image.shape[:2]:
            raise DegenerateObjectError("mask size mismatch", f"{key}: {mask.shape} vs {image.shape[:2]}")
        reason = _check_area(mask, self.min_area)
        if reason is not None:
            raise DegenerateObjectError(reason, key)
        if union.all():
            raise DegenerateObjectError("no background left", key)
        return Material(background=image, obj_rgba=_cut_object(image, mask), background_mask=union, key=key)


# ----------------------------------------------------------------------------- 1: folder of masks


class MaskedFolderSource(_InstanceSource):
    """Photos with one mask PNG per object instance.

    Two layouts are recognised (both may be mixed in one folder):

    * ``root/img.jpg`` with ``root/img_mask_0.png``, ``root/img_mask_1.png``, … beside it;
    * ``root/img.jpg`` with ``root/masks/img/*.png`` (any names).

    A mask pixel belongs to the object when its grey value is > 127. Masks must have the photo's
    size. Photos without masks are ignored; images are searched non-recursively in ``root``.

    Args:
        root: the folder.
        min_area: instances with fewer mask pixels are rejected ("object too small").
        cache_size: decoded photos and masks kept in memory.
    """

    _MASK_RE = re.compile(r"^(?P<stem>.+)_mask_(?P<k>\d+)\.png$", re.IGNORECASE)

    def __init__(self, root: str | Path, *, min_area: int = 64, cache_size: int = 64) -> None:
        super().__init__(min_area=min_area, cache_size=cache_size)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no such folder: {self.root}")
        images = {
            p.stem: p
            for p in sorted(self.root.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and not self._MASK_RE.match(p.name)
        }
        masks: dict[str, list[Path]] = {}
        for p in sorted(self.root.iterdir()):
            m = self._MASK_RE.match(p.name)
            if m and m["stem"] in images:
                masks.setdefault(m["stem"], []).append(p)
        for stem in images:
            sub = self.root / "masks" / stem
            if sub.is_dir():
                masks.setdefault(stem, []).extend(sorted(sub.glob("*.png")))
        self.images = images
        self.masks = masks
        self.items: list[tuple[str, int]] = [(stem, k) for stem in sorted(masks) for k in range(len(masks[stem]))]

    def __len__(self) -> int:
        return len(self.items)

    def _mask(self, path: Path) -> np.ndarray:
        m = self._cache.get(("mask", path), lambda: _read(path, "L"))
        if m is None:
            raise DegenerateObjectError("unreadable mask", str(path))
        return m > 127

    def _load(self, index: int) -> Material:
        stem, k = self.items[index]
        image = self._image(self.images[stem])

        def union_of_masks():
            u = np.zeros(image.shape[:2], bool)
            for p in self.masks[stem]:
                try:
                    m = self._mask(p)
                except DegenerateObjectError:
                    continue
                if m.shape == u.shape:
                    u |= m
            return u

        union = self._cache.get(("union", stem), union_of_masks)
        mask = self._mask(self.masks[stem][k])
        return self._instance(image, mask, union, f"{stem}#{k}")


# ----------------------------------------------------------------------------- 2: COCO


def coco_rle_from_string(s: str) -> list[int]:
    """Decode COCO's compressed RLE string (``rleFrString`` of pycocotools) to run lengths."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(s):
                raise ValueError("truncated COCO RLE string")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def coco_rle_to_string(counts: Sequence[int]) -> str:
    """Encode run lengths as COCO's compressed RLE string (``rleToString`` of pycocotools)."""
    out = []
    for i, v in enumerate(counts):
        x = int(v) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def coco_rle_decode(counts: Sequence[int] | str, height: int, width: int) -> np.ndarray:
    """(height, width) bool mask from COCO RLE (column-major runs, starting with zeros).

    Args:
        counts: run lengths, or the compressed string form.
        height, width: the image size (``rle["size"]`` is ``[height, width]``).
    """
    runs = np.asarray(coco_rle_from_string(counts) if isinstance(counts, str) else counts, dtype=np.int64)
    if (runs < 0).any():
        raise ValueError("COCO RLE has negative run lengths")
    if int(runs.sum()) != height * width:
        raise ValueError(f"COCO RLE covers {int(runs.sum())} pixels, the image has {height}×{width}")
    values = np.arange(runs.size) % 2 == 1
    flat = np.repeat(values, runs)
    return flat.reshape(width, height).T.copy()


def coco_rle_encode(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE ``{"counts": [...], "size": [h, w]}`` of a bool mask."""
    flat = np.asarray(mask, bool).T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"counts": runs, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` given in pixel-corner coordinates.

    Pixel (i, j) is in the mask when its centre (j + 0.5, i + 0.5) is inside a polygon (even-odd
    rule; a centre exactly on a left/top edge is inside, on a right/bottom edge outside), so the
    box polygon ``[x0, y0, x1, y0, x1, y1, x0, y1]`` with integer corners covers exactly
    (x1 − x0)·(y1 − y0) pixels, as pycocotools does. (``cv2.fillPoly`` also fills boundary
    pixels and gives (x1 − x0 + 1)·(y1 − y0 + 1); cocodataset/cocoapi#659.) The polygons of one
    annotation are united; ones with fewer than 3 points are ignored.
    """
    mask = np.zeros((height, width), bool)
    for poly in polygons:
        xy = np.asarray(poly, np.float64).reshape(-1, 2)
        if len(xy) < 3:
            continue
        x0, y0 = xy[:, 0], xy[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        lo = max(0, int(np.floor(y0.min())))
        hi = min(height, int(np.ceil(y0.max())) + 1)
        if lo >= hi:
            continue
        yc = np.arange(lo, hi, dtype=np.float64)[:, None] + 0.5
        crosses = ((y0 <= yc) & (yc < y1)) | ((y1 <= yc) & (yc < y0))
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (yc - y0) * (x1 - x0) / (y1 - y0)
        xc = np.sort(np.where(crosses, xc, np.inf), axis=1)
        n = int(crosses.sum(axis=1).max())
        if n < 2:  # zero-height polygon
            continue
        starts = np.clip(np.ceil(xc[:, 0 : n - 1 : 2] - 0.5), 0, width)
        ends = np.clip(np.ceil(xc[:, 1:n:2] - 0.5), 0, width)
        valid = np.isfinite(ends)
        diff = np.zeros((hi - lo, width + 1), np.int32)
        rows = np.broadcast_to(np.arange(hi - lo)[:, None], valid.shape)
        np.add.at(diff, (rows[valid], starts[valid].astype(np.int64)), 1)
        np.add.at(diff, (rows[valid], ends[valid].astype(np.int64)), -1)
        mask[lo:hi] |= np.cumsum(diff, axis=1)[:, :width] > 0
    return mask


def coco_segmentation_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """Mask of one COCO ``segmentation`` field: polygon list, uncompressed or compressed RLE."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        h, w = segmentation.get("size", (height, width))
        mask = coco_rle_decode(segmentation["counts"], int(h), int(w))
        if mask.shape != (height, width):
            raise ValueError(f"RLE size {mask.shape} differs from the image size {(height, width)}")
        return mask
    raise ValueError(f"unknown COCO segmentation of type {type(segmentation).__name__}")


class CocoSource(_InstanceSource):
    """Instances of a COCO-style annotation file (``images``, ``annotations``).

    Args:
        annotations: path of the JSON file (or the parsed dict).
        image_dir: folder holding the images' ``file_name``.
        category_ids: keep only these categories (default: all).
        include_crowd: also use ``iscrowd`` annotations as objects (they are always avoided).
        min_area: instances with fewer mask pixels are rejected.
        cache_size: decoded images kept in memory.
    """

    def __init__(
        self,
        annotations: str | Path | dict,
        image_dir: str | Path,
        *,
        category_ids: Sequence[int] | None = None,
        include_crowd: bool = False,
        min_area: int = 64,
        cache_size: int = 64,
    ) -> None:
        super().__init__(min_area=min_area, cache_size=cache_size)
        data = annotations if isinstance(annotations, dict) else json.loads(Path(annotations).read_text())
        for key in ("images", "annotations"):
            if key not in data:
                raise ValueError(f"COCO annotations lack the {key!r} list")
        self.image_dir = Path(image_dir)
        self.images = {int(im["id"]): im for im in data["images"]}
        self.by_image: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            self.by_image.setdefault(int(ann["image_id"]), []).append(ann)
        wanted = None if category_ids is None else set(category_ids)
        self.items = [
            ann
            for ann in data["annotations"]
            if (include_crowd or not ann.get("iscrowd", 0))
            and (wanted is None or ann.get("category_id") in wanted)
            and int(ann["image_id"]) in self.images
        ]

    def __len__(self) -> int:
        return len(self.items)

    def _ann_mask(self, ann: dict, h: int, w: int) -> np.ndarray:
        try:
            return coco_segmentation_mask(ann["segmentation"], h, w)
        except (KeyError, ValueError, TypeError) as e:
            raise DegenerateObjectError("bad segmentation", f"annotation {ann.get('id')}: {e}") from e

    def _load(self, index: int) -> Material:
        ann = self.items[index]
        info = self.images[int(ann["image_id"])]
        image = self._image(self.image_dir / info["file_name"])
        h, w = image.shape[:2]
        if (int(info.get("height", h)), int(info.get("width", w))) != (h, w):
            raise DegenerateObjectError("image size mismatch", info["file_name"])

        def union_of_masks():
            u = np.zeros((h, w), bool)
            for other in self.by_image[int(ann["image_id"])]:
                try:
                    u |= self._ann_mask(other, h, w)
                except DegenerateObjectError:
                    continue
            return u

        union = self._cache.get(("union", int(ann["image_id"])), union_of_masks)
        mask = self._ann_mask(ann, h, w)
        return self._instance(image, mask, union, f"{info['file_name']}#ann{ann.get('id')}")


# ----------------------------------------------------------------------------- 3: OpenImages


class OpenImagesSource(_InstanceSource):
    """OpenImages V5 instance segmentations.

    The CSV has the columns ``MaskPath, ImageID, LabelName, BoxID, BoxXMin, BoxXMax, BoxYMin,
    BoxYMax, PredictedIoU, Clicks``. A mask is looked up as ``mask_dir/MaskPath`` or, as the
    official zips unpack, ``mask_dir/<any sub-folder>/MaskPath``; the image as
    ``image_dir/<ImageID>.jpg`` (or ``.png``). Masks are binary PNGs (> 127 = object) and are
    resized (nearest) to the image size when they differ.

    Args:
        csv_path: the segmentation CSV.
        mask_dir: folder of mask PNGs (possibly in sub-folders).
        image_dir: folder of images.
        label_names: keep only these ``LabelName`` values (e.g. ``/m/01g317``).
        min_predicted_iou: drop rows whose ``PredictedIoU`` is below this.
        min_area: instances with fewer mask pixels (at image size) are rejected.
        cache_size: decoded images and masks kept in memory.
    """

    COLUMNS = (
        "MaskPath",
        "ImageID",
        "LabelName",
        "BoxID",
        "BoxXMin",
        "BoxXMax",
        "BoxYMin",
        "BoxYMax",
        "PredictedIoU",
        "Clicks",
    )

    def __init__(
        self,
        csv_path: str | Path,
        mask_dir: str | Path,
        image_dir: str | Path,
        *,
        label_names: Sequence[str] | None = None,
        min_predicted_iou: float | None = None,
        min_area: int = 64,
        cache_size: int = 64,
    ) -> None:
        super().__init__(min_area=min_area, cache_size=cache_size)
        self.mask_dir = Path(mask_dir)
        self.image_dir = Path(image_dir)
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in self.COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{csv_path} lacks the OpenImages columns {missing}; found {reader.fieldnames}")
            rows = list(reader)
        self.by_image: dict[str, list[dict]] = {}
        for row in rows:
            self.by_image.setdefault(row["ImageID"], []).append(row)
        wanted = None if label_names is None else set(label_names)
        self.items = [
            row
            for row in rows
            if (wanted is None or row["LabelName"] in wanted)
            and (min_predicted_iou is None or _float(row["PredictedIoU"]) >= min_predicted_iou)
        ]
        self._subdirs = sorted(p for p in self.mask_dir.iterdir() if p.is_dir()) if self.mask_dir.is_dir() else []

    def __len__(self) -> int:
        return len(self.items)

    def _mask_path(self, name: str) -> Path | None:
        for folder in (self.mask_dir, *self._subdirs):
            p = folder / name
            if p.exists():
                return p
        return None

    def _image_path(self, image_id: str) -> Path:
        for suffix in (".jpg", ".jpeg", ".png"):
            p = self.image_dir / f"{image_id}{suffix}"
            if p.exists():
                return p
        return self.image_dir / f"{image_id}.jpg"

    def _mask(self, row: dict, hw: tuple[int, int]) -> np.ndarray:
        path = self._mask_path(row["MaskPath"])
        if path is None:
            raise DegenerateObjectError("missing mask", row["MaskPath"])
        m = self._cache.get(("mask", path), lambda: _read(path, "L"))
        if m is None:
            raise DegenerateObjectError("unreadable mask", str(path))
        if m.shape != hw:
            m = cv2.resize(m, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
        return m > 127

    def _load(self, index: int) -> Material:
        row = self.items[index]
        image = self._image(self._image_path(row["ImageID"]))
        hw = image.shape[:2]

        def union_of_masks():
            u = np.zeros(hw, bool)
            for other in self.by_image[row["ImageID"]]:
                try:
                    u |= self._mask(other, hw)
                except DegenerateObjectError:
                    continue
            return u

        union = self._cache.get(("union", row["ImageID"]), union_of_masks)
        mask = self._mask(row, hw)
        return self._instance(image, mask, union, f"{row['ImageID']}#{row['MaskPath']}")


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return float("nan")


# ----------------------------------------------------------------------------- 4: cut-outs


class CutoutSource(MaterialSource):
    """RGBA object cut-outs pasted on unrelated background photos (no background mask).

    ``len()`` is the number of objects; a draw picks an object and a background independently.
    Bad objects and bad backgrounds are counted once each in ``rejected``.

    Args:
        objects: RGBA image paths (any mode PIL can convert; transparency = outside).
        backgrounds: photo paths.
        min_area: objects with fewer alpha > 0 pixels are rejected ("object too small").
        cache_size: decoded images kept in memory (the Debian set fits: ~360 images).
    """

    def __init__(
        self,
        objects: Sequence[str | Path],
        backgrounds: Sequence[str | Path],
        *,
        min_area: int = 64,
        cache_size: int = 1024,
    ) -> None:
        super().__init__(min_area=min_area, cache_size=cache_size)
        self.objects = [Path(p) for p in objects]
        self.backgrounds = [Path(p) for p in backgrounds]
        if not self.objects:
            raise ValueError("CutoutSource needs at least one object")
        if not self.backgrounds:
            raise ValueError("CutoutSource needs at least one background")

    @classmethod
    def from_folders(cls, objects_dir: str | Path, backgrounds_dir: str | Path, **kwargs) -> CutoutSource:
        """All ``*.png`` below ``objects_dir`` and all images below ``backgrounds_dir`` (recursive)."""
        objects = sorted(p for p in Path(objects_dir).rglob("*") if p.suffix.lower() == ".png")
        backgrounds = sorted(p for p in Path(backgrounds_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return cls(objects, backgrounds, **kwargs)

    @classmethod
    def from_manifest(cls, manifest: str | Path, split: str = "train", **kwargs) -> CutoutSource:
        """The backgrounds and objects of one split of a ``fetch_debian_dataset`` manifest.

        Args:
            manifest: path of ``manifest.json`` (paths in it are relative to its folder).
            split: ``"train"`` or ``"val"``. Held-out photos are never returned for ``"train"``.
        """
        if split not in ("train", "val"):
            raise ValueError(f"split={split!r} is not valid; choose one of 'train', 'val'")
        manifest = Path(manifest)
        data = json.loads(manifest.read_text())
        root = manifest.parent
        backgrounds = [
            root / b["path"]
            for b in data["backgrounds"]
            if b["split"] == split and not (split == "train" and b.get("held_out"))
        ]
        objects = [root / o["path"] for o in data["objects"] if o["split"] == split]
        return cls(objects, backgrounds, **kwargs)

    def __len__(self) -> int:
        return len(self.objects)

    def _object(self, index: int) -> np.ndarray:
        path = self.objects[index]
        rgba = self._cache.get(("rgba", path), lambda: _read(path, "RGBA"))
        if rgba is None:
            raise DegenerateObjectError("unreadable image", str(path))
        box = alpha_box(rgba[..., 3])
        if box is None:
            raise DegenerateObjectError("empty alpha", str(path))
        if int(np.count_nonzero(rgba[..., 3])) < self.min_area:
            raise DegenerateObjectError("object too small", str(path))
        top, bottom, left, right = box
        return rgba[top:bottom, left:right]

    def _background(self, index: int) -> np.ndarray:
        try:
            return self._image(self.backgrounds[index])
        except DegenerateObjectError as e:
            raise DegenerateObjectError("unreadable background", str(self.backgrounds[index])) from e

    def draw(self, rng: np.random.Generator) -> Material:
        i = int(rng.integers(0, len(self.objects)))
        j = int(rng.integers(0, len(self.backgrounds)))
        obj = self._guarded(("obj", i), lambda: self._object(i))
        background = self._guarded(("bg", j), lambda: self._background(j))
        key = f"{self.objects[i].name}@{self.backgrounds[j].name}"
        return Material(background=background, obj_rgba=obj, background_mask=None, key=key)
