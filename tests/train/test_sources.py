"""Material sources (eradiff.train.sources) and the Debian data set's rules and manifest."""

import csv
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from eradiff.train.datasets import debian
from eradiff.train.sources import (
    CocoSource,
    CutoutSource,
    MaskedFolderSource,
    OpenImagesSource,
    coco_rle_decode,
    coco_rle_encode,
    coco_rle_from_string,
    coco_rle_to_string,
    coco_segmentation_mask,
    polygons_to_mask,
)
from eradiff.train.synthesis import DegenerateObjectError, SynthesisConfig, synthesize_pair

ROOT = Path(__file__).resolve().parents[2]
PLASMA = "plasma-workspace-wallpapers"

# ----------------------------------------------------------------------------- COCO RLE

# A 4×3 mask and its column-major runs, worked out by hand:
# columns (0,0,1,0), (1,1,1,0), (0,1,0,0) → 0×2 1×1 0×1 1×3 0×2 1×1 0×2
HAND_MASK = np.array([[0, 1, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]], bool)
HAND_COUNTS = [2, 1, 1, 3, 2, 1, 2]
# compressed: 2→'2', 1→'1', 1→'1', 3−1=2→'2', 2−1=1→'1', 1−3=−2→chr(48+30)='N', 2−2=0→'0'
HAND_STRING = "21121N0"


def test_rle_decode_matches_hand_built_example():
    np.testing.assert_array_equal(coco_rle_decode(HAND_COUNTS, 4, 3), HAND_MASK)
    np.testing.assert_array_equal(coco_rle_decode(HAND_STRING, 4, 3), HAND_MASK)
    assert coco_rle_from_string(HAND_STRING) == HAND_COUNTS
    assert coco_rle_to_string(HAND_COUNTS) == HAND_STRING
    assert coco_rle_encode(HAND_MASK) == {"counts": HAND_COUNTS, "size": [4, 3]}
    # a run ≥ 16 needs a continuation character: 20 = 0b10100 → 'd' (20|0x20) then '0'
    assert coco_rle_from_string("d0") == [20]
    assert coco_rle_to_string([20]) == "d0"


def test_rle_that_starts_with_ones_and_bad_lengths():
    mask = np.ones((2, 2), bool)
    assert coco_rle_encode(mask)["counts"] == [0, 4]
    np.testing.assert_array_equal(coco_rle_decode([0, 4], 2, 2), mask)
    with pytest.raises(ValueError, match="covers 5 pixels, the image has 2×2"):
        coco_rle_decode([1, 4], 2, 2)
    with pytest.raises(ValueError, match="truncated"):
        coco_rle_from_string("d")


@settings(deadline=None, max_examples=60)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_rle_round_trip(mask):
    rle = coco_rle_encode(mask)
    h, w = rle["size"]
    np.testing.assert_array_equal(coco_rle_decode(rle["counts"], h, w), mask)
    np.testing.assert_array_equal(coco_rle_decode(coco_rle_to_string(rle["counts"]), h, w), mask)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(0, 100_000), min_size=0, max_size=30))
def test_rle_string_round_trip(counts):
    assert coco_rle_from_string(coco_rle_to_string(counts)) == counts


# ----------------------------------------------------------------------------- polygons


def test_polygon_box_covers_exactly_its_pixels():
    mask = polygons_to_mask([[2, 1, 5, 1, 5, 4, 2, 4]], 6, 7)
    expected = np.zeros((6, 7), bool)
    expected[1:4, 2:5] = True
    np.testing.assert_array_equal(mask, expected)
    assert polygons_to_mask([[0, 0, 0, 9, 9, 9, 9, 0]], 12, 12).sum() == 81  # cocoapi#659: 9×9, not 10×10


def test_polygon_triangle_union_clipping_and_degenerate_parts():
    tri = polygons_to_mask([[0, 0, 6, 0, 0, 6]], 7, 7)
    i, j = np.mgrid[0:7, 0:7]
    np.testing.assert_array_equal(tri, (i + 0.5) + (j + 0.5) < 6)  # centres strictly inside
    two = polygons_to_mask([[1, 1, 3, 1, 3, 3, 1, 3], [4, 4, 6, 4, 6, 6, 4, 6], [0, 0, 1, 1]], 7, 7)
    assert two.sum() == 8 and two[1:3, 1:3].all() and two[4:6, 4:6].all()
    assert polygons_to_mask([[-5, -5, 20, -5, 20, 20, -5, 20]], 4, 5).all()
    assert polygons_to_mask([[0, 2, 5, 2, 3, 2]], 5, 5).sum() == 0


@settings(deadline=None, max_examples=40)
@given(
    x0=st.integers(0, 10), y0=st.integers(0, 10), w=st.integers(1, 10), h=st.integers(1, 10), frac=st.floats(0, 0.49)
)
def test_polygon_area_of_boxes(x0, y0, w, h, frac):
    # corners moved by less than half a pixel keep the same pixel centres inside
    box = [x0 + frac, y0 + frac, x0 + w - frac, y0 + frac, x0 + w - frac, y0 + h - frac, x0 + frac, y0 + h - frac]
    assert polygons_to_mask([box], 24, 24).sum() == w * h


