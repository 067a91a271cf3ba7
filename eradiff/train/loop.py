"""The training loop: CRO (or the standard objective) on accelerate, one code path for both families.

Commands (see ``eradiff train --help``)::

    eradiff train --config configs/tiny-test.yaml              # one process
    eradiff train --config cfg.yaml --resume latest            # continue the newest checkpoint
    accelerate launch --multi_gpu --num_processes 2 -m eradiff.cli train --config cfg.yaml
                                                               # 2 GPUs, or 2 gloo processes on a CPU

Determinism: every random draw has an explicit seed, so results depend on the config only, not
on the number of processes or on ``train.grad_accum`` (up to float summation order), and a
resumed run repeats an uninterrupted one exactly.

| draw                                   | seeded from                          |
| -------------------------------------- | ------------------------------------ |
| model initialisation (pixel family)    | ``train.seed``                       |
| order of the pairs in epoch e          | (seed, e)                            |
| pair i of epoch e (``PairDataset``)    | (seed, e, i)                         |
| t, γ, ε of global sample j at step k   | (seed, k, j), one generator per sample |

One optimizer step k (Algorithm 1 for a batch; B = ``train.batch_size`` over P processes and
A = ``train.grad_accum`` micro-steps, micro-batch b = B / (P·A)):

1. the global batch is pairs ``perm_e[index : index + B]``; micro-step m of process r takes
   the b pairs starting at m·B/A + r·b, which are global samples j of the step;
2. without gradients: the conditioning (mask + masked x_obj, identical to masked x_ori),
   z_ori = encode(x_ori) and, for CRO, z_obj = encode(x_obj) (the VAE is frozen);
3. t, γ, ε per sample (Alg. 1 lines 2–4);
4. per-sample loss: Eq. 9 for ``cro``/``cro-const`` (x_t^mix, x_{t−γ}^mix from Eq. 6–7, the DDIM
   jump of Eq. 8), Eq. 3 on x_ori for ``standard``; optional weight inside the mask; the SRA mask
   (Eq. 10) stays set through forward and backward (gradient checkpointing recomputes with it);
5. backward of the micro-batch mean (accelerate divides by A and all-reduces over P), so the
   gradient is that of the global-batch mean; gradient clipping;
6. NaN guard: a non-finite global loss or gradient norm skips the update (counted; the run
   stops after ``train.max_nonfinite_steps`` in a row); otherwise AdamW step, LR schedule, EMA.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

import eradiff
import eradiff.core as core
from eradiff.models.loading import load_fitting_weights
from eradiff.train import checkpoint as ckpt
from eradiff.train.build import DataError, build_datasets, build_model, build_objective, to_device_batch
from eradiff.train.config import ConfigError, TrainingConfig, config_from_dict, dump_config

__all__ = ["EMA", "NonFiniteLossError", "TrainResult", "lr_factor", "micro_step", "sample_seed", "train"]

_STREAM_ORDER = 0x0E0C  # separate seed streams: data order vs. per-sample draws
_STREAM_DRAW = 0xD4A3


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: the run folder.
        step: the step reached (steps are optimizer steps, skipped ones included).
        losses: the global-batch mean loss of every step run by this call (NaN when non-finite).
        nonfinite_steps: steps skipped by the NaN guard over the whole run.
        checkpoints: checkpoint folders written by this call.
        export_path: the exported final weights, or None (not the main process).
        data_rejected: failed pair draws by reason, as counted in this process (DataLoader workers
            keep their own counts).
    """

    run_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)
    nonfinite_steps: int = 0
    checkpoints: list[Path] = field(default_factory=list)
    export_path: Path | None = None
    data_rejected: dict[str, int] = field(default_factory=dict)


def sample_seed(*words: int) -> int:
    """A 64-bit seed from integer words (NumPy ``SeedSequence``: well mixed, order-sensitive)."""
    hi, lo = np.random.SeedSequence([int(w) for w in words]).generate_state(2, dtype=np.uint32)
    return (int(hi) << 32 | int(lo)) & 0x7FFF_FFFF_FFFF_FFFF


