"""Training config: defaults, YAML round trip, --set overrides, one-line errors; LR schedule; seeds."""

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from eradiff.train.config import (
    ConfigError,
    TrainingConfig,
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
)
from eradiff.train.loop import lr_factor, sample_seed

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny-test.yaml"


def test_defaults_follow_the_paper():
    c = config_from_dict({})
    assert c.objective.kind == "cro"  # λ_t = 1 − ᾱ_t
    assert c.objective.gamma_max == 100  # γ_m (Sec. 5.1)
    assert c.objective.weighting == "paper"
    assert c.optim.lr == 3e-6  # Adam at 3×10⁻⁶ (Sec. 5.1)
    assert c.model.sra is True  # SRA replaces self-attention
    assert c.train.mixed_precision == "no"


@pytest.mark.parametrize("path", [None, TINY])
def test_dump_round_trips(path):
    c = config_from_dict({}) if path is None else load_config(path)
    again = config_from_dict(yaml.safe_load(dump_config(c)))
    assert again == c
    assert isinstance(again, TrainingConfig)


def test_schema_expresses_a_production_pixel_run():
    """The default model's config needs: pixel UNet config, Debian cut-outs, crop, batch, lr, EMA, steps."""
    data = {
        "model": {
            "family": "pixel",
            "factor": 4,
            "unet": {
                "sample_size": 32,
                "in_channels": 112,
                "out_channels": 48,
                "block_out_channels": [64, 128, 192],
                "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
                "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
                "layers_per_block": 1,
            },
            "schedule": {"prediction_type": "v_prediction", "timestep_spacing": "trailing"},
        },
        "data": {
            "source": "debian",
            "manifest": "data/debian/manifest.json",
            "crop_size": 128,
            "size": 4096,
            "synthesis": {"scale_range": [0.15, 0.5], "mask_dilation": 2},
        },
        "optim": {"lr": 1.0e-3, "warmup_steps": 200, "schedule": "cosine"},
        "train": {"batch_size": 16, "max_steps": 20000, "ema_decay": 0.999},
    }
    c = config_from_dict(data)
    assert c.data.synthesis_config().mask_dilation == 2
    assert c.data.synthesis_config().crop_size == 128
    assert c.model.unet["block_out_channels"] == [64, 128, 192]


def test_yaml_quirks_are_accepted():
    c = config_from_dict(yaml.safe_load("train:\n  mixed_precision: no\noptim:\n  lr: 3e-6\n"))
    assert c.train.mixed_precision == "no"
    assert c.optim.lr == 3e-6


def test_overrides_parse_yaml_values():
    data = apply_overrides(
        {"train": {"batch_size": 8}},
        ["train.batch_size=4", "optim.lr=1e-4", "train.ema_decay=null", "data.synthesis.scale_range=[0.2, 0.4]"],
    )
    c = config_from_dict({**data, "data": {**data["data"], "source": "toy"}})
    assert c.train.batch_size == 4 and c.optim.lr == 1e-4 and c.train.ema_decay is None
    assert c.data.synthesis["scale_range"] == [0.2, 0.4]


