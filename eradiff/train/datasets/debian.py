"""Real training photos that can be fetched offline: Debian wallpaper packages and Tux Paint stamps.

Backgrounds come from an explicit list of photographs (renders, abstract art and cartoons are left
out by name); objects are the photographic RGBA stamps of ``tuxpaint-stamps-default``, chosen by a
rule (directory names, sibling files, colour statistics, a short list of drawings found by eye)
whose verdict for every stamp is written to the manifest. Nothing else enters training.

Steps of :func:`fetch_debian_dataset`:

1. ``apt-get download PKG=VERSION`` for the versions pinned in ``debian_sha256.json`` (running
   ``apt-get update`` once if apt does not know the package), then the sha256 of each ``.deb`` is
   checked against that file.
2. ``dpkg -x`` into a temporary folder inside the cache.
3. The listed backgrounds are trimmed of black letterbox bars, resized so the longer side is at
   most ``max_side`` (INTER_AREA) and written as JPEG (quality 95, 4:4:4); a photo that needs
   neither keeps its original bytes.
4. Every stamp is classified; kept ones are cropped to their alpha bounding box and written as
   RGBA PNG.
5. Backgrounds and objects are split into train / validation by photo with a seeded permutation,
   stratified by package (backgrounds) or top-level stamp category (objects). Photos reserved for
   ``examples/`` are forced into validation and flagged ``held_out``.
6. ``manifest.json`` records every kept file (source package, source path, sizes, sha256, licence
   and copyright holder from the package's DEP-5 ``copyright`` file), every skipped stamp with its
   reason, the splits and the held-out photos.

A second call with the same options finds ``manifest.json`` and returns at once.

More photos (opt-in: ``more_photos=True``, ``--more-photos``). ``MORE_BACKGROUND_FILES`` lists
45 further photographs from six other packages (``MORE_PACKAGES``, pinned in the same checksum
file): the set stage 5 of the built-in model (``configs/default-stage5.yaml``) was trained on.
They all go to the *train* split: the validation split (photos, objects, ids and order) is the
one of the default data set, and without the option the manifest is byte for byte the one
written before the option existed (``params`` then has no ``more_photos`` key, and the
``checksums`` digest covers only the default packages' pins). Their licences are looked up with
the DEP-5 globs matched against the package's source path (``MORE_SOURCE_PREFIX``), or stated in
``MORE_LICENCE_OVERRIDES`` where the copyright file is not machine-readable.

gcompris photos (opt-in: ``gcompris_photos=True``, ``--gcompris-photos``). ``GCOMPRIS_BACKGROUND_FILES``
lists 124 photographs of gcompris-qt-data (``GCOMPRIS_PACKAGES``), recorded apart from the 45 above
(``params["gcompris_photos"]`` and ``params["checksums_gcompris"]``, a ``gcompris_photos`` section
and a ``"gcompris_photos": true`` flag on each of their entries) so that both sets can be rebuilt
as they were. The option is independent of ``more_photos``: alone it adds the 124 photos to the
default set; with it, all 169. Like the 45, they all go to the train split and leave the
validation split and the rest of the manifest as they are. The photos sit inside Qt resource
archives (``ARCHIVE.rcc!MEMBER``, read by :func:`rcc_entries` / :func:`rcc_read`, re-encoded as
JPEG); their licence, author and Wikimedia Commons source come from the activity's credits
``README`` in the same archive (Debian's copyright file still lists the JPEG files of GCompris 0.x
that these WebP files replaced), and only public domain, CC0, CC-BY and CC-BY-SA are accepted.

Layout of ``cache_dir``::

    debs/                     the downloaded .deb files (kept for re-verification)
    backgrounds/<pkg>/...     prepared backgrounds (JPEG or original bytes)
    objects/<category>/...    prepared RGBA stamps (PNG)
    licences/<pkg>/copyright  copies of the packages' copyright files
    manifest.json

Build each set into its own folder::

    python -m eradiff.train.datasets.debian --cache data/debian                   # 35 train photos
    python -m eradiff.train.datasets.debian --cache data/debian-more --more-photos   # 80 (stage 5's set)
    python -m eradiff.train.datasets.debian --cache data/debian-more2 --more-photos --gcompris-photos  # 204
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
CHECKSUM_FILE = Path(__file__).with_name("debian_sha256.json")

BACKGROUND_PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "lomiri-wallpapers-20.04", "tuxpaint-data")
OBJECT_PACKAGE = "tuxpaint-stamps-default"
PACKAGES = (*BACKGROUND_PACKAGES, OBJECT_PACKAGE)

_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_TUX_TEMPLATES = "usr/share/tuxpaint/templates/{}.jpg"

#: Photographs used as backgrounds, by package, as paths inside the package. Chosen by looking at
#: every image. Left out: mate-backgrounds ``abstract/`` and ``desktop/`` (art, gradients);
#: Plasma's Altai, Autumn (painting), Canopee, Cascade, Cluster, Elarun, Flow, FlyingKonqui
#: (cartoon), Honeywave, IceCold, Kay, Kokkini, MilkyWay, Opal, PastelHills, Patak, SafeLanding
#: (illustration), Shell and Volna (all renders); lomiri's Fossa, Infinite-Sea and Painting-Colors
#: (art). Every ``tuxpaint-data`` template is a photograph.
BACKGROUND_FILES: dict[str, tuple[str, ...]] = {
    "mate-backgrounds": tuple(
        f"usr/share/backgrounds/mate/nature/{n}.jpg"
        for n in """Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood
        YellowFlower""".split()
    ),
    "plasma-workspace-wallpapers": tuple(
        _PLASMA.format(n)
        for n in """BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite
        OneStandsOut Path summer_1am""".split()
    ),
    "lomiri-wallpapers-20.04": ("usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",),
    "tuxpaint-data": tuple(
        _TUX_TEMPLATES.format(n)
        for n in """burnt_bark cliff corn_maze jellyfish lighthouse mossy_bark mossy_log mudstone ocean_splash
        ocean_waves redwoods_above rocks sheep spiders_web sun_behind_clouds sun_behind_leaves trees_above
        trees_at_dusk wool_mill_machine""".split()
    ),
}

#: Opt-in further photographs (``more_photos``), all put in the train split. Chosen by looking at
#: every image of each package. Left out: lxqt-themes' kde-plasma, origami-*, plasma-logo-*,
#: plasma_arch, simple_blue_widescreen, triangles*, waves-* (renders, logos); sddm-theme-maldives'
#: maldives.jpg (a screenshot of the greeter over the same photo); tuxtype-data's
#: images/backgrounds/0-4.jpg (astronomical images) and themes/*/photo.png (300×200, the README's
#: licence note does not cover them; wolof's is a collage); libjxl-testdata's raw.pixls (64-px
#: crops), *_grayscale / *_alpha twins of the wesaturate photos, the flower.png re-encodings and
#: the wide-gamut/pngsuite test charts; enlightenment-data's Dunes and Sunset-Hills (vector art),
#: Flat-Fan, Flat-Stone-Pattern, Squiggle* (graphics) and Paper-Flower (a drawing). Each ``.edj``
#: (an Eet archive) holds one photo at several sizes: the largest embedded JPEG is used. Looked at
#: and not used (no photographs): gnome-backgrounds 43.1-1 (renders, patterns) and ukui-wallpapers
#: 20.04.3-1.1 (illustrations, renders); the lomiri-wallpapers metapackage only pulls in the -16.04
#: set (kept for evaluation) and the -20.04 one. This table is stage 5's training set (45 photos):
#: keep it as it is; further photos go to a table of their own (as gcompris-qt-data's below).
_LXQT = "usr/share/lxqt/wallpapers/"
_E_BG = "usr/share/enlightenment/data/backgrounds/{}.edj"
_JXL = "usr/share/libjxl-testdata/"
_GC_RCC = "usr/share/gcompris-qt/rcc/"
MORE_BACKGROUND_FILES: dict[str, tuple[str, ...]] = {
    "lxqt-themes": tuple(
        _LXQT + n
        for n in """Butterfly-Kenneth-Wimer.jpg after-the-rain.jpg fog.jpg this-is-not-windows.jpg Valendas.png
        appleflower.png beam.png butterfly.png cloud.png drop.png flowers.png""".split()
    ),
    "sddm-theme-maldives": ("usr/share/sddm/themes/maldives/background.jpg",),
    "tuxtype-data": (
        *(f"usr/share/tuxtype/images/kcas{i}.jpg" for i in range(12)),
        "usr/share/tuxtype/images/hidden.jpg",
    ),
    "libjxl-testdata": (
        *(
            f"{_JXL}external/wesaturate/500px/{n}_srgb8.png"
            for n in ("cvo9xd_keong_macan", "tmshre_riaphotographs", "u76c0g_bliznaca")
        ),
        f"{_JXL}jxl/flower/flower.png",
        f"{_JXL}jxl/hdr_room.png",
    ),
    "enlightenment-data": tuple(
        _E_BG.format(n)
        for n in """Bamboo Foggy-Trees God-Rays Green-Maple Lichen-Branches Mountain Peaks Red-Maple
        Sea-of-Lanterns Snow-Trees Spruce-Needles Sunset-Clouds White-Flower Yellow-Flower""".split()
    ),
    "afterstep-data": ("usr/share/afterstep/desktop/tiles/rose512.jpg",),
}
MORE_PACKAGES = tuple(MORE_BACKGROUND_FILES)
#: Opt-in gcompris-qt-data photographs (``gcompris_photos``), all put in the train split; a set of
#: its own, independent of ``more_photos``. gcompris-qt-data keeps its images inside Qt resource
#: archives: ``ARCHIVE.rcc!MEMBER`` names a member (see :func:`rcc_entries`). Its photos are the
#: activities' WebP files credited one by one in the activity's ``README`` inside the same archive
#: (author, Wikimedia Commons source, licence; see :func:`_rcc_licence`). Left out there:
#: explore_monuments' georgeWashingtonBirthplace (a slide scan in a black frame with rounded
#: corners); details' painting backgrounds (Van Gogh etc.), its photo backgrounds under 400 px
#: (Chenonceau, FanoeWindmill, Louvre, Nagoya, NDP, OperaSidney, TourEiffel, TowerBridgeLondon) and
#: its cut-out detail pieces; babyshapes (paintings, RGBA cut-outs), lang's word images (drawings),
#: solar_system/gravity (rendered planets), paintings (paintings), photo_hunter (openclipart
#: drawings), hangman's fog.png (texture) and every image under 400 px on its short side.
GCOMPRIS_BACKGROUND_FILES: dict[str, tuple[str, ...]] = {
    "gcompris-qt-data": tuple(
        f"{_GC_RCC}{activity}.rcc!gcompris/src/activities/{activity}/resource/{folder}{name}.webp"
        for activity, (folder, names) in {
            "erase": (
                "",
                """alpaca bee butterfly calf camels caterpillar chamaeleon cheetah crab dolphin flying_fox gibbon
                giraffe goat gorilla gosling heron horse kingfisher kitten long_nosed_monkey macaque meerkats
                northern_harrier nubian_ibex penguin pika red_panda rhinoceros spoonbills squirrel swans toucan""",
            ),
            "explore_monuments": (
                "",
                """egypt/bentPyramid egypt/greatPyramidOfGiza egypt/meidumPyramid egypt/redPyramid
                france/arlesAmphitheater france/chateaudeChambord france/chateaudeChenonceau france/citedeCarcassonne
                france/eiffelTower france/montStMichel france/palaisdesPapes france/pontduGard france/reimsCathedral
                france/rocamadour germany/aulaPalatina germany/berlinCathedral germany/brandenburgGate
                germany/neuschwansteinCastle germany/schwerinPalace germany/trierImperialBaths germany/wormsCathedral
                india/ajantaCave india/charminar india/gatewayofIndia india/goldenTemple india/greatStupa
                india/hawaMahal india/konarkSunTemple india/mysorePalace india/qutubMinar india/rangGhar
                india/victoriaMemorial usa/canyondeChelly usa/castillodeSanMarcos usa/castleClinton usa/fortSumter
                usa/lincolnMemorial usa/mountRushmore usa/navajo usa/statueofLiberty wonders/chichenItza
                wonders/christTheRedeemer wonders/colosseum wonders/greatWallofChina wonders/machuPicchu
                wonders/petra wonders/tajMahal""",
            ),
            "explore_world_animals": (
                "animals/",
                """bison chameleon crocodile dragon giraffe hedgehog jaguar kangaroo koala lemur moose narwhal panda
                polar_bear scarlet_macaw""",
            ),
            "explore_farm_animals": ("animals/", "cat chicken cow dog duck horse owl pig sheep"),
            "explore_world_music": (
                "music/",
                "africa america australia ireland italy japan mexico middleeast orchestra",
            ),
            "clickgame": ("", "sea1 sea2 sea3 sea4 sea5 sea6"),
            "details": (
                "image/",
                """EgeskovSlotSpejling_background EilanDonanCastle_background GizahPyramids_background
                Neuschwanstein_background TajMahal_background""",
            ),
        }.items()
        for name in names.split()
    ),
}
GCOMPRIS_PACKAGES = tuple(GCOMPRIS_BACKGROUND_FILES)
#: Installed path prefix -> source-tree prefix of the opt-in packages: DEP-5 ``Files:`` globs name
#: source paths, so they are matched against ``source prefix + installed path minus its prefix``.
MORE_SOURCE_PREFIX: dict[str, tuple[str, str]] = {
    "lxqt-themes": ("usr/share/lxqt/", ""),
    "sddm-theme-maldives": ("usr/share/sddm/", "data/"),
    "libjxl-testdata": (_JXL, ""),
    "enlightenment-data": ("usr/share/enlightenment/", ""),
    "afterstep-data": ("usr/share/", ""),
}
#: Opt-in packages whose copyright file is not machine-readable: the licence it states.
MORE_LICENCE_OVERRIDES: dict[str, dict[str, str]] = {
    "tuxtype-data": {
        "licence": "GPL-2",
        "copyright": "2001-2003 Tux4Kids; the photos are Wikimedia Commons featured images "
        "(usr/share/tuxtype/images/README_IMAGES.TXT; authors not recorded)",
        "licence_note_file": "usr/share/tuxtype/images/README_IMAGES.TXT",
    },
}
#: Qt resource members credited under another name in their README (a typo upstream): member ->
#: the name the README uses. The stanza's source (Trier_Konstantinbasilika) is the Aula Palatina.
RCC_CREDIT_ALIASES: dict[str, str] = {
    "gcompris/src/activities/explore_monuments/resource/germany/aulaPalatina.webp": "germany/audaPalatina.webp",
}
#: Upstream licence statements shipped beside the photos (recorded next to the DEP-5 licence).
MORE_UPSTREAM_LICENCE: dict[str, tuple[str, str]] = {
    "lxqt-themes": ("usr/share/lxqt/wallpapers/License", "CC-BY-SA-3.0"),
}

#: Background photos that must never be trained on, with the reason (they are forced into the
#: validation split and flagged ``held_out`` in the manifest).
HELD_OUT: dict[str, str] = {
    "mate-backgrounds/LadyBird": "example photo for examples/photo.jpg (erase the ladybird)",
}

STAMP_ROOT = "usr/share/tuxpaint/stamps"
#: Directory names whose stamps are not photographs of objects.
STAMP_SKIP_DIRS: dict[str, str] = {
    "symbols": "symbols directory (alphabets, shapes, maths, money, chess, music, faces)",
    "cartoon": "cartoon directory (clip-art)",
    "roadsigns": "road signs (flat graphics)",
    "flags": "flags (flat graphics)",
}
#: Stamps that pass the statistics below but are drawings or renders (checked by eye).
STAMP_MANUAL_SKIP: dict[str, str] = {
    "seasonal/easter/butterfly.png": "drawing (textured clip-art), by inspection",
    "seasonal/easter/bunny.png": "drawing (textured clip-art), by inspection",
    "seasonal/easter/bluebird.png": "drawing, by inspection",
    "seasonal/easter/chick.png": "drawing, by inspection",
    "seasonal/easter/chick-hatched.png": "drawing, by inspection",
    "seasonal/easter/bunny-egg.png": "drawing, by inspection",
    "seasonal/easter/bunny-head.png": "drawing, by inspection",
    "seasonal/christmas/Santa.png": "drawing, by inspection",
    "clothes/button.png": "drawing, by inspection",
    "people/body_parts/eye.png": "drawing, by inspection",
    "seasonal/christmas/stocking.png": "drawing, by inspection",
    "space/planets/6_saturn.png": "rendered illustration, by inspection",
}
#: A photographic stamp has at least this many fully opaque pixels ...
STAMP_MIN_OPAQUE = 1024
#: ... at most this share of pure black/white interior (line art, white drawings) ...
STAMP_MAX_CLIPPED = 0.5
#: ... and at most this share of its other interior pixels in flat 3×3 patches (max-min ≤ 2 in
#: every channel). Photos score 0-0.3, flat clip-art 0.3-1.
STAMP_MAX_FLAT = 0.30

JPEG_QUALITY = 95


class DebianFetchError(RuntimeError):
    """The data could not be fetched or verified; the message says what to do."""


@dataclass(frozen=True)
class _Pinned:
    version: str
    filename: str
    sha256: str


# ----------------------------------------------------------------------------- small helpers


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(cmd: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise DebianFetchError(f"{cmd[0]} is not available on this machine (a Debian/Ubuntu host is needed)") from e


def _last_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (res.stderr + "\n" + res.stdout).splitlines() if ln.strip() and not ln.startswith("W:")]
    return lines[-1] if lines else f"exit status {res.returncode}"


def _load_pins() -> dict[str, _Pinned]:
    if not CHECKSUM_FILE.exists():
        return {}
    raw = json.loads(CHECKSUM_FILE.read_text())
    return {pkg: _Pinned(**v) for pkg, v in raw["packages"].items()}


def _pins_text(pins: dict[str, _Pinned]) -> str:
    body = {
        "comment": "sha256 of the Debian packages eradiff.train.datasets.debian downloads; "
        "rewrite with --record-checksums only after reviewing a new version",
        "packages": {pkg: vars(p) for pkg, p in sorted(pins.items())},
    }
    return json.dumps(body, indent=2) + "\n"


def _save_pins(pins: dict[str, _Pinned]) -> None:
    CHECKSUM_FILE.write_text(_pins_text(pins))


def _pins_digest(packages: tuple[str, ...]) -> str | None:
    """sha256 of the checksum file as it would read with the pins of ``packages`` alone.

    For the default packages this is the sha256 of the file before the opt-in packages were
    pinned in it, so adding pins does not change the default manifest's ``params``.
    """
    if not CHECKSUM_FILE.exists():
        return None
    pins = _load_pins()
    return _sha256_bytes(_pins_text({p: pins[p] for p in packages if p in pins}).encode())


# ----------------------------------------------------------------------------- step 1: download


class _Apt:
    """apt-get download with one lazy ``apt-get update``."""

    def __init__(self, debs: Path) -> None:
        self.debs = debs
        self.updated = False

    def update(self) -> None:
        if self.updated:
            return
        log.info("apt-get update")
        res = _run(["apt-get", "update"])
        if res.returncode != 0:
            who = "" if os.geteuid() == 0 else " (it needs root: run once as root, or `sudo apt-get update`)"
            raise DebianFetchError(f"apt-get update failed{who}: {_last_line(res)}")
        self.updated = True

    def candidate(self, pkg: str) -> str | None:
        res = _run(["apt-cache", "policy", pkg])
        m = re.search(r"Candidate:\s*(\S+)", res.stdout)
        return None if m is None or m.group(1) == "(none)" else m.group(1)

    def download(self, pkg: str, pin: _Pinned | None) -> Path:
        version = None if pin is None else pin.version
        spec = pkg if version is None else f"{pkg}={version}"
        before = set(self.debs.glob(f"{pkg}_*.deb"))
        res = _run(["apt-get", "download", spec], cwd=self.debs)
        if res.returncode != 0 and not self.updated:
            self.update()
            res = _run(["apt-get", "download", spec], cwd=self.debs)
        if res.returncode != 0:
            cand = self.candidate(pkg)
            if version is not None and cand is not None and cand != version:
                raise DebianFetchError(
                    f"Debian version changed for {pkg}: pinned {version} in {CHECKSUM_FILE.name}, the archive "
                    f"now offers {cand}. Review the new package, then re-run with --record-checksums."
                )
            raise DebianFetchError(f"apt-get download {spec} failed: {_last_line(res)}")
        new = sorted(set(self.debs.glob(f"{pkg}_*.deb")) - before)
        if pin is not None:
            if not (self.debs / pin.filename).exists():
                raise DebianFetchError(f"apt-get download {spec} did not produce {pin.filename}")
            return self.debs / pin.filename
        if len(new) != 1:
            found = [p.name for p in self.debs.glob(f"{pkg}_*.deb")]
            raise DebianFetchError(f"cannot tell which .deb apt-get downloaded for {pkg}: {found}")
        return new[0]


def _deb_version(deb: Path) -> str:
    res = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if res.returncode != 0:
        raise DebianFetchError(f"dpkg-deb cannot read {deb}: {_last_line(res)}")
    return res.stdout.strip()


def _fetch_debs(
    debs: Path, *, record_checksums: bool, packages: tuple[str, ...] = PACKAGES
) -> dict[str, tuple[Path, _Pinned]]:
    """Step 1: download (if absent) and verify ``packages``; returns pkg -> (deb path, pin).

    With ``record_checksums`` the pins of the packages fetched are rewritten; the others are kept.
    """
    pins = _load_pins()
    if not pins and not record_checksums:
        raise DebianFetchError(f"{CHECKSUM_FILE} is missing: run once with --record-checksums")
    apt = _Apt(debs)
    out: dict[str, tuple[Path, _Pinned]] = {}
    for pkg in packages:
        pin = pins.get(pkg)
        if record_checksums:
            deb = apt.download(pkg, None)
            version = _deb_version(deb)
            new_pin = _Pinned(version=version, filename=deb.name, sha256=_sha256_file(deb))
            if pin is not None and pin != new_pin:
                log.warning("%s: replacing pinned %s (%s) by %s", pkg, pin.version, pin.sha256[:12], version)
            out[pkg] = (deb, new_pin)
            continue
        if pin is None:
            raise DebianFetchError(f"{pkg} has no entry in {CHECKSUM_FILE.name}: run with --record-checksums")
        deb = debs / pin.filename
        if not deb.exists():
            log.info("downloading %s %s", pkg, pin.version)
            deb = apt.download(pkg, pin)
        digest = _sha256_file(deb)
        if digest != pin.sha256:
            try:
                version = _deb_version(deb)
            except DebianFetchError:
                version = None
            if version is None:
                what = "the file is not a readable .deb"
            elif version != pin.version:
                what = f"Debian version changed ({pin.version} pinned, {version} downloaded)"
            else:
                what = f"same version {version}, different bytes"
            raise DebianFetchError(
                f"checksum mismatch for {deb.name}: sha256 {digest}, expected {pin.sha256}; {what}. "
                "Delete the file to download it again, or review it and re-run with --record-checksums."
            )
        out[pkg] = (deb, pin)
    if record_checksums:
        _save_pins({**pins, **{pkg: pin for pkg, (_, pin) in out.items()}})
        log.info("recorded checksums in %s", CHECKSUM_FILE)
    return out


# ----------------------------------------------------------------------------- licences (DEP-5)


@dataclass(frozen=True)
class _Licence:
    short_name: str
    copyright: str


def _parse_dep5(text: str) -> list[tuple[list[str], _Licence]]:
    """The ``Files:`` stanzas of a machine-readable copyright file, in file order."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key].append(line.strip())
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = [value.strip()]
        if "files" in fields and "license" in fields:
            globs = " ".join(fields["files"]).split()
            lic = _Licence(
                short_name=fields["license"][0],
                copyright="; ".join(v for v in fields.get("copyright", []) if v),
            )
            stanzas.append((globs, lic))
    return stanzas


