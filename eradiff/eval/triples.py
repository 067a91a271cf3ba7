"""Evaluation triples: (input with object, mask, ground truth), from a folder or synthesized.

A triple is what an erasure is judged on: the input image x_obj (the photo with the object), the
mask M of what to erase and the ground truth x_ori (the photo without it). Real photos of a scene
with and without an object are rare, so :func:`synthesize_triples` makes them the way the paper's
training pairs are made (Sec. 4.1): an RGBA object pasted onto a held-out photo, seeded.

Folder layout read by :func:`load_triples` and written by :func:`save_triples`::

    FOLDER/images/<stem>.png   the input (x_obj)
    FOLDER/masks/<stem>.png    white = erase
    FOLDER/gt/<stem>.png       the ground truth (x_ori)

Stems match across the three folders; any image format Pillow reads is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from eradiff.train.sources import MaterialSource
from eradiff.train.synthesis import DegenerateObjectError, SynthesisConfig, synthesize_pair

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class TripleError(ValueError):
    """A triple folder is missing, empty or inconsistent (one-line message)."""


@dataclass(frozen=True, eq=False)
class Triple:
    """One evaluation case.

    Attributes:
        name: a file-name-safe identifier.
        image: (H, W, 3) uint8, the input x_obj (what the method sees).
        mask: (H, W) bool, True = erase.
        gt: (H, W, 3) uint8, the ground truth x_ori (equal to ``image`` outside the mask).
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    gt: np.ndarray


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA"):
            return np.asarray(im.getchannel("A")) > 127
        return np.asarray(im.convert("L")) > 127


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def load_triples(folder: str | Path) -> list[Triple]:
    """Read triples from ``folder`` (layout in the module docstring).

    Raises:
        TripleError: a sub-folder is missing, no stem is in all three, or a mask/size is inconsistent.
    """
    root = Path(folder)
    dirs = {k: root / k for k in ("images", "masks", "gt")}
    for key, d in dirs.items():
        if not d.is_dir():
            raise TripleError(f"{root}: missing sub-folder '{key}/' (expected images/, masks/, gt/)")
    files = {k: _by_stem(d) for k, d in dirs.items()}
    stems = sorted(set(files["images"]) & set(files["masks"]) & set(files["gt"]))
    if not stems:
        raise TripleError(f"{root}: no file stem appears in all of images/, masks/ and gt/")
    triples = []
    for stem in stems:
        image, mask, gt = (
            _read_rgb(files["images"][stem]),
            _read_mask(files["masks"][stem]),
            _read_rgb(files["gt"][stem]),
        )
        if mask.shape != image.shape[:2] or gt.shape != image.shape:
            raise TripleError(
                f"{stem}: image {image.shape[:2]}, mask {mask.shape} and gt {gt.shape[:2]} must have one size"
            )
        if not mask.any():
            raise TripleError(f"{stem}: the mask is empty")
        triples.append(Triple(stem, image, mask, gt))
    return triples


def save_triples(triples: list[Triple], folder: str | Path) -> Path:
    """Write triples as lossless PNGs in the layout :func:`load_triples` reads; returns the folder."""
    root = Path(folder)
    for key in ("images", "masks", "gt"):
        (root / key).mkdir(parents=True, exist_ok=True)
    for t in triples:
        Image.fromarray(t.image).save(root / "images" / f"{t.name}.png")
        Image.fromarray((t.mask * 255).astype(np.uint8)).save(root / "masks" / f"{t.name}.png")
        Image.fromarray(t.gt).save(root / "gt" / f"{t.name}.png")
    return root


def synthesize_triples(
    source: MaterialSource,
    *,
    count: int,
    seed: int,
    config: SynthesisConfig | None = None,
    max_side: int | None = 1024,
    max_tries: int = 32,
) -> list[Triple]:
    """Paste objects onto photos to make ``count`` triples, deterministically for ``seed``.

    Triple i is drawn from ``np.random.default_rng([seed, i])`` alone. Each background is first
    shrunk (INTER_AREA) so its longer side is at most ``max_side``, then the whole photo is the frame
    (``config.crop_size`` must be None).

    Args:
        source: photos and objects, e.g. ``CutoutSource.from_manifest(manifest, split="val")``.
        count: number of triples ≥ 1.
        seed: base seed.
        config: synthesis options; default: objects 10–35 % of the short side, rotation ±20°,
            the mask dilated by 2 px, whole-photo frames.
        max_side: longest side of the evaluation images, or None to keep the photos' size.
        max_tries: draws per triple before giving up.
    """
    if count < 1:
        raise ValueError(f"count must be ≥ 1, got {count}")
    cfg = config or SynthesisConfig(
        crop_size=None, scale_range=(0.1, 0.35), rotation_deg=20.0, color_jitter=0.05, mask_dilation=2
    )
    if cfg.crop_size is not None:
        raise ValueError("synthesize_triples uses whole photos: config.crop_size must be None")
    triples = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        for _ in range(max_tries):
            material = source.draw(rng)
            bg = material.background
            bg_mask = material.background_mask
            if max_side is not None and max(bg.shape[:2]) > max_side:
                s = max_side / max(bg.shape[:2])
                size = (max(1, round(bg.shape[1] * s)), max(1, round(bg.shape[0] * s)))
                bg = cv2.resize(bg, size, interpolation=cv2.INTER_AREA)
                if bg_mask is not None:
                    bg_mask = cv2.resize(bg_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            try:
                pair = synthesize_pair(bg, material.obj_rgba, rng=rng, config=cfg, background_mask=bg_mask)
            except DegenerateObjectError:
                continue
            triples.append(Triple(f"synth-{seed}-{i:04d}", pair.x_obj, pair.mask, pair.x_ori))
            break
        else:
            raise RuntimeError(f"no valid triple for index {i} after {max_tries} draws")
    return triples