def lr_factor(step: int, *, warmup_steps: int, schedule: str, max_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Learning-rate multiplier before optimizer step ``step`` (0-based).

    Linear warm-up ((step + 1) / warmup_steps) for the first ``warmup_steps`` steps, then
    ``constant`` (1) or ``cosine`` from 1 down to ``min_lr_ratio`` at ``max_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of parameters, kept in fp32.

    decay_n = min(decay, (1 + n) / (10 + n)) at the n-th update (diffusers' ``EMAModel`` rule),
    so early averages do not drag the random initialisation along.
    """

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: p.detach().float().clone() for k, p in module.named_parameters()}

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        d = self.current_decay()
        for k, p in module.named_parameters():
            self.shadow[k].lerp_(p.detach().float(), 1.0 - d)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, module: torch.nn.Module) -> Iterator[None]:
        """Swap the EMA weights into ``module`` for the ``with`` block, then restore the originals."""
        params = dict(module.named_parameters())
        saved = {k: p.detach().clone() for k, p in params.items()}
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(self.shadow[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(saved[k])


class _EpochPlan:
    """Which dataset indices this process reads, micro-step by micro-step, in one epoch."""

    def __init__(self, *, n: int, batch: int, accum: int, world: int, rank: int, seed: int, epoch: int, start: int):
        self.n, self.batch, self.accum, self.world, self.rank = n, batch, accum, world, rank
        self.micro = batch // (accum * world)
        self.seed, self.epoch, self.start = seed, epoch, start

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(sample_seed(self.seed, _STREAM_ORDER, self.epoch))
        perm = torch.randperm(self.n, generator=g)
        per_micro = self.batch // self.accum
        for k in range(self.start // self.batch, self.n // self.batch):
            for m in range(self.accum):
                lo = k * self.batch + m * per_micro + self.rank * self.micro
                yield perm[lo : lo + self.micro].tolist()

    def __len__(self) -> int:
        return (self.n // self.batch - self.start // self.batch) * self.accum


def micro_step(
    model,
    denoiser: torch.nn.Module,
    objective,
    x_ori: torch.Tensor,
    x_obj: torch.Tensor,
    M: torch.Tensor,
    generators: list[torch.Generator],
    *,
    encode_obj: bool,
    gamma_max: int,
    mask_weight: float,
    sra: bool,
    backward,
    t_probs: torch.Tensor | None = None,
    fill: torch.Tensor | None = None,
    x0_terms: Sequence[tuple[torch.nn.Module, float]] = (),
) -> torch.Tensor:
    """Steps 2–4 of the module docstring for one micro-batch, then ``backward(mean loss)``.

    Args:
        model: the :class:`~eradiff.models.family.ErasureModel` (conditioning, encoder, SRA state).
        denoiser: the UNet to call (the DDP-wrapped one under several processes).
        objective: ``CROObjective`` or ``StandardObjective``.
        x_ori, x_obj: (b, 3, S, S) in [−1, 1]; M: (b, S, S) bool, True = erase.
        generators: one CPU generator per sample for t, γ, ε.
        encode_obj: encode x_obj (CRO); the standard objective ignores it and skips the encode.
        gamma_max: γ_m.
        mask_weight: per-pixel loss weight inside the (latent-grid) mask.
        sra: Self-Rectifying Attention on; its mask stays set through ``backward``.
        backward: called with the mean loss (``accelerator.backward`` or ``Tensor.backward``).
        t_probs: (T,) probabilities of τ (``objective.timesteps``); None = uniform.
        fill: the precomputed hole fill of x_obj (b, 3, S, S) from the data workers, or None.
        x0_terms: ``(term, weight)`` pairs, each ``term(x0_hat, x_ori, M) -> (b,)`` added with its
            weight on the decoded x̂_0 of the objective's one model call: the
            :class:`~eradiff.train.perceptual.PerceptualTerm` (``objective.perceptual``) and
            :class:`~eradiff.train.perceptual.TextureTerm` (``objective.texture``).

    Returns:
        The per-sample losses (b,), detached.
    """
    with torch.no_grad():
        kw = {} if fill is None else {"fill": fill}
        cond = model.condition(x_obj, M, **kw)  # masked x_obj equals masked x_ori
        z_ori = model.encode(x_ori, cond).float()
        z_obj = model.encode(x_obj, cond).float() if encode_obj else z_ori
    d = core.draw_timesteps_and_noise(
        z_ori.shape,
        generator=generators,
        num_train_timesteps=model.schedule.num_train_timesteps,
        gamma_max=gamma_max,
        t_probs=t_probs,
    )
    dev = z_ori.device
    draw = core.Draw(t=d.t.to(dev), gamma=d.gamma.to(dev), s=d.s.to(dev), eps=d.eps.to(dev))
    channels = cond.channels.float()
    emb = cond.prompt_embeds
    weight = None if mask_weight == 1.0 else 1.0 + (mask_weight - 1.0) * cond.mask[:, None].float()

    calls = []

    def model_fn(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sample = torch.cat([z_t, channels], dim=1)
        kwargs = {} if emb is None else {"encoder_hidden_states": emb}
        out = denoiser(sample, t, **kwargs, return_dict=False)[0].float()
        calls.append((z_t, t, out))
        return out

    with model.sra_scope(cond.mask if sra else None, enabled=sra):
        losses = objective(model_fn, z_ori, z_obj, draw, weight=weight)
        if x0_terms:
            ((z_t, t, out),) = calls
            alpha_bar = model.schedule.alpha_bar().to(dev, torch.float32)[t]
            z0_hat, _ = core.predict_x0_eps(z_t, out, alpha_bar, prediction_type=model.schedule.prediction_type)
            x0_hat = model.decode(z0_hat, cond).float()
            for term, w in x0_terms:
                losses = losses + w * term(x0_hat, x_ori.float(), M)
        backward(losses.mean())
    return losses.detach()


def build_x0_terms(oj, device) -> list[tuple[torch.nn.Module, float]]:
    """The ``(term, weight)`` pairs on x̂_0 that ``objective.perceptual`` and ``objective.texture`` ask for."""
    from eradiff.train.perceptual import PerceptualTerm, TextureTerm

    terms: list[tuple[torch.nn.Module, float]] = []
    if oj.perceptual != "none" and oj.perceptual_weight > 0:
        terms.append((PerceptualTerm(oj.perceptual, size=oj.perceptual_size).to(device), oj.perceptual_weight))
    if oj.texture != "none" and oj.texture_weight > 0:
        terms.append((TextureTerm(size=oj.texture_size).to(device), oj.texture_weight))
    return terms


def _has_accelerator() -> bool:
    if torch.cuda.is_available():
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "eradiff": eradiff.__version__}
    for name in ("torch", "diffusers", "accelerate", "transformers", "safetensors", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            continue
    try:
        import subprocess

        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        if res.returncode == 0:
            out["git_commit"] = res.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _math_part(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that change the loss sequence (for a warning on resume).

    ``max_steps`` counts only where it shapes the learning-rate schedule (cosine decay ends there).
    """
    out = json.loads(json.dumps(config))
    out.pop("output_dir", None)
    out.pop("checkpoint", None)
    out.pop("log", None)
    out.get("data", {}).pop("num_workers", None)
    train_part = out.get("train", {})
    train_part.pop("max_nonfinite_steps", None)
    train_part.pop("stop_at", None)
    if out.get("optim", {}).get("schedule") != "cosine":
        train_part.pop("max_steps", None)
    return out


def _differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _differing_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


class _Metrics:
    """JSONL rows (and TensorBoard scalars when installed) on the main process."""

    def __init__(self, run_dir: Path, *, tensorboard: bool, truncate_after: int | None) -> None:
        self.path = run_dir / "metrics.jsonl"
        if truncate_after is not None and self.path.exists():
            rows = [line for line in self.path.read_text().splitlines() if line.strip()]
            keep = [r for r in rows if json.loads(r).get("step", 0) <= truncate_after]
            self.path.write_text("".join(r + "\n" for r in keep))
        self.file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                    self.tb.add_scalar(f"train/{k}", v, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _progress(total: int, start: int, enabled: bool):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} steps/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = progress.add_task("train", total=total, completed=start, loss="-", rate="-")
    return progress, task


def train(
    config: TrainingConfig,
    *,
    resume: str | os.PathLike[str] | None = None,
    dataset=None,
    val_dataset=None,
) -> TrainResult:
    """Train (or continue training) an erasure model as ``config`` says.

    Args:
        config: the run configuration (``output_dir`` is the run folder).
        resume: ``"latest"`` (the newest checkpoint in the run folder; a fresh start when there is
            none), a checkpoint folder, or a run folder (its newest checkpoint).
        dataset: a training data set to use instead of the one ``config.data`` describes (items:
            dicts with ``x_ori``, ``x_obj`` (3, S, S) in [−1, 1] and ``mask`` (1, S, S) in {0, 1};
            ``set_epoch(e)`` is called when it exists).
        val_dataset: the validation set for the sample grid (default: built from the config).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ConfigError: a config that does not fit the model or the processes.
        DataError: an empty data set, or fewer pairs than one global batch.
        CheckpointError: a ``resume`` that names no readable checkpoint.
        NonFiniteLossError: ``train.max_nonfinite_steps`` consecutive non-finite steps.
    """
    accelerator = _accelerator(config.train)
    run_dir = Path(config.output_dir)
    resume_dir = _start_run(config, run_dir, resume, accelerator)
    if dataset is None:
        dataset, built_val = build_datasets(config)
        val_dataset = built_val if val_dataset is None else val_dataset
    run = _Run(config, accelerator, run_dir, dataset)
    if resume_dir is not None:
        run.restore(resume_dir)
    run.start_ema()
    preview_batch = _preview_batch(config, val_dataset if val_dataset is not None else dataset, run.is_main)
    run.loop(preview_batch)
    if run.is_main:
        run.export()
    accelerator.wait_for_everyone()
    result = run.result
    result.step, result.nonfinite_steps = run.n.step, run.n.nonfinite_total
    result.data_rejected = {str(k): int(v) for k, v in dict(getattr(dataset, "rejected", {})).items()}
    # The DDP wrapper goes before the process group, as torch's own examples order it: freed after
    # it (when train() returns), its Reducer's destructor held the last reference to the gloo group
    # and joined gloo's worker threads while holding the GIL, which a worker needed: a hang at exit
    # seen once in the two-process test (py-spy). Dropping every reference first (ours and
    # accelerate's) lets destroy_process_group() free the group on its usual path.
    del run
    accelerator.free_memory()
    accelerator.end_training()
    return result


def _accelerator(tc):
    """A fresh accelerate set-up for this run (the process group, if any, is kept), checked."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    # Several processes on a machine without an accelerator: accelerate only sets up gloo when told
    # to use the CPU, otherwise every process would train alone and all would write the same run.
    cpu = launched > 1 and not _has_accelerator()
    accelerator = Accelerator(mixed_precision=tc.mixed_precision, gradient_accumulation_steps=tc.grad_accum, cpu=cpu)
    world = accelerator.num_processes
    if launched != world:
        raise ConfigError(
            f"launched as {launched} processes (WORLD_SIZE), but accelerate set up {world}; "
            "check the accelerate launch options"
        )
    if tc.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise ConfigError("train.mixed_precision=fp16 needs a GPU (accelerate runs fp32 on the CPU); use bf16 or no")
    B, A = tc.batch_size, tc.grad_accum
    if B % (A * world) != 0:
        raise ConfigError(
            f"train.batch_size={B} must be a multiple of train.grad_accum × processes = {A} × {world} = {A * world}"
        )
    return accelerator


def _start_run(config: TrainingConfig, run_dir: Path, resume, accelerator) -> Path | None:
    """The checkpoint to resume from (None = a fresh start); the main process prepares the run folder."""
    resume_dir = ckpt.resolve_resume(str(resume), run_dir) if resume is not None else None
    if resume is None and (existing := ckpt.latest_checkpoint(run_dir)) is not None:
        raise ConfigError(
            f"output_dir {run_dir} already holds checkpoints (newest: {existing.name}); "
            "pass --resume latest to continue that run, or choose another --output"
        )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_partial(run_dir)
        (run_dir / "config.yaml").write_text(dump_config(config))
        info = {
            "versions": _versions(),
            "argv": sys.argv,
            "processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "mixed_precision": config.train.mixed_precision,
            "resumed_from": str(resume_dir) if resume_dir else None,
        }
        ckpt.write_run_info(run_dir, info)
    accelerator.wait_for_everyone()
    return resume_dir


def _preview_batch(config: TrainingConfig, source, is_main: bool) -> dict[str, torch.Tensor] | None:
    """The fixed validation pairs of the sample grid (main process, when the grid is on)."""
    if not is_main or config.log.sample_every <= 0:
        return None
    if hasattr(source, "set_epoch"):
        source.set_epoch(0)
    items = [source[i] for i in range(min(config.log.sample_count, len(source)))]
    return {k: torch.stack([it[k] for it in items]) for k in ("x_ori", "x_obj", "mask")}


@dataclass
class _Counters:
    """Where a run stands: what a checkpoint's state.json records and a resume restores."""

    step: int = 0
    epoch: int = 0
    index: int = 0
    opt_steps: int = 0
    nonfinite_total: int = 0
    nonfinite_run: int = 0


class _Run:
    """One call of :func:`train`: the model, optimizer and data of the run, and the loop's parts."""

    def __init__(self, config: TrainingConfig, accelerator, run_dir: Path, dataset) -> None:
        self.config, self.accelerator, self.run_dir, self.dataset = config, accelerator, run_dir, dataset
        tc, oc = config.train, config.optim
        self.device = accelerator.device
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.is_main = accelerator.is_main_process
        self.B, self.A = tc.batch_size, tc.grad_accum
        self.micro = self.B // (self.A * self.world)
        self.size = len(dataset)
        if self.size == 0:
            raise DataError(f"the training set is empty (data.source={config.data.source}); check the data paths")
        if self.size < self.B:
            raise DataError(
                f"the training set has {self.size} pairs, fewer than one global batch (train.batch_size={self.B})"
            )
        torch.manual_seed(tc.seed)
        self.model = build_model(config.model, crop_size=config.data.crop_size)
        self.unet = unet = self.model.unet
        frozen_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(tc.mixed_precision, torch.float32)
        self.model.prepare_for_training(self.device, frozen_dtype=frozen_dtype)  # frozen parts on the device
        if tc.gradient_checkpointing:
            if not getattr(unet, "_supports_gradient_checkpointing", False):
                raise ConfigError(f"train.gradient_checkpointing: {type(unet).__name__} does not support it")
            unet.enable_gradient_checkpointing()
        oj = config.objective
        self.objective = build_objective(oj, self.model.schedule)
        self.t_probs = None
        if oj.timesteps == "lognormal":
            self.t_probs = core.lognormal_timestep_probs(
                self.model.schedule.alpha_bar(), p_mean=oj.p_mean, p_std=oj.p_std, uniform_share=oj.uniform_share
            )
        self.x0_terms = build_x0_terms(oj, self.device)
        optimizer = torch.optim.AdamW(
            unet.parameters(), lr=oc.lr, betas=oc.betas, eps=oc.eps, weight_decay=oc.weight_decay
        )

        def factor(i: int) -> float:
            return lr_factor(
                i, warmup_steps=oc.warmup_steps, schedule=oc.schedule, max_steps=tc.max_steps,
                min_lr_ratio=oc.min_lr_ratio,
            )  # fmt: skip

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self.unet_ddp, self.optimizer = accelerator.prepare(unet, optimizer)
        self.ema: EMA | None = None
        self.n = _Counters()
        self.result = TrainResult(run_dir=run_dir, step=0)

    # -- resume and checkpoints

    def restore(self, resume_dir: Path) -> None:
        """Weights, optimizer, schedules, EMA, counters and RNG states of the checkpoint ``resume_dir``."""
        saved = ckpt.TrainingCheckpoint(resume_dir)
        state = saved.state
        mismatch = load_fitting_weights(self.unet, saved.unet)
        if mismatch is not None:
            raise ckpt.CheckpointError(f"{resume_dir}: the weights do not fit this model ({mismatch})")
        self.optimizer.load_state_dict(saved.optimizer)
        self.scheduler.load_state_dict(state["lr_scheduler"])
        if self.accelerator.scaler is not None and state.get("grad_scaler"):
            self.accelerator.scaler.load_state_dict(state["grad_scaler"])
        if self.config.train.ema_decay is not None and self.is_main:
            self.ema = EMA(self.unet, self.config.train.ema_decay)
            if saved.ema is not None:
                self.ema.shadow = saved.ema
                self.ema.updates = int(state.get("ema_updates", 0))
        n = self.n
        n.step, n.opt_steps = int(state["step"]), int(state["optimizer_steps"])
        n.epoch, n.index = int(state["epoch"]), int(state["index"])
        n.nonfinite_total, n.nonfinite_run = int(state["nonfinite_total"]), int(state["nonfinite_consecutive"])
        if int(state.get("dataset_len", self.size)) != self.size:
            self.accelerator.print(
                f"warning: the training set has {self.size} pairs, the checkpoint was made with "
                f"{state['dataset_len']}; continuing from the start of epoch {n.epoch + 1}"
            )
            n.epoch, n.index = n.epoch + 1, 0
        if int(state.get("world_size", self.world)) == self.world:
            ckpt.set_rng_state(state["rng"][self.rank], saved.rng_tensors(), self.rank)
        old_cfg = resume_dir / "config.yaml"
        if self.is_main and old_cfg.is_file():
            import yaml

            old = _math_part(config_from_dict(yaml.safe_load(old_cfg.read_text())).to_dict())
            changed = _differing_keys(old, _math_part(self.config.to_dict()))
            if changed:
                self.accelerator.print(
                    f"warning: the config differs from {old_cfg} in keys that change the results: {', '.join(changed)}"
                )

    def start_ema(self) -> None:
        if self.ema is None and self.config.train.ema_decay is not None and self.is_main:
            self.ema = EMA(self.unet, self.config.train.ema_decay)
        if self.ema is not None:
            self.ema.shadow = {k: v.to(self.device) for k, v in self.ema.shadow.items()}

    def save(self, at_step: int) -> Path | None:
        """A checkpoint of ``at_step`` (main process; every process takes part in the RNG gather)."""
        from accelerate.utils import gather_object

        rng = gather_object([ckpt.rng_state()])
        path = None
        if self.is_main:
            n, scaler = self.n, self.accelerator.scaler
            state = {
                "step": at_step, "epoch": n.epoch, "index": n.index, "dataset_len": self.size,
                "samples_seen": at_step * self.B, "optimizer_steps": n.opt_steps,
                "nonfinite_total": n.nonfinite_total, "nonfinite_consecutive": n.nonfinite_run,
                "ema_updates": self.ema.updates if self.ema is not None else 0,
                "lr_scheduler": self.scheduler.state_dict(),
                "grad_scaler": scaler.state_dict() if scaler is not None else None,
                "world_size": self.world, "versions": _versions(),
            }  # fmt: skip
            path = ckpt.write_training_checkpoint(
                ckpt.checkpoint_dir(self.run_dir, at_step),
                unet=self.unet.state_dict(),
                ema=self.ema.shadow if self.ema is not None else None,
                optimizer=self.optimizer.state_dict(),
                rng=rng,
                state=state,
                config_text=dump_config(self.config),
            )
            ckpt.prune_checkpoints(self.run_dir, self.config.checkpoint.keep_last)
            self.result.checkpoints.append(path)
        self.accelerator.wait_for_everyone()
        return path

    def export(self) -> None:
        """The final (EMA) weights as ``model.safetensors`` in the run folder."""
        from eradiff.models.loading import save_checkpoint

        export = self.run_dir / "model.safetensors"
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[
            self.config.checkpoint.export_dtype
        ]
        with self.ema.applied(self.unet) if self.ema is not None else contextlib.nullcontext():
            save_checkpoint(self.model, export, dtype=dtype)
        self.result.export_path = export

    def preview(self, batch: dict[str, torch.Tensor], at_step: int) -> None:
        from eradiff.train.preview import erase_preview, save_grid

        x_ori, x_obj, M = to_device_batch(batch, self.device)
        self.unet.eval()
        try:
            with self.ema.applied(self.unet) if self.ema is not None else contextlib.nullcontext():
                out = erase_preview(
                    self.model, x_obj, M, steps=self.config.log.sample_steps, seed=self.config.train.seed,
                    sra=self.config.model.sra,
                )  # fmt: skip
        finally:
            self.unet.train()
        save_grid(self.run_dir / "samples" / f"step-{at_step:08d}.png", [x_obj, M, out, x_ori])

    # -- one step

    def loader(self, epoch: int, start: int):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        tc = self.config.train
        plan = _EpochPlan(
            n=self.size, batch=self.B, accum=self.A, world=self.world, rank=self.rank, seed=tc.seed, epoch=epoch,
            start=start,
        )  # fmt: skip
        return iter(
            DataLoader(
                self.dataset,
                batch_sampler=plan,
                num_workers=self.config.data.num_workers,
                pin_memory=self.device.type == "cuda",
                generator=torch.Generator().manual_seed(sample_seed(tc.seed, _STREAM_ORDER, epoch, 1)),
            )
        )

    def micro_losses(self, batch: dict[str, torch.Tensor], k: int, j0: int) -> torch.Tensor:
        x_ori, x_obj, M = to_device_batch(batch, self.device)
        fill = batch["fill"].to(self.device, torch.float32) if "fill" in batch else None
        seed, oj = self.config.train.seed, self.config.objective
        gens = [torch.Generator().manual_seed(sample_seed(seed, _STREAM_DRAW, k, j0 + i)) for i in range(len(x_ori))]
        return micro_step(
            self.model, self.unet_ddp, self.objective, x_ori, x_obj, M, gens,
            encode_obj=oj.kind != "standard", gamma_max=oj.gamma_max, mask_weight=oj.mask_weight,
            sra=self.config.model.sra, backward=self.accelerator.backward, t_probs=self.t_probs, fill=fill,
            x0_terms=self.x0_terms,
        )  # fmt: skip

    def optimizer_step(self, it) -> tuple[float, bool, float]:
        """Step 1–6 of the module docstring: ``(global mean loss, finite, gradient norm)``."""
        accelerator, optimizer, oc = self.accelerator, self.optimizer, self.config.optim
        fp16 = self.config.train.mixed_precision == "fp16"
        local = torch.zeros((), dtype=torch.float64, device=self.device)
        for m in range(self.A):
            batch = next(it)
            with accelerator.accumulate(self.unet_ddp):
                j0 = m * (self.B // self.A) + self.rank * self.micro
                local += self.micro_losses(batch, self.n.step, j0).double().sum()
                if m < self.A - 1:
                    continue
                norm = accelerator.clip_grad_norm_(
                    self.unet_ddp.parameters(), oc.grad_clip if oc.grad_clip is not None else float("inf")
                )
                grad_norm = float(norm) if norm is not None else float("nan")
                loss = float(accelerator.reduce(local, reduction="sum")) / self.B
                finite = math.isfinite(loss) and (fp16 or norm is None or math.isfinite(grad_norm))
                if fp16:  # the grad scaler skips non-finite gradients itself and lowers its scale
                    optimizer.step()
                    stepped = not accelerator.optimizer_step_was_skipped and math.isfinite(loss)
                else:
                    stepped = finite
                    if stepped:
                        optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        if stepped:
            self.scheduler.step()
            self.n.opt_steps += 1
            if self.ema is not None:
                self.ema.update(self.unet)
        return loss, finite, grad_norm

    # -- the loop

    def loop(self, preview_batch: dict[str, torch.Tensor] | None) -> None:
        config, tc, n = self.config, self.config.train, self.n
        metrics = None
        if self.is_main:
            metrics = _Metrics(self.run_dir, tensorboard=config.log.tensorboard, truncate_after=n.step)
        end = tc.max_steps if tc.stop_at is None else tc.stop_at  # the schedule still runs to max_steps
        bar = _progress(end, n.step, config.log.progress and self.is_main)
        window: list[float] = []
        window_start, window_steps = time.perf_counter(), 0
        last_saved, it = None, None
        started, steps_this_call = time.perf_counter(), 0
        if bar is not None:
            bar[0].start()
        try:
            while n.step < end:
                if it is None:
                    it = self.loader(n.epoch, n.index)
                loss, finite, grad_norm = self.optimizer_step(it)
                n.nonfinite_run = 0 if finite else n.nonfinite_run + 1
                n.nonfinite_total += not finite
                n.step += 1
                steps_this_call += 1
                n.index += self.B
                if n.index + self.B > self.size:
                    n.epoch, n.index, it = n.epoch + 1, 0, None
                self.result.losses.append(loss if finite else float("nan"))
                if finite:
                    window.append(loss)
                window_steps += 1
                if bar is not None:
                    rate = steps_this_call / max(time.perf_counter() - started, 1e-9)
                    bar[0].update(bar[1], completed=n.step, loss=f"{loss:.4f}", rate=f"{rate:.2f}")
                if metrics is not None and (n.step % config.log.every == 0 or n.step == end):
                    metrics.write(self._row(window, window_steps, time.perf_counter() - window_start, loss, grad_norm))
                    window, window_steps, window_start = [], 0, time.perf_counter()
                if n.nonfinite_run >= tc.max_nonfinite_steps:
                    raise NonFiniteLossError(
                        f"{n.nonfinite_run} consecutive steps had a non-finite loss or gradient (step {n.step}); "
                        f"lower optim.lr, set optim.grad_clip, or check the data"
                    )
                if preview_batch is not None and n.step % config.log.sample_every == 0:
                    self.preview(preview_batch, n.step)
                if config.checkpoint.every and n.step % config.checkpoint.every == 0:
                    self.save(n.step)
                    last_saved = n.step
        finally:
            if bar is not None:
                bar[0].stop()
            if metrics is not None:
                metrics.close()
        if last_saved != n.step and steps_this_call > 0:
            self.save(n.step)
        if preview_batch is not None and n.step % config.log.sample_every != 0 and steps_this_call > 0:
            self.preview(preview_batch, n.step)

    def _row(self, window: list[float], steps: int, seconds: float, loss: float, grad_norm: float) -> dict[str, Any]:
        dt = max(seconds, 1e-9)
        return {
            "step": self.n.step,
            "epoch": self.n.epoch,
            "loss": float(np.mean(window)) if window else float("nan"),
            "loss_last": loss,
            "lr": float(self.scheduler.get_last_lr()[0]),
            "grad_norm": grad_norm,
            "steps_per_s": steps / dt,
            "samples_per_s": steps * self.B / dt,
            "nonfinite_total": self.n.nonfinite_total,
            "ema_decay": self.ema.current_decay() if self.ema is not None else None,
            "data_rejected": sum(getattr(self.dataset, "rejected", {}).values()),
        }