def _glob_matches(installed: str, glob: str) -> bool:
    """DEP-5 globs name source-tree paths; match them against the tail of the installed path,
    or by file name alone when the glob names one file (lomiri installs ``20.04/X.jpg`` as ``X.jpg``)."""
    if glob == "*":
        return True
    parts = installed.split("/")
    k = glob.count("/") + 1
    if len(parts) >= k and fnmatch.fnmatchcase("/".join(parts[-k:]), glob):
        return True
    base = glob.rsplit("/", 1)[-1]
    return not any(c in base for c in "*?[") and base == parts[-1]


def _licence_for(
    stanzas: list[tuple[list[str], _Licence]], path: str, *, matches: Callable[[str, str], bool] = _glob_matches
) -> _Licence:
    """The licence of ``path``: the last DEP-5 stanza with a glob that ``matches(path, glob)`` (DEP-5)."""
    found = None
    for globs, lic in stanzas:
        if any(matches(path, g) for g in globs):
            found = lic
    if found is None:
        raise DebianFetchError(f"no licence stanza in the copyright file matches {path}")
    return found


def _licence_for_source(stanzas: list[tuple[list[str], _Licence]], source: str) -> _Licence:
    """DEP-5 lookup by source-tree path (``*`` also matches ``/``); the last matching stanza wins."""
    return _licence_for(stanzas, source, matches=fnmatch.fnmatchcase)


