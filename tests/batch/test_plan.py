"""Planning a batch without reading an image: pairing, keys, seeds, manifests, URLs and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eradiff.batch import PlanError, item_seed, plan
from eradiff.batch.plan import read_manifest

from .helpers import write_dataset


@given(seed=st.integers(0, 2**31), key=st.text(min_size=1, max_size=40))
def test_item_seed_depends_on_seed_and_key_only(seed, key):
    s = item_seed(seed, key)
    assert s == item_seed(seed, key) and 0 <= s < 2**62
    assert s != item_seed(seed, key + "x") or s != item_seed(seed + 1, key)


def test_folder_pairs_by_stem_like_erase_and_keys_are_output_names(tmp_path):
    images, masks = write_dataset(tmp_path, 3)
    (images / "extra.jpg").write_bytes((images / "im00.png").read_bytes())
    (images / ".hidden.png").write_bytes(b"x")
    (images / "notes.txt").write_text("not an image")
    items = plan(str(images), str(masks), tmp_path / "out", seed=5)
    assert [i.key for i in items] == ["extra.jpg", "im00.png", "im01.png", "im02.png"]
    assert items[0].mask is None and items[0].error == f"no mask named extra.* in {str(masks)!r}"
    assert items[1].mask == str(masks / "im00.png") and items[1].output == str(tmp_path / "out" / "im00.png")
    assert [i.seed for i in items] == [item_seed(5, i.key) for i in items]
    assert [i.index for i in items] == [0, 1, 2, 3]


def test_one_mask_for_a_folder_and_format_suffix(tmp_path):
    images, masks = write_dataset(tmp_path, 2)
    items = plan(str(images), str(masks / "im00.png"), tmp_path / "out", seed=0, fmt="jpeg")
    one = str(masks / "im00.png")
    assert [(i.key, i.mask) for i in items] == [("im00.jpg", one), ("im01.jpg", one)]


def test_seed_is_the_same_whatever_the_order_and_location(tmp_path):
    images, masks = write_dataset(tmp_path, 3)
    rows = [{"image": str(images / f"im{i:02d}.png"), "mask": str(masks / f"im{i:02d}.png")} for i in (2, 0, 1)]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from_folder = {i.key: i.seed for i in plan(str(images), str(masks), tmp_path / "out", seed=3)}
    from_manifest = {i.key: i.seed for i in plan(str(manifest), None, tmp_path / "out", seed=3)}
    assert from_folder == from_manifest
    urls = tmp_path / "u.jsonl"
    urls.write_text("".join(json.dumps({k: f"file://{v}" for k, v in r.items()}) + "\n" for r in rows))
    assert {i.key: i.seed for i in plan(str(urls), None, tmp_path / "out", seed=3)} == from_folder


def test_csv_jsonl_parquet_manifests_read_alike(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    images, masks = write_dataset(tmp_path, 3)
    rows = [
        {"image": "images/im00.png", "mask": "masks/im00.png", "output": "sub/a.png", "seed": 7},
        {"image": str(images / "im01.png"), "mask": str(masks / "im01.png"), "output": None, "seed": None},
        {"image": f"file://{images / 'im02.png'}", "mask": f"file://{masks / 'im02.png'}", "output": "", "seed": None},
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_lines = ["image,mask,output,seed,comment"] + [
        f"{r['image']},{r['mask']},{r['output'] or ''},{'' if r['seed'] is None else r['seed']},x" for r in rows
    ]
    (tmp_path / "m.csv").write_text("\n".join(csv_lines) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    plans = [plan(str(tmp_path / f"m.{ext}"), None, tmp_path / "out", seed=1) for ext in ("jsonl", "csv", "parquet")]
    assert plans[0] == plans[1] == plans[2]
    first, second, third = plans[0]
    assert (first.key, first.seed, first.image) == ("sub/a.png", 7, str(tmp_path / "images/im00.png"))
    assert (second.key, second.seed) == ("im01.png", item_seed(1, "im01.png"))
    assert third.image == f"file://{images / 'im02.png'}" and third.output == str(tmp_path / "out" / "im02.png")


def test_memory_urls_folder_and_manifest():
    fs = fsspec.filesystem("memory")
    for name in ("a.png", "b.png", "x.txt"):
        fs.pipe(f"/plan-mem/images/{name}", b"data")
    for name in ("a.png", "b.jpg"):
        fs.pipe(f"/plan-mem/masks/{name}", b"data")
    items = plan("memory://plan-mem/images", "memory://plan-mem/masks", Path("/tmp/out"), seed=0)
    assert [(i.key, i.image, i.mask) for i in items] == [
        ("a.png", "memory://plan-mem/images/a.png", "memory://plan-mem/masks/a.png"),
        ("b.png", "memory://plan-mem/images/b.png", "memory://plan-mem/masks/b.jpg"),
    ]
    fs.pipe("/plan-mem/m.jsonl", b'{"image": "images/a.png", "mask": "masks/a.png"}\n')
    (item,) = plan("memory://plan-mem/m.jsonl", None, Path("/tmp/out"), seed=0)
    assert (item.image, item.mask) == ("memory://plan-mem/images/a.png", "memory://plan-mem/masks/a.png")


@pytest.mark.parametrize(
    "content, name, match",
    [
        ("image,mask\n", "m.csv", "has no rows"),
        ("image,output\na.png,b.png\n", "m.csv", "has no 'mask' column"),
        ('{"image": "a.png", "mask": "m.png"}\nnot json\n', "m.jsonl", "line 2: not JSON"),
        ("[1, 2]\n", "m.jsonl", "line 1: not a JSON object"),
        ("image,mask,seed\na.png,m.png,1.5\n", "m.csv", "row 1: seed '1.5' is not an integer"),
        ("image,mask,seed\na.png,m.png,-3\n", "m.csv", "must be in [0, 2^62)"),
        ("image,mask,output\na.png,m.png,../x.png\n", "m.csv", "must be a file path relative to the output folder"),
        ("image,mask,output\na.png,m.png,x.txt\n", "m.csv", "needs an image suffix"),
        ("image,mask\na.png,m.png\nsub/a.png,m.png\n", "m.csv", "would both be written to"),
        (",m.png\n", "m.csv", "has no 'image' or 'mask' column"),
        ("image,mask\n,m.png\n", "m.csv", "row 1: no image"),
        ("not parquet", "m.parquet", "not a Parquet file"),
    ],
)
def test_manifest_errors_name_the_row(tmp_path, content, name, match):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    (tmp_path / name).write_text(content)
    with pytest.raises(PlanError) as info:
        plan(str(tmp_path / name), None, tmp_path / "out", seed=0)
    assert match in str(info.value) and "\n" not in str(info.value)


def test_row_without_mask_fails_alone(tmp_path):
    (tmp_path / "m.csv").write_text("image,mask\na.png,\nb.png,m.png\n")
    a, b = plan(str(tmp_path / "m.csv"), None, tmp_path / "out", seed=0)
    assert a.error is not None and "row 1: no mask" in a.error and b.error is None


@pytest.mark.parametrize(
    "make, masks, match",
    [
        (lambda root: root / "nothing", "masks", "no such file or folder"),
        (lambda root: root / "images", None, "needs MASKS"),
        (lambda root: root / "images", "nothing", "mask"),
        (lambda root: root / "images" / "im00.png", "masks", "not a manifest"),
        (lambda root: root / "m.csv", "masks", "drop MASKS"),
        (lambda root: root / "images", "images", "same folder"),
        (lambda root: root / "empty", "masks", "holds no image files"),
    ],
)
def test_source_errors(tmp_path, make, masks, match):
    write_dataset(tmp_path, 1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "m.csv").write_text("image,mask\na.png,b.png\n")
    with pytest.raises(PlanError, match=match):
        plan(str(make(tmp_path)), None if masks is None else str(tmp_path / masks), tmp_path / "out", seed=0)


def test_output_never_replaces_an_input(tmp_path):
    images, masks = write_dataset(tmp_path, 2)
    with pytest.raises(PlanError, match="would overwrite an input"):
        plan(str(images), str(masks), images, seed=0)
    (tmp_path / "a.gif").write_bytes(b"")
    (images / "im00.gif").write_bytes((images / "im00.png").read_bytes())
    with pytest.raises(PlanError, match="would both be written to"):
        plan(str(images), str(masks), tmp_path / "out", seed=0)


def test_read_manifest_keeps_other_columns(tmp_path):
    (tmp_path / "m.csv").write_text("image,mask,label\na.png,b.png,cat\n")
    assert read_manifest(str(tmp_path / "m.csv")) == [{"image": "a.png", "mask": "b.png", "label": "cat"}]