def test_segmentation_dispatch_and_errors():
    np.testing.assert_array_equal(coco_segmentation_mask({"counts": HAND_STRING, "size": [4, 3]}, 4, 3), HAND_MASK)
    np.testing.assert_array_equal(coco_segmentation_mask({"counts": HAND_COUNTS, "size": [4, 3]}, 4, 3), HAND_MASK)
    with pytest.raises(ValueError, match="RLE size"):
        coco_segmentation_mask({"counts": HAND_COUNTS, "size": [4, 3]}, 3, 4)
    with pytest.raises(ValueError, match="unknown COCO segmentation"):
        coco_segmentation_mask("nope", 3, 3)


# ----------------------------------------------------------------------------- fixtures


def _photo(path: Path, h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(img).save(path)
    return img


def _png_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def _box(h, w, top, bottom, left, right):
    m = np.zeros((h, w), bool)
    m[top:bottom, left:right] = True
    return m


def _check_instance(material, image, mask, union):
    np.testing.assert_array_equal(material.background, image)
    np.testing.assert_array_equal(material.background_mask, union)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    np.testing.assert_array_equal(material.obj_rgba[..., 3] > 0, mask[box])
    np.testing.assert_array_equal(material.obj_rgba[..., :3][mask[box]], image[box][mask[box]])


def _paste_avoids_union(material, seed=0):
    config = SynthesisConfig(crop_size=None, scale_range=(0.2, 0.3), min_object_area=1, mask_dilation=1)
    pair = synthesize_pair(
        material.background,
        material.obj_rgba,
        rng=np.random.default_rng(seed),
        config=config,
        background_mask=material.background_mask,
    )
    assert not (pair.mask & material.background_mask).any()
    # the object stays where it was in both images
    np.testing.assert_array_equal(pair.x_obj[material.background_mask], pair.x_ori[material.background_mask])


# ----------------------------------------------------------------------------- 1: folder


def test_masked_folder_both_layouts_and_rejections(tmp_path):
    _photo(tmp_path / "a.jpg", seed=1)
    a = np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB"))  # as decoded (JPEG)
    m0, m1 = _box(40, 48, 2, 12, 3, 15), _box(40, 48, 20, 30, 30, 40)
    _png_mask(tmp_path / "a_mask_0.png", m0)
    _png_mask(tmp_path / "a_mask_1.png", m1)
    b = _photo(tmp_path / "b.png", seed=2)
    (tmp_path / "masks" / "b").mkdir(parents=True)
    mb = _box(40, 48, 5, 25, 5, 20)
    (tmp_path / "masks" / "b" / "broken.png").write_bytes(b"not a png")
    _png_mask(tmp_path / "masks" / "b" / "car.png", mb)
    _png_mask(tmp_path / "masks" / "b" / "empty.png", np.zeros((40, 48), bool))
    _photo(tmp_path / "c.png", seed=3)  # no masks: ignored
    src = MaskedFolderSource(tmp_path, min_area=4)
    assert src.items == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2)]  # b: broken, car, empty
    _check_instance(src.material(0), a, m0, m0 | m1)
    _check_instance(src.material(1), a, m1, m0 | m1)
    _check_instance(src.material(3), b, mb, mb)
    _paste_avoids_union(src.material(0))
    for _ in range(3):  # a bad item is counted once, however often it is drawn
        with pytest.raises(DegenerateObjectError, match="unreadable mask"):
            src.material(2)
        with pytest.raises(DegenerateObjectError, match="empty mask"):
            src.material(4)
    assert src.rejected == {"empty mask": 1, "unreadable mask": 1}


def test_masked_folder_size_mismatch_and_tiny_objects(tmp_path):
    _photo(tmp_path / "a.png")
    _png_mask(tmp_path / "a_mask_0.png", np.ones((10, 10), bool))
    _png_mask(tmp_path / "a_mask_1.png", _box(40, 48, 0, 1, 0, 2))
    src = MaskedFolderSource(tmp_path, min_area=4)
    with pytest.raises(DegenerateObjectError, match="mask size mismatch"):
        src.material(0)
    with pytest.raises(DegenerateObjectError, match="object too small"):
        src.material(1)
    assert src.rejected == {"mask size mismatch": 1, "object too small": 1}
    with pytest.raises(FileNotFoundError):
        MaskedFolderSource(tmp_path / "missing")


# ----------------------------------------------------------------------------- 2: COCO