# ----------------------------------------------------------------------------- step 3: backgrounds


def _trim_letterbox(rgb: np.ndarray, *, level: int = 16) -> tuple[np.ndarray, list[int]]:
    """Remove uniform black bars (rows/columns whose every pixel ≤ level) from the edges."""
    dark_rows = (rgb.max(axis=(1, 2)) <= level).tolist()
    dark_cols = (rgb.max(axis=(0, 2)) <= level).tolist()

    def run(flags: list[bool]) -> int:
        n = 0
        while n < len(flags) and flags[n]:
            n += 1
        return n

    top, bottom = run(dark_rows), run(dark_rows[::-1])
    left, right = run(dark_cols), run(dark_cols[::-1])
    h, w = rgb.shape[:2]
    if top + bottom >= h // 2 or left + right >= w // 2:  # a dark photo, not bars
        return rgb, [0, 0, 0, 0]
    return rgb[top : h - bottom, left : w - right], [left, top, right, bottom]


def _embedded_jpeg(data: bytes) -> tuple[int, bytes]:
    """The largest JPEG (by pixel count, first on ties) stored uncompressed inside ``data``.

    Returns:
        ``(offset, data[offset:])``; a JPEG decoder stops at the image's end marker.
    """
    best: tuple[int, int] | None = None  # (pixels, offset)
    i = data.find(b"\xff\xd8\xff")
    while i >= 0:
        try:
            with Image.open(io.BytesIO(data[i:])) as im:
                if im.format == "JPEG":
                    px = im.size[0] * im.size[1]
                    if best is None or px > best[0]:
                        best = (px, i)
        except (OSError, ValueError):
            pass
        i = data.find(b"\xff\xd8\xff", i + 3)
    if best is None:
        raise DebianFetchError("no embedded JPEG found")
    return best[1], data[best[1] :]


