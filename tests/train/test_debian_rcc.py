"""The Qt resource (.rcc) reader and the gcompris credits lookup of eradiff.train.datasets.debian."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eradiff.train.datasets import debian

ROOT = Path(__file__).resolve().parents[2]


def make_rcc(files: dict[str, tuple[bytes, int]], *, version: int = 3) -> bytes:
    """A Qt resource archive as ``rcc -binary`` lays it out: header, data, names, tree.

    ``files``: path -> (bytes, flags); flag 1 stores the bytes qCompress-ed (u32 size + zlib), flag 4
    stores them as given (the caller passes a zstd frame).
    """
    tree: dict = {}
    for path, value in files.items():
        *dirs, name = path.split("/")
        d = tree
        for x in dirs:
            d = d.setdefault(x, {})
        d[name] = value
    names, data = bytearray(), bytearray()
    name_offsets: dict[str, int] = {}

    def name_offset(n: str) -> int:
        if n not in name_offsets:
            name_offsets[n] = len(names)
            names.extend(struct.pack(">HI", len(n), 0) + n.encode("utf-16-be"))
        return name_offsets[n]

    nodes = [[0, debian.RCC_DIRECTORY, 0, 0]]
    queue = [(0, tree)]
    while queue:  # breadth first: the children of a folder are consecutive nodes
        idx, d = queue.pop(0)
        nodes[idx][2:] = [len(d), len(nodes)]
        for n, v in d.items():
            if isinstance(v, dict):
                nodes.append([name_offset(n), debian.RCC_DIRECTORY, 0, 0])
                queue.append((len(nodes) - 1, v))
            else:
                payload, flags = v
                stored = struct.pack(">I", len(payload)) + zlib.compress(payload) if flags & 1 else payload
                nodes.append([name_offset(n), flags, 0, len(data)])
                data.extend(struct.pack(">I", len(stored)) + stored)
    header_size = 20 + (4 if version >= 3 else 0)
    data_off = header_size
    names_off = data_off + len(data)
    tree_off = names_off + len(names)
    out = bytearray(b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off))
    if version >= 3:
        out += struct.pack(">I", 0)
    out += data + names
    for node in nodes:
        out += struct.pack(">IHII", *node) + (b"\0" * 8 if version >= 2 else b"")
    return bytes(out)


FILES = {
    "a/b/readme.txt": (b"hello " * 50, 1),
    "a/b/raw.bin": (bytes(range(256)), 0),
    "a/c.txt": ("ünïcode".encode(), 0),
    "top.txt": (b"top", 1),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_lists_and_reads_files(version):
    data = make_rcc(FILES, version=version)
    entries = debian.rcc_entries(data)
    assert set(entries) == set(FILES)
    assert entries["a/b/readme.txt"].compression == "zlib" and entries["a/b/raw.bin"].compression == "none"
    for path, (payload, _) in FILES.items():
        assert debian.rcc_file(data, path) == payload
    with pytest.raises(debian.DebianFetchError, match="no a/missing"):
        debian.rcc_file(data, "a/missing")


def test_rcc_rejects_bad_archives():
    with pytest.raises(debian.DebianFetchError, match="qres"):
        debian.rcc_entries(b"PK\x03\x04" + b"\0" * 40)
    data = bytearray(make_rcc(FILES))
    data[4:8] = struct.pack(">I", 9)
    with pytest.raises(debian.DebianFetchError, match="version 9"):
        debian.rcc_entries(bytes(data))
    with pytest.raises(debian.DebianFetchError, match="corrupt"):
        debian.rcc_entries(make_rcc(FILES)[:-30])  # the tree is cut short
    bad = make_rcc({"x.txt": (b"payload", 1)})
    entries = debian.rcc_entries(bad)
    lying = bytearray(bad)
    lying[entries["x.txt"].offset : entries["x.txt"].offset + 4] = struct.pack(">I", 3)
    with pytest.raises(debian.DebianFetchError, match="the archive says 3"):
        debian.rcc_file(bytes(lying), "x.txt")


def test_rcc_zstd_entries():
    payload = b"zstd payload " * 20
    try:
        import zstandard
    except ImportError:
        data = make_rcc({"z.bin": (b"(\xb5/\xfd not really zstd", debian.RCC_ZSTD)})
        assert debian.rcc_entries(data)["z.bin"].compression == "zstd"
        with pytest.raises(debian.DebianFetchError, match="zstd-compressed.*zstandard package is not installed"):
            debian.rcc_file(data, "z.bin")
        return
    data = make_rcc({"z.bin": (zstandard.ZstdCompressor().compress(payload), debian.RCC_ZSTD)})
    assert debian.rcc_file(data, "z.bin") == payload


ERASE_README = """Copyright: Timothée Giet, 2022
License: CC-BY-SA 4.0
Files:
transparent_square.svg