def test_coco_polygons_rle_and_crowd(tmp_path):
    img = _photo(tmp_path / "p.png", 24, 32)
    poly_mask = polygons_to_mask([[2, 2, 12, 2, 12, 10, 2, 10]], 24, 32)
    crowd_mask = _box(24, 32, 14, 22, 20, 30)
    rle_mask = _box(24, 32, 15, 20, 2, 9)
    data = {
        "images": [{"id": 7, "file_name": "p.png", "height": 24, "width": 32}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]]},
            {"id": 2, "image_id": 7, "category_id": 2, "iscrowd": 1, "segmentation": coco_rle_encode(crowd_mask)},
            {
                "id": 3,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": {"counts": coco_rle_to_string(coco_rle_encode(rle_mask)["counts"]), "size": [24, 32]},
            },
            {"id": 4, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 1, 0, 1, 1]]},
            {"id": 5, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": {"counts": [3], "size": [24, 32]}},
        ],
        "categories": [{"id": 1, "name": "thing"}, {"id": 2, "name": "crowd"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    src = CocoSource(tmp_path / "ann.json", tmp_path, min_area=4)
    assert [a["id"] for a in src.items] == [1, 3, 4, 5]  # crowd excluded by default
    union = poly_mask | crowd_mask | rle_mask | polygons_to_mask([[0, 0, 1, 0, 1, 1]], 24, 32)
    _check_instance(src.material(0), img, poly_mask, union)
    _check_instance(src.material(1), img, rle_mask, union)
    _paste_avoids_union(src.material(1))
    with pytest.raises(DegenerateObjectError, match="empty mask|object too small"):
        src.material(2)
    with pytest.raises(DegenerateObjectError, match="bad segmentation"):
        src.material(3)
    assert sum(src.rejected.values()) == 2
    assert len(CocoSource(data, tmp_path, include_crowd=True)) == 5
    assert len(CocoSource(data, tmp_path, category_ids=[2], include_crowd=True)) == 1
    with pytest.raises(ValueError, match="lack the 'annotations'"):
        CocoSource({"images": []}, tmp_path)


def test_coco_missing_image_is_counted(tmp_path):
    data = {
        "images": [{"id": 1, "file_name": "gone.jpg", "height": 8, "width": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]}],
    }
    src = CocoSource(data, tmp_path)
    for seed in range(3):
        with pytest.raises(DegenerateObjectError, match="unreadable image"):
            src.draw(np.random.default_rng(seed))
    assert src.rejected == {"unreadable image": 1}


# ----------------------------------------------------------------------------- 3: OpenImages


def _openimages(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks" / "train-masks-0").mkdir(parents=True)
    img = _photo(tmp_path / "images" / "0001eeaf4aed83f9.png", 30, 40)
    m_dog = _box(30, 40, 3, 15, 4, 20)
    m_cat = _box(30, 40, 18, 28, 24, 38)  # even bounds: survives the 2× down- and up-sampling
    _png_mask(tmp_path / "masks" / "train-masks-0" / "0001eeaf4aed83f9_m0c9ppnr_aef0c2b5.png", m_dog)
    # a mask stored at half resolution is resized (nearest) to the image
    half = np.asarray(Image.fromarray(m_cat.astype(np.uint8) * 255).resize((20, 15), Image.NEAREST))
    Image.fromarray(half).save(tmp_path / "masks" / "0001eeaf4aed83f9_m01yrx_0d1e2f3a.png")
    rows = [
        ["0001eeaf4aed83f9_m0c9ppnr_aef0c2b5.png", "0001eeaf4aed83f9", "/m/0bt9lr", "aef0c2b5"]
        + ["0.1", "0.5", "0.1", "0.5", "0.9", "0.3 0.3 1;0.4 0.4 0"],
        ["0001eeaf4aed83f9_m01yrx_0d1e2f3a.png", "0001eeaf4aed83f9", "/m/01yrx", "0d1e2f3a"]
        + ["0.6", "0.95", "0.6", "0.93", "0.5", ""],
        ["0001eeaf4aed83f9_m01yrx_missing0.png", "0001eeaf4aed83f9", "/m/01yrx", "deadbeef"]
        + ["0.0", "0.1", "0.0", "0.1", "", ""],
    ]
    with open(tmp_path / "seg.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(OpenImagesSource.COLUMNS)
        w.writerows(rows)
    return img, m_dog, m_cat


def test_openimages_csv(tmp_path):
    img, m_dog, m_cat = _openimages(tmp_path)
    src = OpenImagesSource(tmp_path / "seg.csv", tmp_path / "masks", tmp_path / "images", min_area=4)
    assert len(src) == 3
    _check_instance(src.material(0), img, m_dog, m_dog | m_cat)
    cat = src.material(1)
    np.testing.assert_array_equal(cat.obj_rgba[..., 3] > 0, m_cat[18:28, 24:38])
    _paste_avoids_union(cat)
    for _ in range(2):
        with pytest.raises(DegenerateObjectError, match="missing mask"):
            src.material(2)
    assert src.rejected == {"missing mask": 1}
    args = (tmp_path / "seg.csv", tmp_path / "masks", tmp_path / "images")
    assert len(OpenImagesSource(*args, label_names=["/m/01yrx"])) == 2
    assert len(OpenImagesSource(*args, min_predicted_iou=0.6)) == 1


def test_openimages_csv_without_the_columns(tmp_path):
    (tmp_path / "bad.csv").write_text("ImageID,LabelName\nabc,/m/01\n")
    with pytest.raises(ValueError, match=r"lacks the OpenImages columns \['MaskPath', 'BoxID'"):
        OpenImagesSource(tmp_path / "bad.csv", tmp_path, tmp_path)


# ----------------------------------------------------------------------------- 4: cut-outs


def test_cutouts_from_folders_count_each_bad_file_once(tmp_path):
    (tmp_path / "obj" / "sub").mkdir(parents=True)
    (tmp_path / "bg").mkdir()
    good = np.zeros((12, 10, 4), np.uint8)
    good[2:10, 3:8] = (10, 200, 30, 255)
    Image.fromarray(good).save(tmp_path / "obj" / "sub" / "good.png")
    Image.fromarray(np.zeros((9, 9, 4), np.uint8)).save(tmp_path / "obj" / "empty.png")
    tiny = np.zeros((9, 9, 4), np.uint8)
    tiny[4, 4] = 255
    Image.fromarray(tiny).save(tmp_path / "obj" / "tiny.png")
    (tmp_path / "obj" / "broken.png").write_bytes(b"\x89PNG garbage")
    _photo(tmp_path / "bg" / "b.jpg")
    (tmp_path / "bg" / "bad.jpg").write_bytes(b"")
    src = CutoutSource.from_folders(tmp_path / "obj", tmp_path / "bg", min_area=4)
    assert len(src) == 4 and len(src.backgrounds) == 2
    outcomes = set()
    for seed in range(60):
        try:
            m = src.draw(np.random.default_rng(seed))
        except DegenerateObjectError as e:
            outcomes.add(e.reason)
            continue
        assert m.background_mask is None and m.obj_rgba.shape == (8, 5, 4)  # trimmed to the alpha box
        outcomes.add("ok")
    assert outcomes == {"ok", "empty alpha", "object too small", "unreadable image", "unreadable background"}
    assert src.rejected == {"empty alpha": 1, "object too small": 1, "unreadable image": 1, "unreadable background": 1}
    with pytest.raises(ValueError, match="at least one background"):
        CutoutSource([tmp_path / "obj" / "sub" / "good.png"], [])


def test_cutouts_from_manifest_respect_the_split(tmp_path):
    manifest = {
        "backgrounds": [
            {"id": "p/a", "path": "backgrounds/a.jpg", "split": "train", "held_out": False},
            {"id": "p/b", "path": "backgrounds/b.jpg", "split": "val", "held_out": False},
            {"id": "p/c", "path": "backgrounds/c.jpg", "split": "train", "held_out": True},  # must never train
        ],
        "objects": [
            {"id": "s/x", "path": "objects/x.png", "split": "train"},
            {"id": "s/y", "path": "objects/y.png", "split": "val"},
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    train = CutoutSource.from_manifest(tmp_path / "manifest.json", "train")
    val = CutoutSource.from_manifest(tmp_path / "manifest.json", "val")
    assert [p.name for p in train.backgrounds] == ["a.jpg"] and [p.name for p in train.objects] == ["x.png"]
    assert [p.name for p in val.backgrounds] == ["b.jpg"] and [p.name for p in val.objects] == ["y.png"]
    with pytest.raises(ValueError, match="split='test' is not valid"):
        CutoutSource.from_manifest(tmp_path / "manifest.json", "test")


# ----------------------------------------------------------------------------- Debian data rules


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2002 Someone
License: GPL-2+

Files: nature/Aqua.jpg
       nature/LadyBird.jpg
Copyright: 2008, Charles Barbin
License: GPL-2+

Files: 20.04/Kleiber_by_Lukas_Baubkus.jpg
Copyright: 2021, Lukas Baubkus
License: CC-BY-SA-3.0

Files: desktop/Ubuntu-Mate-*-no-logo.png
Copyright: 2014 Goce Mitevski
License: CC-BY-SA-4.0
"""


def test_dep5_licence_lookup():
    stanzas = debian._parse_dep5(COPYRIGHT)
    lic = debian._licence_for(stanzas, "usr/share/backgrounds/mate/nature/LadyBird.jpg")
    assert (lic.short_name, lic.copyright) == ("GPL-2+", "2008, Charles Barbin")
    kleiber = debian._licence_for(stanzas, "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg")
    assert kleiber.short_name == "CC-BY-SA-3.0"
    assert debian._licence_for(stanzas, "x/desktop/Ubuntu-Mate-Cold-no-logo.png").short_name == "CC-BY-SA-4.0"
    assert debian._licence_for(stanzas, "usr/share/other.png").copyright == "2002 Someone"


def test_stamp_rules():
    photo = np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    photo[..., 3] = 255
    flat = np.zeros((64, 64, 4), np.uint8)
    flat[..., :3] = (30, 120, 200)
    flat[..., 3] = 255
    line_art = flat.copy()
    line_art[..., :3] = 255
    kw = {"dat_text": "", "has_svg": False}
    assert debian.classify_stamp("animals/fox.png", photo, **kw) is None
    assert debian.classify_stamp("animals/fox.png", flat, **kw).startswith("flat colours")
    assert debian.classify_stamp("animals/fox.png", line_art, **kw).startswith("mostly pure black/white")
    assert debian.classify_stamp("animals/fox.png", photo[:16, :16], **kw).startswith("too small")
    assert debian.classify_stamp("animals/fox.png", None, **kw) == "unreadable image"
    assert "symbols" in debian.classify_stamp("symbols/alphabets/a.png", photo, **kw)
    assert "cartoon" in debian.classify_stamp("animals/cartoon/fox.png", photo, **kw)
    assert "pre-mirrored" in debian.classify_stamp("animals/fox_mirror.png", photo, **kw)
    assert "vector" in debian.classify_stamp("animals/fox.png", photo, dat_text="", has_svg=True)
    assert "colourable" in debian.classify_stamp("animals/fox.png", photo, dat_text="colorable\n", has_svg=False)
    assert "inspection" in debian.classify_stamp("clothes/button.png", photo, **kw)


def test_split_is_seeded_stratified_and_keeps_forced_photos():
    groups = {"a": [f"a/{i}" for i in range(10)], "b": [f"b/{i}" for i in range(5)], "c": ["c/0"]}
    val = debian._split(groups, seed=0, val_fraction=0.2, forced_val={"b/3"})
    assert val == debian._split(groups, seed=0, val_fraction=0.2, forced_val={"b/3"})
    assert "b/3" in val and sum(v.startswith("a/") for v in val) == 2 and sum(v.startswith("b/") for v in val) == 1
    assert "c/0" not in val
    assert any(debian._split(groups, seed=s, val_fraction=0.2, forced_val=set()) != val for s in range(1, 5))


def test_letterbox_trim():
    img = np.full((20, 30, 3), 120, np.uint8)
    img[:3] = 0
    img[-2:] = 5
    out, ltrb = debian._trim_letterbox(img)
    assert out.shape == (15, 30, 3) and ltrb == [0, 3, 0, 2]
    dark = np.zeros((20, 30, 3), np.uint8)
    assert debian._trim_letterbox(dark)[1] == [0, 0, 0, 0]


def test_fetch_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="val_fraction"):
        debian.fetch_debian_dataset(tmp_path, val_fraction=1.0)
    with pytest.raises(ValueError, match="max_side"):
        debian.fetch_debian_dataset(tmp_path, max_side=8)


def test_checksum_mismatch_is_reported(tmp_path):
    pins = debian._load_pins()
    first = debian.PACKAGES[0]  # checked before anything else is downloaded
    (tmp_path / "debs").mkdir()
    (tmp_path / "debs" / pins[first].filename).write_bytes(b"junk")
    with pytest.raises(debian.DebianFetchError, match=f"checksum mismatch for {first}.*not a readable .deb"):
        debian._fetch_debs(tmp_path / "debs", record_checksums=False)


@pytest.mark.slow
def test_real_manifest():
    path = ROOT / "data" / "debian" / "manifest.json"
    if not path.exists():
        pytest.skip(f"{path} not built (python -m eradiff.train.datasets.debian --cache data/debian)")
    m = json.loads(path.read_text())
    counts = m["counts"]
    assert counts["backgrounds"]["train"] >= 30 and counts["backgrounds"]["val"] >= 5
    assert counts["objects"]["train"] >= 200 and counts["objects"]["val"] >= 40
    ids = {b["id"]: b for b in m["backgrounds"]}
    for held in m["held_out"]:
        assert ids[held["id"]]["split"] == "val" and ids[held["id"]]["held_out"]
    assert not any(b["held_out"] for b in m["backgrounds"] if b["split"] == "train")
    allowed = {f"{pkg}/{Path(r).stem}" for pkg, rels in debian.BACKGROUND_FILES.items() for r in rels}
    allowed |= {f"plasma-workspace-wallpapers/{r.split('/')[3]}" for r in debian.BACKGROUND_FILES[PLASMA]}
    assert set(ids) <= allowed
    for item in m["backgrounds"][:5] + m["objects"][:5]:
        data = (path.parent / item["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item["sha256"] and len(data) == item["bytes"]
        assert item["licence"] and item["copyright_file"].endswith("/copyright")
    assert max(max(b["size"]) for b in m["backgrounds"]) <= m["params"]["max_side"]
    train = CutoutSource.from_manifest(path, "train")
    assert len(train.backgrounds) == counts["backgrounds"]["train"] and len(train) == counts["objects"]["train"]


# ----------------------------------------------------------------------------- Debian: opt-in more photos

#: sha256 of debian_sha256.json before the opt-in packages were pinned in it: the default
#: manifest's params["checksums"] (the shipped configs were trained on that manifest).
DEFAULT_PINS_SHA256 = "92b3b1101806a384097cd00637530840508f8f7c7b4e9b9d6d33c7f5c796f7bd"
#: params["checksums_more"] and params["more_photos"] of stage 5's set (data/debian-more, built with
#: --more-photos, configs/default-stage5.yaml): the 45 photos of six packages must keep these.
STAGE5_MORE_PINS_SHA256 = "c00a0133f9531ccd135094fef3d1679ba47d5ccf857ead372314bf8a842570fc"
STAGE5_MORE_RULES = "28eb21f8e5ea544e"


def test_default_pins_digest_ignores_the_opt_in_pins(tmp_path, monkeypatch):
    assert debian._pins_digest(debian.PACKAGES) == DEFAULT_PINS_SHA256
    assert set(debian.MORE_PACKAGES) <= set(debian._load_pins())  # every opt-in package is pinned
    assert set(debian.GCOMPRIS_PACKAGES) <= set(debian._load_pins())
    assert not set(debian.MORE_PACKAGES) & set(debian.PACKAGES)
    assert not set(debian.GCOMPRIS_PACKAGES) & set(debian.PACKAGES)
    assert not set(debian.MORE_BACKGROUND_FILES) & {"lomiri-wallpapers-16.04", "palapeli-data", "openclipart-png"}
    # Written with the default pins alone, the file's sha256 is that digest; more pins leave it unchanged.
    pins = debian._load_pins()
    monkeypatch.setattr(debian, "CHECKSUM_FILE", tmp_path / "pins.json")
    debian._save_pins({p: pins[p] for p in debian.PACKAGES})
    assert debian._sha256_file(debian.CHECKSUM_FILE) == DEFAULT_PINS_SHA256
    debian._save_pins(pins)
    assert debian._pins_digest(debian.PACKAGES) == DEFAULT_PINS_SHA256


def test_opt_in_sets_are_disjoint_and_the_more_photos_stay_stage5s():
    """--more-photos is stage 5's 45 photos of six packages; --gcompris-photos, gcompris-qt-data's 124."""
    more, gc = debian.MORE_BACKGROUND_FILES, debian.GCOMPRIS_BACKGROUND_FILES
    assert debian.MORE_PACKAGES == (
        "lxqt-themes", "sddm-theme-maldives", "tuxtype-data", "libjxl-testdata", "enlightenment-data", "afterstep-data"
    )  # fmt: skip
    assert {p: len(r) for p, r in more.items()} == {
        "lxqt-themes": 11, "sddm-theme-maldives": 1, "tuxtype-data": 13, "libjxl-testdata": 5,
        "enlightenment-data": 14, "afterstep-data": 1,
    }  # fmt: skip
    assert debian.GCOMPRIS_PACKAGES == ("gcompris-qt-data",) and len(gc["gcompris-qt-data"]) == 124
    # Disjoint: no package, photo or output id in both sets (nor in the default set).
    assert not set(more) & set(gc) and not (set(more) | set(gc)) & set(debian.PACKAGES)
    more_rels = {(p, r) for p, rels in more.items() for r in rels}
    gc_rels = {(p, r) for p, rels in gc.items() for r in rels}
    assert len(more_rels) == 45 and len(gc_rels) == 124 and not more_rels & gc_rels
    assert not any("!" in r for _, r in more_rels) and all("!" in r for _, r in gc_rels)
    assert set(debian._opt_in_sets()) == {"more_photos", "gcompris_photos"}
    # The recorded digests: stage 5's for --more-photos, unchanged by gcompris-qt-data's table and pin.
    assert debian._more_rules_digest() == STAGE5_MORE_RULES
    assert debian._pins_digest(debian.MORE_PACKAGES) == STAGE5_MORE_PINS_SHA256
    assert debian._gcompris_rules_digest() != debian._more_rules_digest()
    assert debian._pins_digest(debian.GCOMPRIS_PACKAGES) not in (STAGE5_MORE_PINS_SHA256, DEFAULT_PINS_SHA256)


def test_cli_passes_the_opt_in_flags(monkeypatch, tmp_path):
    seen = []

    def fake_fetch(cache, **kw):
        seen.append((kw["more_photos"], kw["gcompris_photos"]))
        (tmp_path / "manifest.json").write_text(json.dumps({"counts": {}}))
        return tmp_path / "manifest.json"

    monkeypatch.setattr(debian, "fetch_debian_dataset", fake_fetch)
    for flags in ([], ["--more-photos"], ["--gcompris-photos"], ["--more-photos", "--gcompris-photos"]):
        assert debian.main(["--cache", str(tmp_path), *flags]) == 0
    assert seen == [(False, False), (True, False), (False, True), (True, True)]


def _jpeg(rng, w, h) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_embedded_jpeg_picks_the_largest():
    rng = np.random.default_rng(0)
    small, big = _jpeg(rng, 40, 30), _jpeg(rng, 80, 60)
    data = b"eet\xff\xd8\xffjunk" + small + b"\x00" * 7 + big + b"tail"
    offset, image = debian._embedded_jpeg(data)
    assert offset == data.index(big) and Image.open(io.BytesIO(image)).size == (80, 60)
    with pytest.raises(debian.DebianFetchError, match="no embedded JPEG"):
        debian._embedded_jpeg(b"nothing here")


def test_licence_by_source_path():
    stanzas = debian._parse_dep5(
        "Files: *\nCopyright: A\nLicense: BSD-3\n\nFiles: external/wesaturate/*\nCopyright: none\nLicense: CC0\n"
    )
    assert debian._licence_for_source(stanzas, "external/wesaturate/500px/x.png").short_name == "CC0"
    assert debian._licence_for_source(stanzas, "jxl/flower/flower.png").short_name == "BSD-3"


MORE_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: data/*.edj
Copyright: 2021 Photographer
License: CC0-1.0
"""


def _fake_packages(tmp_path, monkeypatch):
    """Three default packages and two opt-in ones as folders; dpkg -x copies them."""
    rng = np.random.default_rng(0)
    trees = tmp_path / "trees"

    def put(pkg: str, rel: str, data: bytes) -> None:
        (trees / pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (trees / pkg / rel).write_bytes(data)

    bg = {"mate-backgrounds": tuple(f"usr/share/bg/p{i}.jpg" for i in range(6))}
    for rel in bg["mate-backgrounds"]:
        put("mate-backgrounds", rel, _jpeg(rng, 120, 80))
    put("mate-backgrounds", "usr/share/doc/mate-backgrounds/copyright", COPYRIGHT.encode())
    for i in range(10):
        rgba = rng.integers(0, 256, (48, 48, 4), dtype=np.uint8)
        rgba[..., 3] = 255
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, "PNG")
        put("tuxpaint-stamps-default", f"{debian.STAMP_ROOT}/{'animals' if i < 5 else 'food'}/s{i}.png", buf.getvalue())
    put("tuxpaint-stamps-default", "usr/share/doc/tuxpaint-stamps-default/copyright", COPYRIGHT.encode())
    more = {
        "more-a": ("usr/share/more/x.jpg", "usr/share/more/data/y.edj"),
        "more-b": ("usr/share/b/z.png",),
    }
    put("more-a", "usr/share/more/x.jpg", _jpeg(rng, 100, 70))
    put("more-a", "usr/share/more/data/y.edj", b"eet" + _jpeg(rng, 30, 20) + b"\x00" + _jpeg(rng, 90, 60))
    put("more-a", "usr/share/doc/more-a/copyright", MORE_COPYRIGHT.encode())
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(buf, "PNG")
    put("more-b", "usr/share/b/z.png", buf.getvalue())
    put("more-b", "usr/share/doc/more-b/copyright", b"Not a DEP-5 file. GPL-2.\n")
    gcompris = {"more-g": ("usr/share/g/w.jpg", "usr/share/g/v.jpg")}
    put("more-g", "usr/share/g/w.jpg", _jpeg(rng, 80, 60))
    put("more-g", "usr/share/g/v.jpg", _jpeg(rng, 70, 50))
    put("more-g", "usr/share/doc/more-g/copyright", b"Not a DEP-5 file either.\n")

    packages = ("mate-backgrounds", "tuxpaint-stamps-default")
    pins = {p: debian._Pinned("1", f"{p}_1_all.deb", "0" * 64) for p in (*packages, *more, *gcompris)}
    monkeypatch.setattr(debian, "CHECKSUM_FILE", tmp_path / "pins.json")
    debian._save_pins(pins)
    monkeypatch.setattr(debian, "BACKGROUND_FILES", bg)
    monkeypatch.setattr(debian, "BACKGROUND_PACKAGES", ("mate-backgrounds",))
    monkeypatch.setattr(debian, "PACKAGES", packages)
    monkeypatch.setattr(debian, "HELD_OUT", {"mate-backgrounds/p2": "example photo"})
    monkeypatch.setattr(debian, "MORE_BACKGROUND_FILES", more)
    monkeypatch.setattr(debian, "MORE_PACKAGES", tuple(more))
    monkeypatch.setattr(debian, "GCOMPRIS_BACKGROUND_FILES", gcompris)
    monkeypatch.setattr(debian, "GCOMPRIS_PACKAGES", tuple(gcompris))
    monkeypatch.setattr(debian, "MORE_SOURCE_PREFIX", {"more-a": ("usr/share/more/", "")})
    monkeypatch.setattr(
        debian,
        "MORE_LICENCE_OVERRIDES",
        {
            "more-b": {"licence": "GPL-2", "copyright": "2019 B (README)"},
            "more-g": {"licence": "CC0-1.0", "copyright": "2020 G"},
        },
    )
    monkeypatch.setattr(debian, "MORE_UPSTREAM_LICENCE", {"more-b": ("usr/share/b/LICENSE", "CC-BY-4.0")})

    def fake_fetch(debs, *, record_checksums, packages):
        assert not record_checksums
        return {p: (debs / pins[p].filename, pins[p]) for p in packages}

    def fake_run(cmd, *, cwd=None):
        assert cmd[:2] == ["dpkg", "-x"], cmd
        pkg = Path(cmd[2]).name.split("_")[0]
        shutil.copytree(trees / pkg, cmd[3])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(debian, "_fetch_debs", fake_fetch)
    monkeypatch.setattr(debian, "_run", fake_run)


def test_more_photos_only_add_training_photos(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch)
    default = json.loads(debian.fetch_debian_dataset(tmp_path / "default").read_text())
    more_path = debian.fetch_debian_dataset(tmp_path / "more", more_photos=True)
    more = json.loads(more_path.read_text())

    # Without the option: no trace of it; the opt-in packages are not even downloaded.
    assert "more_photos" not in default and "gcompris_photos" not in default and set(default["params"]) == {
        "seed", "val_fraction", "max_side", "checksums", "rules"
    }  # fmt: skip
    assert set(default["packages"]) == {"mate-backgrounds", "tuxpaint-stamps-default"}
    assert default["params"]["checksums"] == debian._pins_digest(debian.PACKAGES)
    # With it: the validation split, the default photos and the objects are exactly the same.
    assert more["splits"]["backgrounds"]["val"] == default["splits"]["backgrounds"]["val"]
    assert more["splits"]["objects"] == default["splits"]["objects"]
    assert more["objects"] == default["objects"] and more["held_out"] == default["held_out"]
    assert more["backgrounds"][: len(default["backgrounds"])] == default["backgrounds"]
    assert {k: v for k, v in more["params"].items() if k not in ("more_photos", "checksums_more")} == default["params"]
    # ... and every new photo is in train, never held out.
    new = more["backgrounds"][len(default["backgrounds"]) :]
    assert [b["id"] for b in new] == ["more-a/x", "more-a/y", "more-b/z"]
    assert all(b["split"] == "train" and not b["held_out"] and b["more_photos"] for b in new)
    assert more["splits"]["backgrounds"]["train"] == default["splits"]["backgrounds"]["train"] + [b["id"] for b in new]
    assert more["counts"]["backgrounds"]["train"] == default["counts"]["backgrounds"]["train"] + 3
    assert more["more_photos"]["by_package"] == {"more-a": 2, "more-b": 1}
    assert "gcompris_photos" not in more and "more-g" not in more["packages"]
    assert not any("gcompris_photos" in b for b in more["backgrounds"])
    x, y, z = new
    assert (x["licence"], x["licence_source_path"]) == ("GPL-2+", "x.jpg")
    assert (y["licence"], y["copyright"], y["licence_source_path"]) == ("CC0-1.0", "2021 Photographer", "data/y.edj")
    assert y["size"] == [90, 60] and y["embedded_jpeg_offset"] > 3
    assert (z["licence"], z["upstream_licence"]) == ("GPL-2", "CC-BY-4.0")
    assert (tmp_path / "more" / "licences" / "more-b" / "copyright").exists()
    train = CutoutSource.from_manifest(more_path, "train")
    assert len(train.backgrounds) == more["counts"]["backgrounds"]["train"]
    val_old = CutoutSource.from_manifest(tmp_path / "default" / "manifest.json", "val")
    val_new = CutoutSource.from_manifest(more_path, "val")
    assert [p.relative_to(tmp_path / "more") for p in val_new.backgrounds + val_new.objects] == [
        p.relative_to(tmp_path / "default") for p in val_old.backgrounds + val_old.objects
    ]
    # A second call with the same option is up to date; the default call still finds its own.
    assert debian.fetch_debian_dataset(tmp_path / "more", more_photos=True) == more_path
    assert debian._manifest_matches(tmp_path / "default" / "manifest.json", default["params"])


def test_gcompris_photos_flag_selects_its_own_set(tmp_path, monkeypatch):
    """--gcompris-photos adds its own set, recorded apart; with --more-photos the manifest holds both."""
    _fake_packages(tmp_path, monkeypatch)
    build = {
        name: json.loads(debian.fetch_debian_dataset(tmp_path / name, **kw).read_text())
        for name, kw in {
            "default": {},
            "more": {"more_photos": True},
            "gc": {"gcompris_photos": True},
            "both": {"more_photos": True, "gcompris_photos": True},
        }.items()
    }
    default, more, gc, both = build.values()
    n = len(default["backgrounds"])
    more_new, gc_new, both_new = (m["backgrounds"][n:] for m in (more, gc, both))

    # --gcompris-photos alone: only its package, its params, its section and its per-entry flag.
    assert [b["id"] for b in gc_new] == ["more-g/w", "more-g/v"]
    assert all(b["split"] == "train" and not b["held_out"] and b["gcompris_photos"] for b in gc_new)
    assert not any("more_photos" in b for b in gc["backgrounds"]) and "more_photos" not in gc
    assert set(gc["packages"]) == set(default["packages"]) | {"more-g"}
    assert gc["params"] == default["params"] | {
        "checksums_gcompris": debian._pins_digest(("more-g",)), "gcompris_photos": debian._gcompris_rules_digest()
    }  # fmt: skip
    assert gc["gcompris_photos"]["packages"] == ["more-g"] and gc["gcompris_photos"]["backgrounds"] == 2
    assert gc["gcompris_photos"]["by_package"] == {"more-g": 2}
    assert (gc_new[0]["licence"], gc_new[0]["copyright"]) == ("CC0-1.0", "2020 G")
    # The default photos, objects and validation split stay those of the default set.
    for m in (gc, both):
        assert m["backgrounds"][:n] == default["backgrounds"] and m["objects"] == default["objects"]
        assert m["splits"]["backgrounds"]["val"] == default["splits"]["backgrounds"]["val"]
        assert m["splits"]["objects"] == default["splits"]["objects"]

    # Both: the --more-photos entries, then the --gcompris-photos ones, each as built alone.
    assert both_new == more_new + gc_new
    assert both["params"] == more["params"] | gc["params"]
    assert both["more_photos"] == more["more_photos"] and both["gcompris_photos"] == gc["gcompris_photos"]
    assert both["counts"]["backgrounds"]["train"] == default["counts"]["backgrounds"]["train"] + 5
    assert both["splits"]["backgrounds"]["train"] == default["splits"]["backgrounds"]["train"] + [
        b["id"] for b in both_new
    ]
    # Each combination is up to date under its own options only.
    assert debian.fetch_debian_dataset(tmp_path / "gc", gcompris_photos=True) == tmp_path / "gc" / "manifest.json"
    assert not debian._manifest_matches(tmp_path / "gc" / "manifest.json", both["params"])
    assert not debian._manifest_matches(tmp_path / "both" / "manifest.json", more["params"])


@pytest.mark.slow
def test_real_more_photos_manifest_keeps_the_validation_split():
    path, default_path = ROOT / "data" / "debian-more" / "manifest.json", ROOT / "data" / "debian" / "manifest.json"
    if not (path.exists() and default_path.exists()):
        pytest.skip("data/debian-more not built (python -m eradiff.train.datasets.debian --cache data/debian-more "
                    "--more-photos) or data/debian missing")  # fmt: skip
    m, d = json.loads(path.read_text()), json.loads(default_path.read_text())
    assert m["params"]["more_photos"] and "more_photos" not in d["params"]
    # Stage 5's set: the rules and pins this module records for --more-photos, and no gcompris photos.
    assert m["params"]["more_photos"] == debian._more_rules_digest() == STAGE5_MORE_RULES
    assert m["params"]["checksums_more"] == debian._pins_digest(debian.MORE_PACKAGES)
    assert "gcompris_photos" not in m["params"] and set(m["packages"]) == {*debian.PACKAGES, *debian.MORE_PACKAGES}
    assert m["splits"]["backgrounds"]["val"] == d["splits"]["backgrounds"]["val"]
    assert m["splits"]["objects"] == d["splits"]["objects"] and m["objects"] == d["objects"]
    assert m["backgrounds"][: len(d["backgrounds"])] == d["backgrounds"]
    new = m["backgrounds"][len(d["backgrounds"]) :]
    assert len(new) == 45 and all(b["split"] == "train" and b["package"] in debian.MORE_PACKAGES for b in new)
    assert [b["source_path"] for b in new] == [r for rels in debian.MORE_BACKGROUND_FILES.values() for r in rels]
    assert all(b["licence"] and b["copyright"] for b in new)