# Qt resource archives (``.rcc``, written by ``rcc -binary``): a 20-byte header (``qres``, version,
# then the offsets of the tree, data and names sections; version 3 adds a 4-byte flags word), a tree of
# fixed-size nodes (14 bytes, 22 from version 2 on: + 8-byte modification time), all integers big-endian.
# Node: name offset (u32), flags (u16: 1 zlib, 2 directory, 4 zstd), then for a directory child count
# and index of its first child node (u32 each), else country/language (u16 each) and data offset (u32).
# Name: u16 length in UTF-16 units, u32 hash, UTF-16BE text. Data: u32 size, then the bytes; zlib data
# is Qt's qCompress format (u32 uncompressed size, then a zlib stream).
RCC_ZLIB, RCC_DIRECTORY, RCC_ZSTD = 1, 2, 4


@dataclass(frozen=True)
class RccEntry:
    """One file of a Qt resource archive: where its stored bytes lie and how they are compressed."""

    flags: int
    offset: int
    size: int

    @property
    def compression(self) -> str:
        return "zstd" if self.flags & RCC_ZSTD else "zlib" if self.flags & RCC_ZLIB else "none"


def rcc_entries(data: bytes) -> dict[str, RccEntry]:
    """The files of a Qt ``.rcc`` archive by path (``a/b/c.png``, no leading ``:/``)."""
    if len(data) < 20 or data[:4] != b"qres":
        raise DebianFetchError("not a Qt resource archive (no 'qres' header)")
    version, tree, data_off, names = struct.unpack_from(">IIII", data, 4)
    if not 1 <= version <= 3:
        raise DebianFetchError(f"unsupported Qt resource archive version {version}")
    node_size = 14 if version == 1 else 22

    def node(i: int) -> tuple[str, int, int, int]:
        name_off, flags, a, b = struct.unpack_from(">IHII", data, tree + i * node_size)
        if i == 0:
            name = ""
        else:
            (length,) = struct.unpack_from(">H", data, names + name_off)
            start = names + name_off + 6
            name = data[start : start + 2 * length].decode("utf-16-be")
        return name, flags, a, b

    out: dict[str, RccEntry] = {}
    stack = [(0, "")]
    seen = set()
    while stack:
        i, path = stack.pop()
        if i in seen:
            raise DebianFetchError("corrupt Qt resource archive (the tree has a cycle)")
        seen.add(i)
        try:
            _, flags, a, b = node(i)
            if flags & RCC_DIRECTORY:
                for child in range(b, b + a):
                    child_name, child_flags, _, _ = node(child)
                    stack.append((child, path + child_name + ("/" if child_flags & RCC_DIRECTORY else "")))
            else:
                (size,) = struct.unpack_from(">I", data, data_off + b)
                if data_off + b + 4 + size > len(data):
                    raise DebianFetchError(f"corrupt Qt resource archive ({path} runs past the end)")
                out[path] = RccEntry(flags=flags, offset=data_off + b + 4, size=size)
        except (struct.error, UnicodeDecodeError) as e:
            raise DebianFetchError(f"corrupt Qt resource archive ({e})") from None
    return out


def rcc_read(data: bytes, entry: RccEntry) -> bytes:
    """The (decompressed) bytes of one ``.rcc`` entry.

    zstd entries need the optional ``zstandard`` package; without it a :class:`DebianFetchError`
    says so (no photo chosen from gcompris-qt-data 3.1 is zstd-compressed).
    """
    raw = data[entry.offset : entry.offset + entry.size]
    if entry.flags & RCC_ZSTD:
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise DebianFetchError(
                "this Qt resource entry is zstd-compressed and the zstandard package is not installed: "
                "pip install zstandard, or leave the file out"
            ) from None
        return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
    if entry.flags & RCC_ZLIB:
        if len(raw) < 4:
            raise DebianFetchError("corrupt zlib entry in a Qt resource archive")
        (expected,) = struct.unpack_from(">I", raw)
        out = zlib.decompress(raw[4:])
        if len(out) != expected:
            raise DebianFetchError(f"zlib entry of {len(out)} bytes, the archive says {expected}")
        return out
    return raw


