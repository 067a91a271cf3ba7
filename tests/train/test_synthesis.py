"""Pair synthesis (eradiff.train.synthesis) and the torch wrapper (eradiff.train.data)."""

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from eradiff.train.data import PairDataset, pair_to_tensors
from eradiff.train.sources import CutoutSource
from eradiff.train.synthesis import (
    DegenerateObjectError,
    SynthesisConfig,
    composite,
    sample_frame,
    synthesize_pair,
    transform_object,
)

REASONS = {"empty alpha", "empty after transform", "object too small", "no free placement", "frame too small"}


def _noise(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _object(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An RGBA blob with an opaque core, soft edge and transparent corners."""
    obj = _noise(rng, h, w, 4)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - (h - 1) / 2) / max(h / 2, 1), (xx - (w - 1) / 2) / max(w / 2, 1))
    obj[..., 3] = np.clip((1.2 - r) * 400, 0, 255).astype(np.uint8)
    return obj


def _disk(d: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))


configs = st.builds(
    SynthesisConfig,
    crop_size=st.sampled_from([None, 16, 24]),
    short_side_range=st.tuples(st.integers(8, 24), st.integers(24, 48)),
    scale_range=st.tuples(st.floats(0.2, 0.5), st.floats(0.5, 1.0)),
    rotation_deg=st.sampled_from([0.0, 30.0, 180.0]),
    flip_prob=st.sampled_from([0.0, 0.5, 1.0]),
    color_jitter=st.sampled_from([0.0, 0.3]),
    mask_dilation=st.integers(0, 2),
    alpha_threshold=st.sampled_from([0, 40]),
    min_object_area=st.just(1),
    avoid_object=st.booleans(),
)


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    bg_hw=st.tuples(st.integers(12, 40), st.integers(12, 40)),
    obj_hw=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    config=configs,
    with_bg_mask=st.booleans(),
)
def test_pair_invariants(seed, bg_hw, obj_hw, config, with_bg_mask):
    rng = np.random.default_rng(seed)
    background = _noise(rng, *bg_hw, 3)
    obj = _object(rng, *obj_hw)
    bg_mask = None
    if with_bg_mask:
        bg_mask = np.zeros(bg_hw, bool)
        bg_mask[: bg_hw[0] // 3, : bg_hw[1] // 3] = True
    try:
        pair = synthesize_pair(
            background, obj, rng=np.random.default_rng([seed, 1]), config=config, background_mask=bg_mask
        )
    except DegenerateObjectError as e:
        assert e.reason in REASONS
        return
    x_ori, x_obj, mask, paste = pair.x_ori, pair.x_obj, pair.mask, pair.obj_rgba
    assert x_ori.dtype == x_obj.dtype == np.uint8 and mask.dtype == bool
    assert x_ori.shape == x_obj.shape and mask.shape == x_ori.shape[:2]
    if config.crop_size is None:
        np.testing.assert_array_equal(x_ori, background)
    else:
        assert x_ori.shape == (config.crop_size, config.crop_size, 3)
    # outside the mask nothing changed, bit for bit; every changed pixel is in the mask
    np.testing.assert_array_equal(x_obj[~mask], x_ori[~mask])
    assert mask[(x_obj != x_ori).any(axis=-1)].all()
    # the mask is exactly the pasted alpha > 0, dilated
    top, left = pair.offset
    h, w = paste.shape[:2]
    placed = np.zeros(mask.shape, np.uint8)
    placed[top : top + h, left : left + w] = paste[..., 3] > 0
    expected = cv2.dilate(placed, _disk(config.mask_dilation)) if config.mask_dilation else placed
    np.testing.assert_array_equal(mask, expected.astype(bool))
    # α = 255 pixels are the transformed object; α = 0 pixels keep x_ori; no α ≤ threshold survives
    region_obj, region_ori = x_obj[top : top + h, left : left + w], x_ori[top : top + h, left : left + w]
    alpha = paste[..., 3]
    np.testing.assert_array_equal(region_obj[alpha == 255], paste[..., :3][alpha == 255])
    np.testing.assert_array_equal(region_obj[alpha == 0], region_ori[alpha == 0])
    assert not ((alpha > 0) & (alpha <= config.alpha_threshold)).any()
    assert (alpha > 0).sum() >= config.min_object_area
    # the paste keeps off the background's own object (with the dilation)
    if bg_mask is not None and config.avoid_object:
        # the frame is synthesize_pair's first draw, so the same generator gives the same frame
        frame_rng = np.random.default_rng([seed, 1])
        _, avoid = sample_frame(background, rng=frame_rng, config=config, background_mask=bg_mask)
        assert not (mask & avoid).any()


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    hw=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    alpha=st.integers(0, 255),
    x=st.integers(0, 4),
    y=st.integers(0, 4),
)
def test_composite_matches_float_blend(seed, hw, alpha, x, y):
    rng = np.random.default_rng(seed)
    frame = _noise(rng, 16, 16, 3)
    obj = _noise(rng, *hw, 4)
    obj[..., 3] = alpha
    x_obj, mask = composite(frame, obj, (y, x))
    a = alpha / 255
    ref = a * obj[..., :3] + (1 - a) * frame[y : y + hw[0], x : x + hw[1]]
    assert np.abs(x_obj[y : y + hw[0], x : x + hw[1]].astype(float) - ref).max() <= 0.5
    assert mask.sum() == (hw[0] * hw[1] if alpha > 0 else 0)
    np.testing.assert_array_equal(x_obj[~mask], frame[~mask])


def test_composite_rejects_an_object_outside_the_frame():
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        composite(frame, np.zeros((4, 4, 4), np.uint8), (6, 0))


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), hw=st.tuples(st.integers(1, 16), st.integers(1, 16)))
def test_identity_transform_returns_the_trimmed_object(seed, hw):
    rng = np.random.default_rng(seed)
    obj = _object(rng, *hw)
    out = transform_object(obj, scale=1.0)
    keep = obj[..., 3] > 0
    if not keep.any():
        assert out.shape == (0, 0, 4)
        return
    rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
    trimmed = obj[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
    trimmed[trimmed[..., 3] == 0] = 0
    np.testing.assert_array_equal(out, trimmed)
    np.testing.assert_array_equal(transform_object(obj, scale=1.0, flip=True), out[:, ::-1])


def test_transform_scales_and_rotates_the_alpha_box():
    obj = np.full((10, 20, 4), 255, np.uint8)
    assert transform_object(obj, scale=2.0).shape == (20, 40, 4)
    assert transform_object(obj, scale=0.5).shape == (5, 10, 4)
    rotated = transform_object(obj, scale=1.0, angle_deg=90.0)
    assert abs(rotated.shape[0] - 20) <= 2 and abs(rotated.shape[1] - 10) <= 2
    with pytest.raises(ValueError, match="scale must be > 0"):
        transform_object(obj, scale=0.0)


def test_premultiplied_resampling_keeps_colour_at_soft_edges():
    obj = np.zeros((16, 16, 4), np.uint8)
    obj[4:12, 4:12] = (200, 100, 50, 255)
    out = transform_object(obj, scale=0.7, angle_deg=33.0)
    soft = out[..., 3] > 0
    # no dark fringe: every visible pixel keeps (about) the object's colour
    assert np.abs(out[soft][:, :3].astype(int) - (200, 100, 50)).max() <= 2


def _setup():
    rng = np.random.default_rng(123)
    return _noise(rng, 64, 80, 3), _object(rng, 20, 14)


def test_same_seed_same_pair_different_seeds_differ():
    background, obj = _setup()
    config = SynthesisConfig(crop_size=32, short_side_range=(32, 64), mask_dilation=1, min_object_area=1)
    a = synthesize_pair(background, obj, rng=np.random.default_rng(7), config=config)
    b = synthesize_pair(background, obj, rng=np.random.default_rng(7), config=config)
    for name in ("x_ori", "x_obj", "mask", "obj_rgba"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.offset == b.offset
    for s in range(8, 28):
        c = synthesize_pair(background, obj, rng=np.random.default_rng(s), config=config)
        assert not (np.array_equal(c.x_obj, a.x_obj) and np.array_equal(c.mask, a.mask))


def test_degenerate_objects_raise_a_countable_reason():
    background, obj = _setup()
    rng = np.random.default_rng(0)
    empty = obj.copy()
    empty[..., 3] = 0
    with pytest.raises(DegenerateObjectError) as e:
        synthesize_pair(background, empty, rng=rng, config=SynthesisConfig())
    assert e.value.reason == "empty alpha"
    faint = obj.copy()
    faint[..., 3] = np.minimum(faint[..., 3], 30)
    with pytest.raises(DegenerateObjectError) as e:
        synthesize_pair(background, faint, rng=rng, config=SynthesisConfig(alpha_threshold=60))
    assert e.value.reason == "empty after transform"
    with pytest.raises(DegenerateObjectError) as e:
        synthesize_pair(background, obj, rng=rng, config=SynthesisConfig(crop_size=32, min_object_area=32 * 32))
    assert e.value.reason == "object too small"
    everywhere = np.ones(background.shape[:2], bool)
    with pytest.raises(DegenerateObjectError) as e:
        synthesize_pair(background, obj, rng=rng, config=SynthesisConfig(crop_size=32), background_mask=everywhere)
    assert e.value.reason == "no free placement"
    with pytest.raises(DegenerateObjectError) as e:
        synthesize_pair(background, obj[:0], rng=rng, config=SynthesisConfig())
    assert e.value.reason == "zero-size image"


def test_shape_and_type_errors_name_the_argument():
    background, obj = _setup()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="obj_rgba must be a uint8 array of shape"):
        synthesize_pair(background, obj[..., :3], rng=rng, config=SynthesisConfig())
    with pytest.raises(ValueError, match="background must be a uint8"):
        synthesize_pair(background.astype(np.float32), obj, rng=rng, config=SynthesisConfig())
    with pytest.raises(ValueError, match="background_mask must have shape"):
        synthesize_pair(background, obj, rng=rng, config=SynthesisConfig(), background_mask=np.ones((3, 3), bool))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale_range": (0.0, 0.5)}, "scale_range"),
        ({"scale_range": (0.6, 0.5)}, "scale_range"),
        ({"crop_size": 4}, "crop_size"),
        ({"short_side_range": (64, 32)}, "short_side_range"),
        ({"rotation_deg": 200.0}, "rotation_deg"),
        ({"flip_prob": 1.5}, "flip_prob"),
        ({"color_jitter": -0.1}, "color_jitter"),
        ({"mask_dilation": -1}, "mask_dilation"),
        ({"alpha_threshold": 255}, "alpha_threshold"),
        ({"min_object_area": 0}, "min_object_area"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthesisConfig(**kwargs)


def test_crop_without_resampling_is_an_exact_window():
    rng = np.random.default_rng(1)
    background = _noise(rng, 30, 50, 3)
    config = SynthesisConfig(crop_size=30, short_side_range=(30, 30))
    frame, _ = sample_frame(background, rng=np.random.default_rng(5), config=config)
    hits = [x for x in range(21) if np.array_equal(background[:, x : x + 30], frame)]
    assert len(hits) == 1


def test_frame_mask_is_conservative():
    background = np.zeros((100, 100, 3), np.uint8)
    bg_mask = np.zeros((100, 100), bool)
    bg_mask[50, 50] = True  # one pixel must survive a 4× downscale
    config = SynthesisConfig(crop_size=25, short_side_range=(25, 25))
    _, m = sample_frame(background, rng=np.random.default_rng(0), config=config, background_mask=bg_mask)
    assert m.shape == (25, 25) and m.sum() >= 1


# ----------------------------------------------------------------------------- PairDataset


def _cutout_folders(tmp_path, *, bad: bool = False):
    rng = np.random.default_rng(0)
    (tmp_path / "obj").mkdir(parents=True)
    (tmp_path / "bg").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_object(rng, 24 + 4 * i, 20)).save(tmp_path / "obj" / f"o{i}.png")
        Image.fromarray(_noise(rng, 48, 64, 3)).save(tmp_path / "bg" / f"b{i}.jpg")
    if bad:
        Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(tmp_path / "obj" / "empty.png")
        (tmp_path / "obj" / "broken.png").write_bytes(b"not a png")
    return CutoutSource.from_folders(tmp_path / "obj", tmp_path / "bg")


def test_pair_dataset_tensors_and_determinism(tmp_path):
    source = _cutout_folders(tmp_path)
    config = SynthesisConfig(crop_size=32, short_side_range=(32, 48))
    ds = PairDataset(source, config, seed=3, length=10)
    item = ds[4]
    assert set(item) == {"x_ori", "x_obj", "mask"}
    assert item["x_ori"].shape == item["x_obj"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert item["x_ori"].dtype == torch.float32 and item["mask"].dtype == torch.float32
    assert item["x_obj"].min() >= -1 and item["x_obj"].max() <= 1
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    # sample i of epoch e depends on (seed, e, i) only: not on order or on another instance
    other = PairDataset(_cutout_folders(tmp_path / "again"), config, seed=3, length=10)
    _ = [other[i] for i in (9, 1, 7)]
    for k in item:
        torch.testing.assert_close(other[4][k], item[k], rtol=0, atol=0)
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["x_obj"], item["x_obj"])
    ds.set_epoch(0)
    torch.testing.assert_close(ds[4]["x_obj"], item["x_obj"], rtol=0, atol=0)
    with pytest.raises(IndexError):
        ds[10]


def test_pair_to_tensors_scaling():
    rng = np.random.default_rng(0)
    background, obj = _setup()
    pair = synthesize_pair(
        background, obj, rng=rng, config=SynthesisConfig(crop_size=16, short_side_range=(16, 16), min_object_area=1)
    )
    t = pair_to_tensors(pair)
    np.testing.assert_allclose(((t["x_ori"] + 1) * 127.5).round().numpy().transpose(1, 2, 0), pair.x_ori)
    np.testing.assert_array_equal(t["mask"][0].numpy().astype(bool), pair.mask)


def test_pair_dataset_counts_and_skips_bad_objects(tmp_path):
    source = _cutout_folders(tmp_path, bad=True)
    ds = PairDataset(source, SynthesisConfig(crop_size=32, short_side_range=(32, 48)), seed=0, length=40)
    for i in range(len(ds)):
        ds[i]
    assert source.rejected == {"empty alpha": 1, "unreadable image": 1}  # each bad file once
    assert ds.rejected["empty alpha"] >= 1 and ds.rejected["unreadable image"] >= 1  # every failed draw


def test_pair_dataset_gives_up_with_a_clear_error(tmp_path):
    (tmp_path / "obj").mkdir()
    (tmp_path / "bg").mkdir()
    Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(tmp_path / "obj" / "empty.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "bg" / "b.png")
    source = CutoutSource.from_folders(tmp_path / "obj", tmp_path / "bg")
    ds = PairDataset(source, SynthesisConfig(crop_size=16), seed=0, length=2, max_tries=3)
    with pytest.raises(RuntimeError, match="no valid pair for sample 0 of epoch 0 after 3 draws"):
        ds[0]
    with pytest.raises(ValueError, match="crop_size"):
        PairDataset(source, SynthesisConfig(crop_size=None), seed=0, length=2)


@pytest.mark.parametrize("method", ["telea", "patchmatch"])
def test_pair_dataset_fill_is_the_models_fill_of_x_obj(tmp_path, method):
    """Items carry the classical fill computed in the data workers; it equals the model's own fill."""
    from eradiff.models.family import classical_fill

    source = _cutout_folders(tmp_path)
    config = SynthesisConfig(crop_size=32, short_side_range=(32, 48))
    item = PairDataset(source, config, seed=3, length=4, fill=method)[2]
    M = item["mask"][0] > 0.5
    assert M.any()
    want = classical_fill(item["x_obj"][None], M[None], method=method)[0]
    torch.testing.assert_close(item["fill"], want, rtol=0, atol=1e-6)
    assert torch.equal(item["fill"][:, ~M], item["x_obj"][:, ~M])