@pytest.mark.parametrize(
    "override, message",
    [
        ("nokey", "--set expects key=value"),
        ("train..x=1", "empty key"),
        ("output_dir.x=1", "output_dir is not a section"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides({"output_dir": "x"}, [override])


@pytest.mark.parametrize(
    "data, message",
    [
        ({"trian": {}}, "unknown key trian (valid: model, data"),
        ({"train": {"bach_size": 3}}, "unknown key train.bach_size"),
        ({"train": 3}, "train must be a mapping"),
        ({"train": {"batch_size": 0}}, "train.batch_size must be ≥ 1, got 0"),
        ({"train": {"batch_size": "8"}}, "train.batch_size must be an integer, got '8'"),
        ({"train": {"batch_size": True}}, "train.batch_size must be an integer"),
        ({"train": {"batch_size": 6, "grad_accum": 4}}, "train.batch_size=6 must be a multiple of train.grad_accum=4"),
        ({"train": {"mixed_precision": "fp8"}}, "train.mixed_precision='fp8' is not valid; choose one of 'no'"),
        ({"train": {"ema_decay": 1.0}}, "train.ema_decay must be in [0, 1) or null"),
        ({"optim": {"lr": "fast"}}, "optim.lr must be a number, got 'fast'"),
        ({"optim": {"lr": -1}}, "optim.lr must be > 0"),
        ({"optim": {"betas": [0.9]}}, "optim.betas must be a list of 2 values"),
        ({"optim": {"schedule": "linear"}}, "optim.schedule='linear' is not valid"),
        ({"objective": {"kind": "eps"}}, "objective.kind='eps' is not valid; choose one of 'cro', 'cro-const'"),
        ({"objective": {"lam": 1.5}}, "objective.lam must be in [0, 1]"),
        ({"objective": {"gamma_max": 0}}, "objective.gamma_max must be ≥ 1"),
        ({"objective": {"mask_weight": 0}}, "objective.mask_weight must be > 0"),
        ({"model": {"family": "latent"}}, "model.base_model is required for model.family=latent"),
        ({"model": {"base_model": "x/y"}}, "model.base_model is for the latent family"),
        ({"model": {"family": "latent", "base_model": "x/y", "unet": {}}}, "model.unet is for the pixel family"),
        ({"model": {"schedule": {"beta_shedule": "linear"}}}, "unknown key model.schedule.beta_shedule"),
        ({"model": {"sra": "yes"}}, "model.sra must be true or false"),
        ({"data": {"source": "cutouts"}}, "data.objects is required for data.source=cutouts"),
        ({"data": {"source": "coco", "annotations": "a.json"}}, "data.images is required for data.source=coco"),
        ({"data": {"source": "lmdb"}}, "data.source='lmdb' is not valid"),
        ({"data": {"crop_size": 100}}, "data.crop_size=100 (and model.native_size) must be a multiple of"),
        ({"data": {"synthesis": {"rotation": 5}}}, "unknown key data.synthesis.rotation"),
        ({"data": {"synthesis": {"rotation_deg": 500}}}, "data.synthesis: rotation_deg must be in [0, 180]"),
        ({"checkpoint": {"keep_last": 0}}, "checkpoint.keep_last must be ≥ 1"),
        ({"log": {"every": 0}}, "log.every must be ≥ 1"),
    ],
)
def test_bad_config_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line \d"):
        load_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(top)


def test_load_config_applies_overrides():
    c = load_config(TINY, ["train.max_steps=3", "output_dir=/tmp/x"])
    assert c.train.max_steps == 3 and c.output_dir == "/tmp/x"


@given(
    warmup=st.integers(0, 50),
    max_steps=st.integers(1, 500),
    ratio=st.floats(0, 1),
    schedule=st.sampled_from(["constant", "cosine"]),
)
def test_lr_factor_shape(warmup, max_steps, ratio, schedule):
    values = [lr_factor(i, warmup_steps=warmup, schedule=schedule, max_steps=max_steps, min_lr_ratio=ratio)
              for i in range(max_steps + 5)]  # fmt: skip
    assert all(0 <= v <= 1 for v in values)
    for i in range(min(warmup, len(values))):
        assert math.isclose(values[i], (i + 1) / warmup)
    if warmup < max_steps:
        assert math.isclose(values[warmup], 1.0)
        if schedule == "cosine":
            assert math.isclose(values[max_steps], ratio, abs_tol=1e-12)
            tail = values[warmup : max_steps + 1]
            assert all(a >= b - 1e-12 for a, b in zip(tail, tail[1:], strict=False))
        else:
            assert all(v == 1.0 for v in values[warmup:])


@given(st.integers(0, 2**31), st.integers(0, 10**6), st.integers(0, 4096))
def test_sample_seed_is_a_deterministic_63_bit_function(seed, step, j):
    a = sample_seed(seed, step, j)
    assert a == sample_seed(seed, step, j)
    assert 0 <= a < 2**63
    assert a != sample_seed(seed, step, j + 1)