def rcc_file(data: bytes, name: str) -> bytes:
    """The bytes of the file ``name`` in the Qt resource archive ``data``."""
    entries = rcc_entries(data)
    if name not in entries:
        raise DebianFetchError(f"no {name} in the Qt resource archive")
    return rcc_read(data, entries[name])


_CREDIT_KEY = re.compile(r"([A-Za-z][A-Za-z ]*?):(?:\s+(.*))?")


def _parse_credits(text: str) -> list[tuple[list[str], dict[str, str]]]:
    """The stanzas of a gcompris ``resource/README``: (file names, fields with lower-case keys).

    Stanzas are separated by blank lines; ``Key: value`` lines set fields (indented lines continue
    them), and the names follow ``Files:`` or stand alone on their lines.
    """
    stanzas = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, list[str]] = {}
        files: list[str] = []
        key = None
        for line in block.splitlines():
            m = _CREDIT_KEY.fullmatch(line.rstrip())
            if m is not None and not line[:1].isspace():
                key = m.group(1).lower()
                value = (m.group(2) or "").strip()
                if key == "files":
                    files += value.split()
                else:
                    fields.setdefault(key, []).extend([value] if value else [])
            elif line[:1].isspace() and key is not None and key != "files":
                fields[key].append(line.strip())
            else:
                files += line.split()
        stanzas.append((files, {k: " ".join(v) for k, v in fields.items()}))
    return stanzas


def _free_licence(text: str) -> str:
    """A credits file's licence as an SPDX-like short name; only public domain, CC0, CC-BY, CC-BY-SA."""
    t = " ".join(text.split())
    if t.lower() == "public domain":
        return "public-domain"
    m = re.fullmatch(r"(CC0|CC-BY|CC-BY-SA)[- ](\d\.\d)", t)
    if m is None:
        raise DebianFetchError(f"licence {text!r} is not one of public domain, CC0, CC-BY, CC-BY-SA")
    return f"{m.group(1)}-{m.group(2)}"


def _prepare_background(src: Path, dst_stem: Path, *, max_side: int, image: bytes | None = None) -> dict:
    """Trim, resize and write one background; ``image``: the bytes to decode, when they are not
    the whole file (an image inside an archive: then it is always re-encoded)."""
    data = src.read_bytes()
    with Image.open(io.BytesIO(data if image is None else image)) as im:
        src_size = list(im.size)
        fmt = im.format
        rgb = np.asarray(im.convert("RGB"))
    rgb, trimmed = _trim_letterbox(rgb)
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0 and not any(trimmed) and fmt == "JPEG" and image is None:
        dst = dst_stem.with_suffix(".jpg")
        dst.write_bytes(data)
        resized = False
    else:
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        dst = dst_stem.with_suffix(".jpg")
        Image.fromarray(rgb).save(dst, quality=JPEG_QUALITY, subsampling=0, optimize=True)
        resized = scale < 1.0
    return {
        "source_size": src_size,
        "source_bytes": len(data),
        "source_sha256": _sha256_bytes(data),
        "size": [int(rgb.shape[1]), int(rgb.shape[0])],
        "bytes": dst.stat().st_size,
        "sha256": _sha256_file(dst),
        "resized": resized,
        "letterbox_trimmed_ltrb": trimmed,
        "_dst": dst,
    }


# ----------------------------------------------------------------------------- step 4: stamps


def stamp_statistics(rgba: np.ndarray) -> dict[str, float]:
    """Colour statistics used to tell photographic stamps from clip-art.

    Args:
        rgba: (h, w, 4) uint8 stamp.

    Returns:
        Over the interior opaque pixels (alpha 255, 3×3-eroded): ``opaque_px``, the number of
        pixels with alpha 255; ``clipped_fraction``, the share that is pure black or white (all
        channels ≤ 5 or ≥ 250: line art, white drawings); ``flat_fraction``, among the other
        interior pixels, the share whose 3×3 neighbourhood varies by ≤ 2 in every channel.
        Flat-shaded drawings score high, photos (sensor noise, texture) near 0.
    """
    alpha = rgba[..., 3]
    opaque = (alpha == 255).astype(np.uint8)
    inner = cv2.erode(opaque, np.ones((3, 3), np.uint8)).astype(bool)
    n_inner = int(inner.sum())
    if n_inner == 0:
        return {"opaque_px": float(opaque.sum()), "clipped_fraction": 1.0, "flat_fraction": 1.0}
    rgb = np.ascontiguousarray(rgba[..., :3])
    k = np.ones((3, 3), np.uint8)
    spread = (cv2.dilate(rgb, k).astype(np.int16) - cv2.erode(rgb, k).astype(np.int16)).max(axis=-1)
    clipped = (rgb >= 250).all(axis=-1) | (rgb <= 5).all(axis=-1)
    tonal = inner & ~clipped
    flat = (spread <= 2) & tonal
    return {
        "opaque_px": float(opaque.sum()),
        "clipped_fraction": round(float((inner & clipped).sum()) / n_inner, 4),
        "flat_fraction": round(float(flat.sum()) / max(1, int(tonal.sum())), 4),
    }


def stamp_name_reason(rel: str, *, dat_text: str, has_svg: bool) -> str | None:
    """Why a stamp is not a photographic object, judged from its name and sibling files alone.

    Args:
        rel: path below ``usr/share/tuxpaint/stamps``.
        dat_text: contents of the stamp's ``.dat`` file ('' if none).
        has_svg: whether a same-named ``.svg`` exists (the PNG is then a rasterised vector drawing).

    Returns:
        The reason to skip, or None.
    """
    for part in rel.split("/")[:-1]:
        if part in STAMP_SKIP_DIRS:
            return STAMP_SKIP_DIRS[part]
    if rel.endswith("_mirror.png"):
        return f"pre-mirrored copy of {rel.removesuffix('_mirror.png')}.png"
    if has_svg:
        return "vector drawing (a same-named .svg exists)"
    if "colorable" in dat_text:
        return "colourable silhouette (.dat says 'colorable')"
    return STAMP_MANUAL_SKIP.get(rel)


def classify_stamp(rel: str, rgba: np.ndarray | None, *, dat_text: str, has_svg: bool) -> str | None:
    """Why a stamp is not a photographic object, or None to keep it.

    The name rules of :func:`stamp_name_reason` first, then the colour statistics of
    :func:`stamp_statistics`: at least ``STAMP_MIN_OPAQUE`` opaque pixels and at most
    ``STAMP_MAX_FLAT`` flat interior.

    Args:
        rel: path below ``usr/share/tuxpaint/stamps``.
        rgba: the decoded (h, w, 4) uint8 stamp, or None when it could not be read.
        dat_text: contents of the stamp's ``.dat`` file ('' if none).
        has_svg: whether a same-named ``.svg`` exists.
    """
    reason = stamp_name_reason(rel, dat_text=dat_text, has_svg=has_svg)
    if reason is not None:
        return reason
    if rgba is None:
        return "unreadable image"
    stats = stamp_statistics(rgba)
    if stats["opaque_px"] < STAMP_MIN_OPAQUE:
        return f"too small: {int(stats['opaque_px'])} opaque px < {STAMP_MIN_OPAQUE}"
    if stats["clipped_fraction"] > STAMP_MAX_CLIPPED:
        clipped = stats["clipped_fraction"]
        return f"mostly pure black/white (line art): clipped_fraction {clipped:.2f} > {STAMP_MAX_CLIPPED}"
    if stats["flat_fraction"] > STAMP_MAX_FLAT:
        return f"flat colours (clip-art): flat_fraction {stats['flat_fraction']:.2f} > {STAMP_MAX_FLAT}"
    return None


