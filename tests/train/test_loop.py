"""The training loop on CPU with a tiny pixel model (and a tiny SD2-inpainting model) on toy data.

Covers: each objective lowers its loss; resume repeats an uninterrupted run exactly (also after a
SIGKILL of a real ``eradiff train`` process); the result does not depend on gradient accumulation
or DataLoader workers; gradient checkpointing keeps the SRA mask through backward; atomic, pruned
checkpoints; the NaN guard; data errors; exported weights load with ``eradiff.models.loading``;
the latent family trains with VAE and text encoder frozen; unreadable files are skipped and
counted.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from torch.utils.data import Dataset

import eradiff.core as core
from eradiff.models.loading import load_model
from eradiff.train.build import DataError, build_datasets, build_model, build_objective, to_device_batch
from eradiff.train.checkpoint import CheckpointError, find_checkpoints
from eradiff.train.config import ConfigError, load_config
from eradiff.train.loop import NonFiniteLossError, train

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny-test.yaml"
QUIET = ["log.progress=false", "log.sample_every=0", "log.tensorboard=false"]


def tiny(run_dir: Path, *overrides: str):
    return load_config(TINY, [*QUIET, f"output_dir={run_dir}", *overrides])


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


# ----------------------------------------------------------------------------- objectives


@pytest.mark.parametrize("kind", ["cro", "cro-const", "standard"])
def test_each_objective_decreases_its_loss(tmp_path, kind):
    """Mean of the last 10 of 40 steps is clearly below the mean of the first 10.

    CRO is trained with ``weighting: output`` here: the literal Eq. 9 weights a sample by b², which
    spans orders of magnitude over t and γ, so 10-step window means are too noisy to compare (the
    next test checks the literal Eq. 9 on fixed draws instead).
    """
    extra = [] if kind == "standard" else ["objective.weighting=output"]
    cfg = tiny(tmp_path, f"objective.kind={kind}", *extra, "optim.schedule=constant", "checkpoint.every=0")
    res = train(cfg)
    losses = np.array(res.losses)
    assert len(losses) == 40 and np.isfinite(losses).all()
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert last < 0.9 * first, (kind, first, last)


def _fixed_draw_loss(cfg, weights: Path | None) -> float:
    torch.manual_seed(0)
    model = build_model(cfg.model, crop_size=cfg.data.crop_size)
    if weights is not None:
        model.unet.load_state_dict(_state(weights))
    model.unet.eval()
    objective = build_objective(cfg.objective, model.schedule)
    train_set, _ = build_datasets(cfg)
    items = [train_set[i] for i in range(48)]
    x_ori, x_obj, M = to_device_batch({k: torch.stack([it[k] for it in items]) for k in items[0]}, torch.device("cpu"))
    with torch.no_grad():
        cond = model.condition(x_obj, M)
        z_ori, z_obj = model.encode(x_ori), model.encode(x_obj)
        draw = core.draw_timesteps_and_noise(z_ori.shape, generator=torch.Generator().manual_seed(123))
        return float(objective(lambda z, t: model.model_output(z, t, cond), z_ori, z_obj, draw).mean())


@pytest.mark.parametrize("kind", ["cro", "cro-const"])
def test_literal_eq9_loss_decreases_on_fixed_draws(tmp_path, kind):
    cfg = tiny(tmp_path, f"objective.kind={kind}", "train.ema_decay=null", "optim.schedule=constant")
    res = train(cfg)
    before = _fixed_draw_loss(cfg, None)
    after = _fixed_draw_loss(cfg, res.checkpoints[-1] / "unet.safetensors")
    assert after < 0.9 * before, (before, after)


# ----------------------------------------------------------------------------- resume, layout


RESUME = [
    "train.max_steps=10",
    "checkpoint.every=4",
    "checkpoint.keep_last=5",
    "data.size=16",  # 2 steps per epoch: the run crosses epochs, and resumes mid-way
    "train.grad_accum=2",
    "optim.warmup_steps=3",
    "optim.schedule=cosine",
    "log.every=1",
    "log.sample_every=5",
    "log.sample_steps=3",
]


def test_resume_repeats_the_uninterrupted_run(tmp_path):
    a = train(tiny(tmp_path / "a", *RESUME))
    # the process state at step 4, as a fresh run folder: a new process continues from it
    shutil.copytree(tmp_path / "a" / "ckpt-00000004", tmp_path / "b" / "ckpt-00000004")
    b = train(tiny(tmp_path / "b", *RESUME), resume="latest")
    assert len(a.losses) == 10 and len(b.losses) == 6
    assert b.losses == a.losses[4:]
    for name in ("unet.safetensors", "ema.safetensors"):
        _assert_same(_state(tmp_path / "a" / "ckpt-00000010" / name), _state(tmp_path / "b" / "ckpt-00000010" / name))
    opt_a = torch.load(tmp_path / "a" / "ckpt-00000010" / "optimizer.pt", weights_only=True)
    opt_b = torch.load(tmp_path / "b" / "ckpt-00000010" / "optimizer.pt", weights_only=True)
    for k in opt_a["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a["state"][k][name], opt_b["state"][k][name])
    state_a = json.loads((tmp_path / "a" / "ckpt-00000010" / "state.json").read_text())
    state_b = json.loads((tmp_path / "b" / "ckpt-00000010" / "state.json").read_text())
    for key in ("epoch", "index", "optimizer_steps", "ema_updates", "lr_scheduler"):
        assert state_a[key] == state_b[key], key
    assert state_a["epoch"] == 5 and state_a["index"] == 0
    rows_a = [json.loads(r) for r in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(r) for r in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows_a[4:]] == [r["loss"] for r in rows_b]
    for name in ("step-00000005.png", "step-00000010.png"):
        assert (tmp_path / "a" / "samples" / name).read_bytes() == (tmp_path / "b" / "samples" / name).read_bytes()
    _assert_same(_state(tmp_path / "a" / "model.safetensors"), _state(tmp_path / "b" / "model.safetensors"))


def test_stop_at_ends_early_on_the_full_schedule_and_resumes_exactly(tmp_path):
    """train.stop_at halts at a step of the full run (same lr schedule), so a stopped run is the
    uninterrupted run's prefix and resuming it without stop_at finishes the same run."""
    a = train(tiny(tmp_path / "a", *RESUME))
    s = train(tiny(tmp_path / "s", *RESUME, "train.stop_at=6"))
    assert s.step == 6 and s.losses == a.losses[:6]
    assert (tmp_path / "s" / "ckpt-00000006").is_dir() and (tmp_path / "s" / "model.safetensors").is_file()
    rows = [json.loads(r) for r in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6
    b = train(tiny(tmp_path / "s", *RESUME), resume="latest")
    assert b.losses == a.losses[6:]
    _assert_same(_state(tmp_path / "a" / "model.safetensors"), _state(tmp_path / "s" / "model.safetensors"))
    with pytest.raises(ConfigError, match="train.stop_at must be"):
        tiny(tmp_path / "bad", *RESUME, "train.stop_at=11")


def test_resume_latest_without_checkpoint_starts_fresh_and_bad_paths_fail(tmp_path):
    res = train(tiny(tmp_path / "r", "train.max_steps=2", "checkpoint.every=0"), resume="latest")
    assert res.step == 2
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        train(tiny(tmp_path / "r2", "train.max_steps=2"), resume=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="already holds checkpoints .newest: ckpt-00000002.; pass --resume latest"):
        train(tiny(tmp_path / "r", "train.max_steps=2"))  # a fresh start would mix two runs' checkpoints
    # a run that already reached max_steps does nothing more and keeps its checkpoint
    again = train(tiny(tmp_path / "r", "train.max_steps=2", "checkpoint.every=0"), resume="latest")
    assert again.step == 2 and again.losses == []


def test_grad_accum_and_workers_do_not_change_the_result(tmp_path):
    over = ["train.max_steps=3", "checkpoint.every=0", "data.size=24"]
    train(tiny(tmp_path / "a", *over))
    train(tiny(tmp_path / "b", *over, "train.grad_accum=4", "data.num_workers=2"))
    _assert_same(
        _state(tmp_path / "a" / "ckpt-00000003" / "unet.safetensors"),
        _state(tmp_path / "b" / "ckpt-00000003" / "unet.safetensors"),
        atol=1e-5,
    )


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_atomic_and_pruned(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "ckpt-00000099.tmp").mkdir()  # left by a crash: removed, never resumed from
    (run / "ckpt-00000099.tmp" / "unet.safetensors").write_bytes(b"partial")
    res = train(tiny(run, "train.max_steps=7", "checkpoint.every=2", "checkpoint.keep_last=2"))
    assert [s for s, _ in find_checkpoints(run)] == [6, 7]
    assert not list(run.glob("*.tmp")) and not list(run.glob("*.old"))
    assert [p.name for p in res.checkpoints] == [f"ckpt-{s:08d}" for s in (2, 4, 6, 7)]
    ck = run / "ckpt-00000007"
    assert sorted(p.name for p in ck.iterdir()) == [
        "config.yaml",
        "ema.safetensors",
        "optimizer.pt",
        "rng.safetensors",
        "state.json",
        "unet.safetensors",
    ]
    state = json.loads((ck / "state.json").read_text())
    assert state["step"] == 7 and state["samples_seen"] == 56 and state["world_size"] == 1
    torch.load(ck / "optimizer.pt", weights_only=True)  # no pickle beyond tensors and plain data
    assert (run / "config.yaml").is_file() and json.loads((run / "run.json").read_text())["processes"] == 1


def test_exported_weights_load_as_the_ema_model(tmp_path):
    res = train(tiny(tmp_path, "train.max_steps=3", "checkpoint.every=0"))
    model = load_model(res.export_path)
    assert model.family == "pixel"
    ema = _state(tmp_path / "ckpt-00000003" / "ema.safetensors")
    for k, v in model.unet.named_parameters():
        assert torch.equal(v, ema[k].half().float()), k
    with safe_open(str(res.export_path), framework="pt") as f:
        meta = json.loads(f.metadata()["eradiff_config"])
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    assert meta["family"] == "pixel" and meta["factor"] == 2 and meta["native_size"] == 32


def test_sample_grid_is_written(tmp_path):
    train(tiny(tmp_path, "train.max_steps=2", "checkpoint.every=0", "log.sample_every=2", "log.sample_steps=2"))
    img = Image.open(tmp_path / "samples" / "step-00000002.png")
    assert img.size == (4 * (32 + 2) + 2, 4 * (32 + 2) + 2)  # 4 columns (x_obj, M, erased, x_ori) × 4 rows


# ----------------------------------------------------------------------------- guards and errors


class Poisoned(Dataset):
    """A data set whose listed indices come back with NaN pixels."""

    def __init__(self, base, bad: set[int]) -> None:
        self.base, self.bad = base, bad

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        item = self.base[i]
        if i in self.bad:
            item["x_ori"] = torch.full_like(item["x_ori"], float("nan"))
        return item


def test_nan_guard_skips_bad_steps(tmp_path):
    cfg = tiny(tmp_path, "train.max_steps=6", "data.size=16", "checkpoint.every=0")
    base, _ = build_datasets(cfg)
    res = train(cfg, dataset=Poisoned(base, {0}))  # index 0 falls in exactly one step of each epoch
    assert res.nonfinite_steps == 3
    assert sum(np.isnan(res.losses)) == 3
    state = json.loads((tmp_path / "ckpt-00000006" / "state.json").read_text())
    assert state["optimizer_steps"] == 3
    assert all(torch.isfinite(v).all() for v in _state(tmp_path / "ckpt-00000006" / "unet.safetensors").values())
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["nonfinite_total"] == 3


def test_nan_guard_stops_after_too_many(tmp_path):
    cfg = tiny(tmp_path, "train.max_steps=20", "data.size=16", "train.max_nonfinite_steps=3")
    base, _ = build_datasets(cfg)
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps had a non-finite loss or gradient"):
        train(cfg, dataset=Poisoned(base, set(range(16))))


def test_data_errors(tmp_path):
    cfg = tiny(tmp_path, "train.max_steps=1")
    base, _ = build_datasets(cfg)
    with pytest.raises(DataError, match="the training set is empty"):
        train(cfg, dataset=torch.utils.data.Subset(base, []))
    with pytest.raises(DataError, match="the training set has 4 pairs, fewer than one global batch"):
        train(cfg, dataset=torch.utils.data.Subset(base, range(4)))
    missing = tiny(tmp_path, "data.source=cutouts", "data.objects=/nonexistent", "data.backgrounds=.")
    with pytest.raises(DataError, match="data.objects='/nonexistent': no such file or folder"):
        train(missing)
    with pytest.raises(ConfigError, match=r"train.batch_size=8 must be a multiple of train.grad_accum=3"):
        tiny(tmp_path, "train.grad_accum=3")


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    objects, backgrounds = tmp_path / "objects", tmp_path / "backgrounds"
    objects.mkdir(), backgrounds.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)).save(backgrounds / f"bg{i}.jpg")
        rgba = np.zeros((20, 20, 4), np.uint8)
        rgba[4:16, 4:16] = (200, 30 * i, 40, 255)
        Image.fromarray(rgba).save(objects / f"obj{i}.png")
    (objects / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    cfg = load_config(
        TINY,
        [*QUIET, f"output_dir={tmp_path / 'run'}", "data.source=cutouts", f"data.objects={objects}",
         f"data.backgrounds={backgrounds}", "data.size=16", "train.max_steps=4", "checkpoint.every=0"],
    )  # fmt: skip
    res = train(cfg)
    assert res.step == 4 and np.isfinite(res.losses).all()
    assert res.data_rejected.get("unreadable image", 0) >= 1


# ----------------------------------------------------------------------------- latent family


@pytest.fixture(scope="module")
def tiny_sd2(tmp_path_factory):
    from eradiff.testing import tiny_sd2_inpaint_folder

    return tiny_sd2_inpaint_folder(tmp_path_factory.mktemp("sd2") / "tiny-sd2", sample_size=16)


def _latent_cfg(run_dir: Path, base: Path, *extra: str):
    return load_config(
        TINY,
        [*QUIET, f"output_dir={run_dir}", "model={family: latent, base_model: " + str(base) + "}",
         "optim.lr=1e-3", "train.max_steps=2", "train.batch_size=4", "checkpoint.every=0", *extra],
    )  # fmt: skip


@pytest.mark.slow
def test_latent_family_trains_with_frozen_vae_and_text_encoder(tmp_path, tiny_sd2):
    res = train(_latent_cfg(tmp_path, tiny_sd2, "objective.mask_weight=4", "log.sample_every=2", "log.sample_steps=2"))
    assert res.step == 2 and np.isfinite(res.losses).all()
    assert (tmp_path / "samples" / "step-00000002.png").is_file()
    base = load_model(str(tiny_sd2))
    trained = load_model(str(res.export_path))
    assert trained.family == "latent"
    _assert_same(dict(base.vae.state_dict()), dict(trained.vae.state_dict()))
    changed = [k for k, v in trained.unet.state_dict().items() if not torch.equal(v, base.unet.state_dict()[k])]
    assert changed, "the UNet did not change"
    with safe_open(str(res.export_path), framework="pt") as f:
        meta = json.loads(f.metadata()["eradiff_config"])
    assert meta["family"] == "latent" and meta["base_model"] == str(tiny_sd2)


@pytest.mark.slow
def test_gradient_checkpointing_keeps_the_sra_mask_through_backward(tmp_path, tiny_sd2):
    """Checkpointed transformer blocks recompute self-attention in backward: with the SRA mask
    cleared before backward the gradients (and so the weights after one step) would differ."""
    over = ["train.max_steps=1", "train.ema_decay=null", "optim.grad_clip=null"]
    train(_latent_cfg(tmp_path / "plain", tiny_sd2, *over))
    train(_latent_cfg(tmp_path / "ckpt", tiny_sd2, *over, "train.gradient_checkpointing=true"))
    _assert_same(
        _state(tmp_path / "plain" / "ckpt-00000001" / "unet.safetensors"),
        _state(tmp_path / "ckpt" / "ckpt-00000001" / "unet.safetensors"),
        atol=1e-6,
    )


def test_bf16_mixed_precision_runs(tmp_path):
    res = train(tiny(tmp_path, "train.max_steps=2", "train.mixed_precision=bf16", "checkpoint.every=0"))
    assert np.isfinite(res.losses).all()
    assert all(v.dtype == torch.float32 for v in _state(tmp_path / "ckpt-00000002" / "unet.safetensors").values())


def test_fp16_on_cpu_is_refused(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="train.mixed_precision=fp16 needs a GPU"):
        train(tiny(tmp_path, "train.mixed_precision=fp16"))


def test_model_init_starts_from_an_exported_file(tmp_path):
    first = train(tiny(tmp_path / "a", "train.max_steps=2", "checkpoint.every=0"))
    cfg = tiny(tmp_path / "b", f"model.init={first.export_path}")
    model = build_model(cfg.model, crop_size=cfg.data.crop_size)
    exported = _state(first.export_path)
    for k, v in model.unet.state_dict().items():
        assert torch.equal(v, exported[k].float()), k
    other = tiny(tmp_path / "c", f"model.init={first.export_path}", "model.unet.block_out_channels=[16, 16]")
    with pytest.raises(ConfigError, match="does not fit model.unet"):
        build_model(other.model, crop_size=other.data.crop_size)


def test_model_init_grow_adds_attention_blocks_that_start_as_the_identity(tmp_path):
    """Growing DownBlock2D → AttnDownBlock2D (and its up block) from a trained file: the old
    weights load, the new blocks are fresh but for a zero output projection, and the grown UNet
    computes the file's function (the same output to float rounding on random input, SRA on)."""
    from eradiff.models.sra import install_sra

    first = train(tiny(tmp_path / "a", "train.max_steps=2", "checkpoint.every=0"))
    grow = ["model.unet.down_block_types=[AttnDownBlock2D, AttnDownBlock2D]",
            "model.unet.up_block_types=[AttnUpBlock2D, AttnUpBlock2D]"]  # fmt: skip
    plain = build_model(tiny(tmp_path / "b", f"model.init={first.export_path}").model, crop_size=32)
    with pytest.raises(ConfigError, match="does not fit model.unet"):
        build_model(tiny(tmp_path / "c", f"model.init={first.export_path}", *grow).model, crop_size=32)
    cfg = tiny(tmp_path / "c", f"model.init={first.export_path}", "model.init_grow=true", *grow)
    grown = build_model(cfg.model, crop_size=32)
    exported = _state(first.export_path)
    new = {k: v for k, v in grown.unet.state_dict().items() if k not in exported}
    assert new and all(".attentions." in k for k in new)
    zeroed = [k for k in new if ".to_out.0." in k]
    assert zeroed and all(not new[k].any() for k in zeroed)
    assert all(new[k].any() for k in new if k.endswith("to_q.weight"))  # the rest is a fresh init
    for k, v in exported.items():
        assert torch.equal(grown.unet.state_dict()[k], v.float()), k
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 28, 16, 16, generator=g), torch.tensor([999, 10])
    M = torch.zeros(2, 16, 16, dtype=torch.bool)
    M[:, 4:10, 3:9] = True
    outs = []
    for model in (plain, grown):
        model.unet.eval()
        state = install_sra(model.unet)
        with torch.no_grad(), state.use(M, enabled=True):
            outs.append(model.unet(x, t).sample)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)  # float rounding: other kernel layouts
    assert outs[0].abs().max() > 1e-3  # a trained output, not the zero init of a residual head
    with pytest.raises(ConfigError, match="model.init_grow needs model.init"):
        build_model(tiny(tmp_path / "d", "model.init_grow=true").model, crop_size=32)
    shrink = tiny(tmp_path / "e", f"model.init={first.export_path}", "model.init_grow=true",
                  "model.unet.block_out_channels=[16, 16]")  # fmt: skip
    with pytest.raises(ConfigError, match="does not fit model.unet"):
        build_model(shrink.model, crop_size=32)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL a real `eradiff train` process once it has checkpointed (possibly mid-save), resume
    it in a new process, and compare with an uninterrupted in-process run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    over = ["train.max_steps=12", "checkpoint.every=2", "checkpoint.keep_last=3", "log.every=1", "data.size=32"]
    run = tmp_path / "killed"
    sets = [a for o in [*QUIET, *over] for a in ("--set", o)]
    cmd = [sys.executable, "-m", "eradiff.cli", "train", "--config", str(TINY), "--output", str(run), *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (run / "ckpt-00000004").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reached = max(s for s, _ in find_checkpoints(run))
    assert reached < 12, "the run finished before it was killed"
    res = subprocess.run([*cmd, "--resume", "latest"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]

    train(tiny(tmp_path / "whole", *over))
    _assert_same(
        _state(run / "ckpt-00000012" / "unet.safetensors"),
        _state(tmp_path / "whole" / "ckpt-00000012" / "unet.safetensors"),
    )
    rows = {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    whole = {
        r["step"]: r["loss"] for r in map(json.loads, (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines())
    }
    assert rows == whole


@pytest.mark.parametrize(("schedule", "warned"), [("cosine", True), ("constant", False)])
def test_resume_warns_when_max_steps_reshapes_the_lr_schedule(tmp_path, capsys, schedule, warned):
    """max_steps sets where cosine decay ends, so extending a cosine run changes its results."""
    over = ["checkpoint.every=1", f"optim.schedule={schedule}"]
    train(tiny(tmp_path / "r", "train.max_steps=2", *over))
    capsys.readouterr()
    res = train(tiny(tmp_path / "r", "train.max_steps=3", *over), resume="latest")
    assert res.step == 3
    out = capsys.readouterr()
    warnings = [line for line in (out.out + out.err).splitlines() if "keys that change the results" in line]
    if warned:
        assert len(warnings) == 1 and warnings[0].endswith(": train.max_steps"), warnings
    else:
        assert warnings == []
