"""Reading images and masks (modes, EXIF, 16-bit, limits, garbage) and atomic writing."""

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import eradiff.pipeline.io as pio
from eradiff.errors import InputError, OutputError
from eradiff.pipeline.io import (
    LoadedImage,
    atomic_write,
    encode_image,
    fit_mask,
    orient,
    read_image,
    read_mask,
    write_image,
)

RNG = np.random.default_rng(0)


def save(path: Path, array: np.ndarray, mode: str | None = None, **kw) -> Path:
    Image.fromarray(array, mode=mode).save(path, **kw)
    return path


@pytest.mark.parametrize(
    ("mode", "shape"),
    [("RGB", (9, 13, 3)), ("RGBA", (9, 13, 4)), ("L", (9, 13)), ("LA", (9, 13, 2))],
)
def test_read_modes_exactly(tmp_path, mode, shape):
    a = RNG.integers(0, 256, shape, dtype=np.uint8)
    img = read_image(save(tmp_path / "x.png", a, mode))
    assert img.pixels.dtype == np.uint8 and np.array_equal(img.pixels, a)
    assert img.format == "png" and img.size == (13, 9)


def test_read_palette_becomes_rgb(tmp_path):
    a = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    p = Image.fromarray(a).quantize(16)
    p.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.pixels.shape == (8, 8, 3)
    assert np.array_equal(img.pixels, np.asarray(p.convert("RGB")))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_round_trip_is_exact(tmp_path, suffix, channels):
    a = RNG.integers(0, 65536, (7, 11, channels) if channels > 1 else (7, 11), dtype=np.uint16)
    bgr = a if channels == 1 else (a[..., ::-1] if channels == 3 else a[..., [2, 1, 0, 3]])
    cv2.imwrite(str(tmp_path / f"a{suffix}"), bgr)
    img = read_image(tmp_path / f"a{suffix}")
    assert img.pixels.dtype == np.uint16 and np.array_equal(img.pixels, a)
    out = write_image(tmp_path / f"b{suffix}", img.pixels, like=img)
    assert np.array_equal(read_image(out).pixels, a)


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "eradiff-test"  # Make
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_exif_transpose(orientation):
    a = RNG.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    im = Image.fromarray(a)
    im.info["exif"] = exif_with_orientation(orientation)
    im.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(orient(a, orientation), expected)


def test_exif_rotated_jpeg_is_upright_and_exif_kept_without_orientation(tmp_path):
    a = RNG.integers(0, 256, (10, 30, 3), dtype=np.uint8)
    path = save(tmp_path / "r.jpg", a, exif=exif_with_orientation(6), quality=100)
    img = read_image(path)
    assert img.pixels.shape == (30, 10, 3), "orientation 6 rotates 90° clockwise"
    out = write_image(tmp_path / "o.jpg", img.pixels, like=img)
    with Image.open(out) as back:
        exif = back.getexif()
        assert exif.get(0x010F) == "eradiff-test" and 0x0112 not in exif
        assert back.size == (10, 30)


def test_exif_rotated_16bit_png(tmp_path):
    a = RNG.integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    data = pio._png_with_exif(cv2.imencode(".png", a[..., ::-1])[1].tobytes(), exif_with_orientation(8))
    (tmp_path / "r16.png").write_bytes(data)
    img = read_image(tmp_path / "r16.png")
    assert np.array_equal(img.pixels, np.rot90(a, 1))
    out = write_image(tmp_path / "o16.png", img.pixels, like=img)
    back = read_image(out)
    assert np.array_equal(back.pixels, img.pixels) and back.exif is not None


def test_mask_modes_and_threshold(tmp_path):
    size = (6, 4)
    grey = np.zeros((4, 6), np.uint8)
    grey[0, 0], grey[0, 1], grey[1, 1] = 127, 128, 255
    want = grey > 127
    assert np.array_equal(read_mask(save(tmp_path / "g.png", grey), size)[0], want)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    assert np.array_equal(read_mask(save(tmp_path / "rgb.png", rgb), size)[0], want)
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 3] = grey  # the alpha channel carries the mask
    assert np.array_equal(read_mask(save(tmp_path / "a.png", rgba), size)[0], want)
    la = np.stack([np.zeros_like(grey), grey], axis=-1)
    assert np.array_equal(read_mask(save(tmp_path / "la.png", la, "LA"), size)[0], want)
    opaque = np.concatenate([rgb, np.full((4, 6, 1), 255, np.uint8)], axis=-1)
    assert np.array_equal(read_mask(save(tmp_path / "o.png", opaque), size)[0], want), "opaque alpha → grey"
    binary = Image.fromarray(want)
    binary.save(tmp_path / "b.png")
    assert np.array_equal(read_mask(tmp_path / "b.png", size)[0], want)


def test_mask_of_same_aspect_is_resized_with_warning():
    small = np.zeros((50, 80), bool)
    small[10:20, 10:30] = True
    mask, warnings = fit_mask(small, (160, 100))
    assert mask.shape == (100, 160) and mask[20:40, 20:60].all() and mask.sum() == 4 * small.sum()
    assert warnings and "resized" in warnings[0]
    within_1px, _ = fit_mask(np.zeros((333, 500), bool), (1000, 667))  # 666.0 → 667 is within 1 px
    assert within_1px.shape == (667, 1000)


def test_mask_of_other_aspect_is_an_error():
    with pytest.raises(InputError, match="aspect ratios differ"):
        fit_mask(np.zeros((50, 50), bool), (160, 100))


def test_decompression_bomb_limit(tmp_path):
    path = save(tmp_path / "big.png", np.zeros((40, 50), np.uint8))
    with pytest.raises(InputError, match="MP limit"):
        read_image(path, max_pixels=1000)
    with pytest.raises(InputError, match="MP limit"):
        read_mask(path, (50, 40), max_pixels=1000)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_is_an_error(tmp_path, suffix):
    path = save(tmp_path / f"t{suffix}", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot be decoded|cannot be read"):
        read_image(path)


def test_missing_and_folder_are_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="not a file"):
        read_mask(tmp_path, (1, 1))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), header=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00"]))
def test_garbage_files_give_input_errors_only(tmp_path, data, header):
    path = tmp_path / "garbage.png"
    path.write_bytes(header + data)
    with pytest.raises(InputError) as info:
        read_image(path)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError):
        read_mask(path, (4, 4))


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.png"

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OutputError, match="No space left"):
        atomic_write(target, b"data")
    assert list(tmp_path.iterdir()) == [], "no partial file and no temporary file"


def test_atomic_write_replaces_and_sets_normal_permissions(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


def test_write_into_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write(tmp_path / "missing" / "x.png", b"x")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "tiff", "bmp"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_encode_every_format_and_layout(fmt, channels):
    shape = (6, 5) if channels == 1 else (6, 5, channels)
    a = RNG.integers(0, 256, shape, dtype=np.uint8)
    data = encode_image(a, fmt, like=LoadedImage(pixels=a, format=fmt))
    with Image.open(io.BytesIO(data)) as back:
        assert back.size == (5, 6)
        if fmt in ("png", "tiff", "bmp") and channels in (1, 3):
            assert np.array_equal(np.asarray(back), a), "lossless formats keep pixels"


def test_unsupported_format_is_an_output_error():
    with pytest.raises(OutputError, match="not supported"):
        pio.output_format(LoadedImage(pixels=np.zeros((1, 1), np.uint8)), None, "gif")