def _read_rgba(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA"))
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- step 5: splits


def _split(ids_by_group: dict[str, list[str]], *, seed: int, val_fraction: float, forced_val: set[str]) -> set[str]:
    """Validation ids: per group, round(val_fraction·n) photos (forced ones count towards it)."""
    val: set[str] = set()
    for g, (group, ids) in enumerate(sorted(ids_by_group.items())):
        ids = sorted(ids)
        rng = np.random.default_rng([seed, g, len(ids)])
        want = round(val_fraction * len(ids))
        chosen = [i for i in ids if i in forced_val]
        for j in rng.permutation(len(ids)):
            if len(chosen) >= want:
                break
            if ids[j] not in chosen:
                chosen.append(ids[j])
        log.debug("split %s: %d of %d to validation", group, len(chosen), len(ids))
        val.update(chosen)
    return val


# ----------------------------------------------------------------------------- main entry


def _rules_digest() -> str:
    """Changes to the selection rules invalidate an existing manifest."""
    rules = [
        BACKGROUND_FILES,
        HELD_OUT,
        STAMP_SKIP_DIRS,
        STAMP_MANUAL_SKIP,
        STAMP_MIN_OPAQUE,
        STAMP_MAX_CLIPPED,
        STAMP_MAX_FLAT,
        JPEG_QUALITY,
    ]
    return _sha256_bytes(json.dumps(rules, sort_keys=True).encode())[:16]


def _more_rules_digest() -> str:
    """The ``more_photos`` rules; recorded as ``params["more_photos"]`` (``28eb21f8e5ea544e`` for
    stage 5's 45 photos: the digest of these very rules before gcompris-qt-data's had a table)."""
    rules = [MORE_BACKGROUND_FILES, MORE_SOURCE_PREFIX, MORE_LICENCE_OVERRIDES, MORE_UPSTREAM_LICENCE, "edj:largest"]
    if any("!" in rel for rels in MORE_BACKGROUND_FILES.values() for rel in rels):
        rules += [RCC_CREDIT_ALIASES, "rcc:credits-readme"]
    return _sha256_bytes(json.dumps(rules, sort_keys=True).encode())[:16]


def _gcompris_rules_digest() -> str:
    """The ``gcompris_photos`` rules; recorded as ``params["gcompris_photos"]``."""
    rules = [GCOMPRIS_BACKGROUND_FILES, RCC_CREDIT_ALIASES, "rcc:credits-readme", "licences:PD,CC0,CC-BY,CC-BY-SA"]
    return _sha256_bytes(json.dumps(rules, sort_keys=True).encode())[:16]


def _opt_in_sets() -> dict[str, dict[str, tuple[str, ...]]]:
    """The opt-in photo sets: option (also the per-entry flag and manifest section) -> photo table."""
    return {"more_photos": MORE_BACKGROUND_FILES, "gcompris_photos": GCOMPRIS_BACKGROUND_FILES}


#: Per opt-in set: the name of its table (for error messages) and the note of its manifest section.
_OPT_IN_LISTING = {"more_photos": "MORE_BACKGROUND_FILES", "gcompris_photos": "GCOMPRIS_BACKGROUND_FILES"}
_OPT_IN_NOTE = {
    "more_photos": "opt-in photos from further packages, all in the train split; the validation split "
    "is the one of the default data set",
    "gcompris_photos": "opt-in gcompris-qt-data photos (members of its Qt resource archives, licence and "
    "author from the activities' credits READMEs), all in the train split; the validation split is the "
    "one of the default data set",
}


def _manifest_matches(path: Path, params: dict) -> bool:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return m.get("format") == MANIFEST_FORMAT and m.get("params") == params


def fetch_debian_dataset(
    cache_dir: Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    max_side: int = 1024,
    record_checksums: bool = False,
    force: bool = False,
    more_photos: bool = False,
    gcompris_photos: bool = False,
) -> Path:
    """Download, verify and prepare the offline photo data set; returns the manifest path.

    Args:
        cache_dir: where the .deb files, prepared images and ``manifest.json`` live.
        seed: fixes the train/validation split.
        val_fraction: share of photos (per package for backgrounds, per top-level category for
            objects) put in validation, in [0, 1).
        max_side: backgrounds are resized so their longer side is at most this many pixels.
        record_checksums: download the current archive versions and (re)write
            ``debian_sha256.json`` instead of verifying against it.
        force: rebuild even if a manifest with the same options exists.
        more_photos: also fetch ``MORE_PACKAGES`` and add ``MORE_BACKGROUND_FILES`` (45 photos,
            stage 5's set) to the train split (validation and the default photos stay as they are).
        gcompris_photos: also fetch ``GCOMPRIS_PACKAGES`` and add ``GCOMPRIS_BACKGROUND_FILES``
            (124 photos) to the train split; independent of ``more_photos`` (both: 169 photos).

    Returns:
        ``cache_dir / "manifest.json"``.

    Raises:
        DebianFetchError: apt/dpkg failed, a checksum did not match, or the package content
            differs from what this module lists (one line saying what to do).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if max_side < 64:
        raise ValueError(f"max_side must be ≥ 64, got {max_side}")
    cache_dir = Path(cache_dir)
    manifest_path = cache_dir / "manifest.json"
    packages = PACKAGES + (MORE_PACKAGES if more_photos else ()) + (GCOMPRIS_PACKAGES if gcompris_photos else ())
    chosen = {"more_photos": more_photos, "gcompris_photos": gcompris_photos}

    params = {
        "seed": seed,
        "val_fraction": val_fraction,
        "max_side": max_side,
        "checksums": _pins_digest(PACKAGES),
        "rules": _rules_digest(),
    }
    if more_photos:
        params["checksums_more"] = _pins_digest(MORE_PACKAGES)
        params["more_photos"] = _more_rules_digest()
    if gcompris_photos:
        params["checksums_gcompris"] = _pins_digest(GCOMPRIS_PACKAGES)
        params["gcompris_photos"] = _gcompris_rules_digest()
    if not force and not record_checksums and _manifest_matches(manifest_path, params):
        log.info("%s is up to date", manifest_path)
        return manifest_path

    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    fetched = _fetch_debs(debs, record_checksums=record_checksums, packages=packages)
    params["checksums"] = _pins_digest(PACKAGES)
    if more_photos:
        params["checksums_more"] = _pins_digest(MORE_PACKAGES)
    if gcompris_photos:
        params["checksums_gcompris"] = _pins_digest(GCOMPRIS_PACKAGES)

    for sub in ("backgrounds", "objects", "licences"):
        shutil.rmtree(cache_dir / sub, ignore_errors=True)
    packages, backgrounds, objects, skipped = _extract_packages(fetched, cache_dir, max_side=max_side)
    # The opt-in photos take no part in the split: the default ones split exactly as without them.
    opt_in = {pkg for table in _opt_in_sets().values() for pkg in table}
    _assign_splits(
        [b for b in backgrounds if b["package"] not in opt_in],
        objects,
        seed=seed,
        val_fraction=val_fraction,
    )
    for b in backgrounds:
        if b["package"] in opt_in:
            b["split"] = "train"
            b["held_out"] = False

    def ids(items: list[dict], split: str) -> list[str]:
        return [x["id"] for x in items if x["split"] == split]

    manifest = {
        "format": MANIFEST_FORMAT,
        "params": params,
        "description": "eradiff offline photo data: backgrounds and RGBA object stamps from Debian packages",
        "paths": "relative to the folder holding this manifest",
        "packages": packages,
        "backgrounds": backgrounds,
        "objects": objects,
        "skipped_objects": skipped,
        "splits": {
            "backgrounds": {"train": ids(backgrounds, "train"), "val": ids(backgrounds, "val")},
            "objects": {"train": ids(objects, "train"), "val": ids(objects, "val")},
        },
        "held_out": [{"id": k, "reason": v} for k, v in sorted(HELD_OUT.items())],
        "stamp_rule": {
            "skip_dirs": STAMP_SKIP_DIRS,
            "skip_mirror_copies": True,
            "skip_with_svg_sibling": True,
            "skip_colorable": True,
            "manual_skip": STAMP_MANUAL_SKIP,
            "min_opaque_px": STAMP_MIN_OPAQUE,
            "max_clipped_fraction": STAMP_MAX_CLIPPED,
            "max_flat_fraction": STAMP_MAX_FLAT,
            "duplicates": "a stamp whose bytes equal an earlier kept stamp is skipped",
        },
        "counts": {
            "backgrounds": {"train": len(ids(backgrounds, "train")), "val": len(ids(backgrounds, "val"))},
            "objects": {"train": len(ids(objects, "train")), "val": len(ids(objects, "val"))},
            "objects_skipped": len(skipped),
            "held_out": len(HELD_OUT),
        },
    }
    for flag, table in _opt_in_sets().items():
        if chosen[flag]:
            added = [b for b in backgrounds if b["package"] in table]
            manifest[flag] = {
                "note": _OPT_IN_NOTE[flag],
                "packages": list(table),
                "backgrounds": len(added),
                "by_package": {pkg: sum(b["package"] == pkg for b in added) for pkg in table},
            }
    tmp_manifest = manifest_path.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    tmp_manifest.replace(manifest_path)
    log.info("wrote %s: %s", manifest_path, manifest["counts"])
    return manifest_path


def _extract_packages(
    fetched: dict, cache_dir: Path, *, max_side: int
) -> tuple[dict[str, dict], list[dict], list[dict], list[dict]]:
    """Unpack each .deb, copy its licence and prepare its photos or stamps.

    Returns:
        ``(packages, backgrounds, objects, skipped_objects)`` manifest entries.
    """
    backgrounds: list[dict] = []
    objects: list[dict] = []
    skipped: list[dict] = []
    packages: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="extract-") as tmp:
        for pkg, (deb, pin) in fetched.items():
            root = Path(tmp) / pkg
            res = _run(["dpkg", "-x", str(deb), str(root)])
            if res.returncode != 0:
                raise DebianFetchError(f"dpkg -x {deb.name} failed: {_last_line(res)}")
            copyright_rel = f"usr/share/doc/{pkg}/copyright"
            lic_copy = cache_dir / "licences" / pkg / "copyright"
            lic_copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / copyright_rel, lic_copy)
            stanzas = _parse_dep5((root / copyright_rel).read_text(errors="replace"))
            packages[pkg] = {
                "version": pin.version,
                "deb": f"debs/{deb.name}",
                "sha256": pin.sha256,
                "copyright_file": copyright_rel,
                "copyright_copy": str(lic_copy.relative_to(cache_dir)),
            }
            common = {"package": pkg, "copyright_file": copyright_rel}
            flag = next((f for f, table in _opt_in_sets().items() if pkg in table), None)
            if pkg in BACKGROUND_FILES:
                backgrounds += _prepare_backgrounds(pkg, root, cache_dir, stanzas, common, max_side=max_side)
            elif flag is not None:
                backgrounds += _prepare_more_backgrounds(
                    pkg, root, cache_dir, stanzas, common, max_side=max_side, flag=flag
                )
            else:
                kept, skip = _prepare_objects(root, cache_dir, stanzas, common)
                objects += kept
                skipped += skip

    return packages, backgrounds, objects, skipped


def _assign_splits(backgrounds: list[dict], objects: list[dict], *, seed: int, val_fraction: float) -> None:
    """Set ``split`` (by package for photos, by top-level category for stamps) and ``held_out``."""
    missing_held = set(HELD_OUT) - {b["id"] for b in backgrounds}
    if missing_held:
        raise DebianFetchError(f"held-out photos not found among the backgrounds: {sorted(missing_held)}")
    by_pkg: dict[str, list[str]] = {}
    for b in backgrounds:
        by_pkg.setdefault(b["package"], []).append(b["id"])
    by_cat: dict[str, list[str]] = {}
    for o in objects:
        by_cat.setdefault(o["category"].split("/")[0], []).append(o["id"])
    val_bg = _split(by_pkg, seed=seed, val_fraction=val_fraction, forced_val=set(HELD_OUT))
    val_obj = _split(by_cat, seed=seed, val_fraction=val_fraction, forced_val=set())
    for b in backgrounds:
        b["split"] = "val" if b["id"] in val_bg else "train"
        b["held_out"] = b["id"] in HELD_OUT
    for o in objects:
        o["split"] = "val" if o["id"] in val_obj else "train"
        o["held_out"] = False


def _background_entry(
    pkg: str, rel: str, stem: str, root: Path, cache_dir: Path, common: dict, *, listing: str, max_side: int,
    embedded: bool = False,
) -> dict:  # fmt: skip
    """Prepare ``root/rel`` into ``backgrounds/<pkg>/<stem>`` and return its manifest entry (no licence).

    ``listing`` names the table to update when the package no longer holds ``rel``. ``embedded``:
    the file is an archive (``.edj``); its largest embedded JPEG is the photo, and its offset is
    recorded as ``embedded_jpeg_offset``. ``ARCHIVE.rcc!MEMBER`` names a file inside a Qt resource
    archive; ``source_bytes`` / ``source_sha256`` then describe the member, ``rcc_sha256`` the archive.
    """
    archive, _, member = rel.partition("!")
    src = root / archive
    if not src.exists():
        raise DebianFetchError(f"{pkg} no longer contains {archive}: update {listing}")
    dst_dir = cache_dir / "backgrounds" / pkg
    dst_dir.mkdir(parents=True, exist_ok=True)
    extra, image = {}, None
    if embedded:
        try:
            extra["embedded_jpeg_offset"], image = _embedded_jpeg(src.read_bytes())
        except DebianFetchError as e:
            raise DebianFetchError(f"{pkg}: {rel}: {e}") from None
    if member:
        data = src.read_bytes()
        entries = rcc_entries(data)
        if member not in entries:
            raise DebianFetchError(f"{pkg}: {archive} no longer contains {member}: update {listing}")
        image = rcc_read(data, entries[member])
        extra |= {"rcc_member": member, "rcc_compression": entries[member].compression}
        extra["rcc_sha256"] = _sha256_bytes(data)
    info = _prepare_background(src, dst_dir / stem, max_side=max_side, image=image)
    if member:
        info |= {"source_bytes": len(image), "source_sha256": _sha256_bytes(image)}
    return {
        "id": f"{pkg}/{stem}",
        **common,
        "source_path": rel,
        **extra,
        "path": str(info.pop("_dst").relative_to(cache_dir)),
        **info,
    }


def _prepare_backgrounds(pkg, root, cache_dir, stanzas, common, *, max_side) -> list[dict]:
    out = []
    for rel in BACKGROUND_FILES[pkg]:
        stem = Path(rel).stem if pkg != "plasma-workspace-wallpapers" else rel.split("/")[3]
        entry = _background_entry(
            pkg, rel, stem, root, cache_dir, common, listing="BACKGROUND_FILES", max_side=max_side
        )
        lic = _licence_for(stanzas, rel)
        entry |= {"licence": lic.short_name, "copyright": lic.copyright}
        meta = (root / rel).parents[2] / "metadata.json" if pkg == "plasma-workspace-wallpapers" else None
        if meta is not None and meta.exists():
            plugin = json.loads(meta.read_text()).get("KPlugin", {})
            entry["upstream_licence"] = plugin.get("License")
            entry["upstream_authors"] = [a.get("Name") for a in plugin.get("Authors", [])]
            entry["upstream_licence_file"] = str(meta.relative_to(root))
        out.append(entry)
    return out


def _rcc_licence(root: Path, rel: str) -> dict:
    """The licence of ``ARCHIVE.rcc!MEMBER`` from the nearest ``README`` above the member in the same
    archive (gcompris' per-activity credits; names in it are relative to its folder)."""
    archive, _, member = rel.partition("!")
    data = (root / archive).read_bytes()
    entries = rcc_entries(data)
    folder, _, name = member.rpartition("/")
    while folder and f"{folder}/README" not in entries:
        folder, _, up = folder.rpartition("/")
        name = f"{up}/{name}"
    if not folder:
        raise DebianFetchError(f"no credits README above {member} in {archive}")
    readme = f"{folder}/README"
    text = rcc_read(data, entries[readme]).decode("utf-8")
    listed = RCC_CREDIT_ALIASES.get(member, name)
    found = [fields for files, fields in _parse_credits(text) if listed in files]
    if len(found) != 1:
        raise DebianFetchError(f"{archive}!{readme} credits {listed} in {len(found)} stanzas, expected 1")
    fields = found[0]
    if "license" not in fields and "licence" not in fields:
        raise DebianFetchError(f"{archive}!{readme} states no licence for {listed}")
    out = {
        "licence": _free_licence(fields.get("license", fields.get("licence", ""))),
        "copyright": fields.get("copyright", ""),
        "licence_note_file": f"{archive}!{readme}",
    }
    if "source" in fields:
        out["upstream_source"] = fields["source"]
    comment = fields.get("comments", fields.get("comment"))
    if comment:
        out["credit_comment"] = comment
    if listed != name:
        out["credited_as"] = listed
    return out


def _more_licence(pkg: str, stanzas, rel: str, root: Path | None = None) -> dict:
    if "!" in rel:
        assert root is not None
        return _rcc_licence(root, rel)
    override = MORE_LICENCE_OVERRIDES.get(pkg)
    if override is not None:
        return dict(override)
    prefix, source_prefix = MORE_SOURCE_PREFIX[pkg]
    if not rel.startswith(prefix):
        raise DebianFetchError(f"{pkg}: {rel} is not below {prefix} (MORE_SOURCE_PREFIX)")
    source = source_prefix + rel[len(prefix) :]
    lic = _licence_for_source(stanzas, source)
    return {"licence": lic.short_name, "copyright": lic.copyright, "licence_source_path": source}


def _more_stem(rel: str) -> str:
    """File stem of an opt-in photo; a Qt resource member is named by its activity and folders
    (``erase.rcc!gcompris/src/activities/erase/resource/bee.webp`` -> ``erase-bee``)."""
    if "!" not in rel:
        return Path(rel).stem
    parts = rel.partition("!")[2].removesuffix(Path(rel).suffix).split("/")
    if parts[:3] == ["gcompris", "src", "activities"]:
        parts = [p for p in parts[3:] if p != "resource"]
    return "-".join(parts)


def _prepare_more_backgrounds(pkg, root, cache_dir, stanzas, common, *, max_side, flag="more_photos") -> list[dict]:
    """The opt-in photos of one package of the set ``flag`` (``more_photos`` or ``gcompris_photos``;
    each entry gets ``flag: true``). Split and held_out are set by the caller."""
    out = []
    listing = _OPT_IN_LISTING[flag]
    for rel in _opt_in_sets()[flag][pkg]:
        entry = _background_entry(
            pkg, rel, _more_stem(rel), root, cache_dir, common, listing=listing, max_side=max_side,
            embedded=rel.endswith(".edj"),
        )  # fmt: skip
        entry |= _more_licence(pkg, stanzas, rel, root)
        upstream = MORE_UPSTREAM_LICENCE.get(pkg)
        if upstream is not None:
            entry["upstream_licence"] = upstream[1]
            entry["upstream_licence_file"] = upstream[0]
        entry[flag] = True
        out.append(entry)
    return out


def _prepare_objects(root, cache_dir, stanzas, common) -> tuple[list[dict], list[dict]]:
    stamp_root = root / STAMP_ROOT
    kept: list[dict] = []
    skipped: list[dict] = []
    seen: dict[str, str] = {}
    for src in sorted(stamp_root.rglob("*.png")):
        rel = src.relative_to(stamp_root).as_posix()
        dat = src.with_suffix(".dat")
        dat_text = dat.read_text(errors="replace") if dat.exists() else ""
        has_svg = src.with_suffix(".svg").exists()
        rgba = None
        reason = stamp_name_reason(rel, dat_text=dat_text, has_svg=has_svg)
        if reason is None:
            rgba = _read_rgba(src)
            reason = classify_stamp(rel, rgba, dat_text=dat_text, has_svg=has_svg)
        data = src.read_bytes()
        digest = _sha256_bytes(data)
        if reason is None and digest in seen:
            reason = f"duplicate of {seen[digest]} (same bytes)"
        if reason is not None:
            skipped.append({"source_path": f"{STAMP_ROOT}/{rel}", "reason": reason})
            continue
        seen[digest] = rel
        assert rgba is not None
        ys, xs = np.nonzero(rgba[..., 3])
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        cut = rgba[box[1] : box[3], box[0] : box[2]]
        dst = cache_dir / "objects" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(cut, "RGBA").save(dst, optimize=True)
        lic = _licence_for(stanzas, f"{STAMP_ROOT}/{rel}")
        stats = stamp_statistics(rgba)
        name_file = src.with_suffix(".txt")
        name = name_file.read_text(errors="replace").splitlines()[0].strip() if name_file.exists() else ""
        kept.append(
            {
                "id": f"tuxpaint-stamps-default/{rel.removesuffix('.png')}",
                **common,
                "source_path": f"{STAMP_ROOT}/{rel}",
                "source_size": [int(rgba.shape[1]), int(rgba.shape[0])],
                "source_bytes": len(data),
                "source_sha256": digest,
                "path": str(dst.relative_to(cache_dir)),
                "size": [int(cut.shape[1]), int(cut.shape[0])],
                "bytes": dst.stat().st_size,
                "sha256": _sha256_file(dst),
                "cropped_to_alpha_box_ltrb": box,
                "category": str(Path(rel).parent.as_posix()),
                "description": name,
                "opaque_px": int(stats["opaque_px"]),
                "clipped_fraction": stats["clipped_fraction"],
                "flat_fraction": stats["flat_fraction"],
                "licence": lic.short_name,
                "copyright": lic.copyright,
            }
        )
    return kept, skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m eradiff.train.datasets.debian",
        description="Fetch and prepare eradiff's offline training photos from Debian packages.",
    )
    p.add_argument("--cache", type=Path, required=True, help="cache folder (e.g. data/debian)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--max-side", type=int, default=1024, help="longest background side after resizing")
    p.add_argument("--record-checksums", action="store_true", help="(re)write debian_sha256.json")
    p.add_argument("--force", action="store_true", help="rebuild even if the manifest is up to date")
    p.add_argument(
        "--more-photos",
        action="store_true",
        help="also fetch the opt-in photo packages (MORE_BACKGROUND_FILES: 45 photos of six packages, "
        "stage 5's set), all in the train split; use another --cache than the default set's",
    )
    p.add_argument(
        "--gcompris-photos",
        action="store_true",
        help="also fetch gcompris-qt-data (GCOMPRIS_BACKGROUND_FILES: 124 photos), all in the train split; "
        "independent of --more-photos (both: 169 photos); use another --cache than the other sets'",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = fetch_debian_dataset(
            args.cache,
            seed=args.seed,
            val_fraction=args.val_fraction,
            max_side=args.max_side,
            record_checksums=args.record_checksums,
            force=args.force,
            more_photos=args.more_photos,
            gcompris_photos=args.gcompris_photos,
        )
    except DebianFetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    counts = json.loads(path.read_text())["counts"]
    print(f"{path}: {json.dumps(counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