Copyright: aussiegall
Source: https://commons.wikimedia.org/wiki/File:Pollinationn.jpg
License: CC-BY-2.0
Comments: cropping, sharpening
Files: bee.webp

Copyright: 2000, 2008 Bruno Coudoin and others
License: CC-BY-SA 4.0
Castle_0.webp
Castle_background.webp
Comment: based on a photo by Someone, license CC-BY-SA 3.0, source at
  https://commons.wikimedia.org/wiki/File:Castle.jpg

Copyright: Berthold Werner
License: Public Domain
Source: https://commons.wikimedia.org/wiki/File:Trier.JPG
Files:
germany/audaPalatina.webp
germany/other.webp

Copyright:
  Copyright 1994-2006 Nicolas Pioch
License: GPLv3 or later
Files:
  painting.webp
"""


def test_parse_credits():
    stanzas = debian._parse_credits(ERASE_README)
    assert [files for files, _ in stanzas] == [
        ["transparent_square.svg"],
        ["bee.webp"],
        ["Castle_0.webp", "Castle_background.webp"],
        ["germany/audaPalatina.webp", "germany/other.webp"],
        ["painting.webp"],
    ]
    bee = stanzas[1][1]
    assert bee == {
        "copyright": "aussiegall",
        "source": "https://commons.wikimedia.org/wiki/File:Pollinationn.jpg",
        "license": "CC-BY-2.0",
        "comments": "cropping, sharpening",
    }
    assert stanzas[2][1]["comment"].endswith("source at https://commons.wikimedia.org/wiki/File:Castle.jpg")
    assert stanzas[4][1]["copyright"] == "Copyright 1994-2006 Nicolas Pioch"


def test_free_licence():
    assert debian._free_licence("CC-BY-SA 4.0") == "CC-BY-SA-4.0"
    assert debian._free_licence("CC-BY-2.0") == "CC-BY-2.0"
    assert debian._free_licence("CC0-1.0") == "CC0-1.0"
    assert debian._free_licence("Public domain") == "public-domain"
    for bad in ("GPLv3 or later", "CC-BY-NC 4.0", "unknown"):
        with pytest.raises(debian.DebianFetchError, match="not one of"):
            debian._free_licence(bad)


def _webp(rng, w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "WEBP", quality=90)
    return buf.getvalue()


ACT = "gcompris/src/activities"


def _gcompris_tree(tmp_path) -> tuple[Path, bytes]:
    rng = np.random.default_rng(0)
    photo = _webp(rng, 120, 80)
    rcc = make_rcc(
        {
            f"{ACT}/erase/Erase.qml": (b"import QtQuick 2.12", 1),
            f"{ACT}/erase/resource/README": (ERASE_README.encode(), 1),
            f"{ACT}/erase/resource/bee.webp": (photo, 0),
            f"{ACT}/erase/resource/germany/aulaPalatina.webp": (_webp(rng, 64, 48), 0),
            f"{ACT}/erase/resource/germany/other.webp": (_webp(rng, 64, 48), 0),
            f"{ACT}/erase/resource/painting.webp": (_webp(rng, 64, 48), 0),
            f"{ACT}/erase/resource/uncredited.webp": (_webp(rng, 64, 48), 0),
        }
    )
    root = tmp_path / "root"
    (root / "usr/share/gcompris-qt/rcc").mkdir(parents=True)
    (root / "usr/share/gcompris-qt/rcc/erase.rcc").write_bytes(rcc)
    return root, photo


def test_rcc_licence_from_the_activity_readme(tmp_path, monkeypatch):
    root, _ = _gcompris_tree(tmp_path)
    rel = f"usr/share/gcompris-qt/rcc/erase.rcc!{ACT}/erase/resource/"
    lic = debian._rcc_licence(root, rel + "bee.webp")
    assert lic == {
        "licence": "CC-BY-2.0",
        "copyright": "aussiegall",
        "licence_note_file": f"usr/share/gcompris-qt/rcc/erase.rcc!{ACT}/erase/resource/README",
        "upstream_source": "https://commons.wikimedia.org/wiki/File:Pollinationn.jpg",
        "credit_comment": "cropping, sharpening",
    }
    # A member below a sub-folder is named relative to the README's folder.
    assert debian._rcc_licence(root, rel + "germany/other.webp")["licence"] == "public-domain"
    # A README typo is bridged by RCC_CREDIT_ALIASES, and recorded.
    with pytest.raises(debian.DebianFetchError, match="germany/aulaPalatina.webp in 0 stanzas"):
        debian._rcc_licence(root, rel + "germany/aulaPalatina.webp")
    alias = {f"{ACT}/erase/resource/germany/aulaPalatina.webp": "germany/audaPalatina.webp"}
    monkeypatch.setattr(debian, "RCC_CREDIT_ALIASES", alias)
    lic = debian._rcc_licence(root, rel + "germany/aulaPalatina.webp")
    assert lic["licence"] == "public-domain" and lic["credited_as"] == "germany/audaPalatina.webp"
    with pytest.raises(debian.DebianFetchError, match="uncredited.webp in 0 stanzas"):
        debian._rcc_licence(root, rel + "uncredited.webp")
    with pytest.raises(debian.DebianFetchError, match="not one of"):  # GPL painting: not a photo licence we take
        debian._rcc_licence(root, rel + "painting.webp")


def test_rcc_member_background_entry(tmp_path):
    root, photo = _gcompris_tree(tmp_path)
    rel = f"usr/share/gcompris-qt/rcc/erase.rcc!{ACT}/erase/resource/bee.webp"
    stem = debian._more_stem(rel)
    assert stem == "erase-bee"
    navajo = f"x.rcc!{ACT}/explore_monuments/resource/usa/navajo.webp"
    assert debian._more_stem(navajo) == "explore_monuments-usa-navajo"
    assert debian._more_stem("usr/share/lxqt/wallpapers/fog.jpg") == "fog"
    cache = tmp_path / "cache"
    common = {"package": "gcompris-qt-data", "copyright_file": "usr/share/doc/gcompris-qt-data/copyright"}
    entry = debian._background_entry(
        "gcompris-qt-data", rel, stem, root, cache, common, listing="GCOMPRIS_BACKGROUND_FILES", max_side=64
    )
    assert entry["id"] == "gcompris-qt-data/erase-bee" and entry["source_path"] == rel
    assert entry["rcc_member"] == f"{ACT}/erase/resource/bee.webp" and entry["rcc_compression"] == "none"
    assert entry["source_size"] == [120, 80] and entry["size"] == [64, 43] and entry["resized"]
    assert entry["source_bytes"] == len(photo) and entry["source_sha256"] == debian._sha256_bytes(photo)
    rcc_bytes = (root / "usr/share/gcompris-qt/rcc/erase.rcc").read_bytes()
    assert entry["rcc_sha256"] == debian._sha256_bytes(rcc_bytes)
    assert (cache / entry["path"]).suffix == ".jpg" and Image.open(cache / entry["path"]).size == (64, 43)
    with pytest.raises(debian.DebianFetchError, match="no longer contains .*gone.webp: update GCOMPRIS"):
        debian._background_entry(
            "gcompris-qt-data", rel.replace("bee", "gone"), "x", root, cache, common,
            listing="GCOMPRIS_BACKGROUND_FILES", max_side=64,
        )  # fmt: skip


def test_gcompris_photos_are_listed_once():
    rels = debian.GCOMPRIS_BACKGROUND_FILES["gcompris-qt-data"]
    assert "gcompris-qt-data" not in debian.MORE_BACKGROUND_FILES  # its own set: --gcompris-photos
    stems = [debian._more_stem(r) for r in rels]
    assert len(set(stems)) == len(stems) == len(rels)
    assert all(r.startswith("usr/share/gcompris-qt/rcc/") and "!gcompris/src/activities/" in r for r in rels)
    assert set(debian.RCC_CREDIT_ALIASES) <= {r.partition("!")[2] for r in rels}


@pytest.mark.slow
def test_gcompris_manifest_keeps_the_default_validation_split():
    """A built manifest with the gcompris photos (data/debian-more2: --more-photos --gcompris-photos)
    has the default set's validation split and exactly GCOMPRIS_BACKGROUND_FILES, all in train.

    data/debian-more2 was first built when the gcompris photos were part of --more-photos (commit
    0597b42): its gcompris entries then carry ``more_photos`` instead of ``gcompris_photos``."""
    more, default = ROOT / "data" / "debian-more2" / "manifest.json", ROOT / "data" / "debian" / "manifest.json"
    if not (more.exists() and default.exists()):
        pytest.skip("data/debian and data/debian-more2 not both built")
    m, d = json.loads(more.read_text()), json.loads(default.read_text())
    gc = [b for b in m["backgrounds"] if b["package"] == "gcompris-qt-data"]
    if [b["source_path"] for b in gc] != list(debian.GCOMPRIS_BACKGROUND_FILES["gcompris-qt-data"]):
        pytest.skip(f"{more} was built with other gcompris photo rules")
    if "gcompris_photos" in m["params"]:
        assert m["params"]["gcompris_photos"] == debian._gcompris_rules_digest()
    assert m["splits"]["backgrounds"]["val"] == d["splits"]["backgrounds"]["val"]
    assert m["splits"]["objects"] == d["splits"]["objects"]
    val = {b["id"]: b for b in d["backgrounds"] if b["split"] == "val"}
    assert [b for b in m["backgrounds"] if b["split"] == "val"] == list(val.values())
    assert all(b.get("gcompris_photos", b.get("more_photos")) is True for b in gc)
    assert all(b["split"] == "train" and b["licence"] and b["copyright"] for b in gc)
    assert all(min(b["size"]) >= 400 for b in gc)
