"""Training checkpoints: atomic folders, no pickle for weights, everything a resume needs.

Layout of ``<run>/ckpt-00001000/`` (written as ``ckpt-00001000.tmp/`` and renamed when complete,
so a crash never leaves a half checkpoint under a final name):

| file                 | what                                                                  |
| -------------------- | --------------------------------------------------------------------- |
| ``unet.safetensors`` | the trained UNet's ``state_dict`` (fp32)                              |
| ``ema.safetensors``  | the EMA weights (fp32), when EMA is on                                |
| ``optimizer.pt``     | AdamW ``state_dict`` (``torch.save``; read with ``weights_only=True``) |
| ``rng.safetensors``  | every process's torch CPU (and CUDA) generator state                  |
| ``state.json``       | step, data position, counters, LR-scheduler and grad-scaler state, |
|                      | every process's Python and NumPy RNG state, versions                  |
| ``config.yaml``      | the resolved run config (``--resume`` can run from it alone)          |
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "CHECKPOINT_RE",
    "STATE_FORMAT",
    "CheckpointError",
    "TrainingCheckpoint",
    "checkpoint_dir",
    "find_checkpoints",
    "latest_checkpoint",
    "load_tensors",
    "prune_checkpoints",
    "remove_partial",
    "resolve_resume",
    "rng_state",
    "save_tensors",
    "set_rng_state",
    "write_atomic_dir",
    "write_run_info",
    "write_training_checkpoint",
]

STATE_FORMAT = 1  # state.json's "format"

CHECKPOINT_RE = re.compile(r"^ckpt-(\d{8,})$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found or read."""


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"ckpt-{step:08d}"


def find_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run folder, oldest first (``.tmp`` folders are ignored)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = find_checkpoints(run_dir)
    return found[-1][1] if found else None


def resolve_resume(resume: str, run_dir: Path) -> Path | None:
    """The checkpoint folder ``--resume`` names.

    ``latest`` is the newest checkpoint of ``run_dir`` (None when there is none: a fresh start);
    a run folder means its newest checkpoint; otherwise the path must be a checkpoint folder.

    Raises:
        CheckpointError: the path does not exist or holds no checkpoint.
    """
    if resume == "latest":
        return latest_checkpoint(run_dir)
    p = Path(resume)
    if (p / "state.json").is_file():
        return p
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is not None:
            return found
        raise CheckpointError(f"--resume {resume}: the folder holds no checkpoint (ckpt-XXXXXXXX/state.json)")
    raise CheckpointError(f"--resume {resume}: no such checkpoint folder")


def remove_partial(run_dir: Path) -> list[Path]:
    """Delete ``ckpt-*.tmp`` folders left by an interrupted save; return them."""
    run_dir = Path(run_dir)
    gone = []
    if run_dir.is_dir():
        for p in run_dir.glob("ckpt-*.tmp"):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


def prune_checkpoints(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints; return the deleted folders."""
    found = find_checkpoints(run_dir)
    gone = [p for _, p in found[: max(0, len(found) - keep_last)]]
    for p in gone:
        shutil.rmtree(p)
    return gone


def write_atomic_dir(final: Path, write) -> Path:
    """Create ``final`` atomically: ``write(tmp_dir)`` fills ``<final>.tmp/``, which is then renamed.

    An existing ``final`` (a re-run of the same step) is replaced only after the new folder is
    complete.
    """
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    _fsync_dir(tmp)
    if final.exists():
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    return load_file(str(path))


def write_json(path: Path, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True))


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None


# -- a training run's checkpoint and run record -------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy (legacy global), torch CPU and CUDA generator states."""
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what we restore
    return {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any], tensors: dict[str, torch.Tensor], rank: int) -> None:
    """Restore what :func:`rng_state` recorded for process ``rank`` (state.json part + rng tensors)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))  # noqa: NPY002
    torch.set_rng_state(tensors[f"torch/{rank}"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith(f"cuda/{rank}/")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def write_training_checkpoint(
    path: Path,
    *,
    unet: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None,
    optimizer: dict[str, Any],
    rng: list[dict[str, Any]],
    state: dict[str, Any],
    config_text: str,
) -> Path:
    """Write the checkpoint folder ``path`` atomically (layout in the module docstring).

    Args:
        unet, ema: the UNet's and the EMA's tensors (ema None when EMA is off).
        optimizer: the optimizer's ``state_dict``.
        rng: :func:`rng_state` of every process, by rank.
        state: the counters and scheduler states for ``state.json`` (format, RNG parts and versions
            are added here).
        config_text: the resolved config as YAML.
    """

    def write(tmp: Path) -> None:
        save_tensors(tmp / "unet.safetensors", unet)
        if ema is not None:
            save_tensors(tmp / "ema.safetensors", ema)
        torch.save(optimizer, tmp / "optimizer.pt")
        tensors = {}
        for r, s in enumerate(rng):
            tensors[f"torch/{r}"] = s["torch"]
            for i, c in enumerate(s["cuda"]):
                tensors[f"cuda/{r}/{i}"] = c
        save_tensors(tmp / "rng.safetensors", tensors)
        rngs = [{"python": s["python"], "numpy": s["numpy"]} for s in rng]
        write_json(tmp / "state.json", {"format": STATE_FORMAT, **state, "rng": rngs})
        (tmp / "config.yaml").write_text(config_text)

    return write_atomic_dir(path, write)


class TrainingCheckpoint:
    """A checkpoint folder read back for a resume (files checked, tensors loaded on demand).

    Raises:
        CheckpointError: an unknown format or a missing file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.state = read_json(self.path / "state.json")
        if self.state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{self.path}: unknown checkpoint format {self.state.get('format')!r}")
        self.unet = load_tensors(self.path / "unet.safetensors")
        opt_file = self.path / "optimizer.pt"
        if not opt_file.is_file():
            raise CheckpointError(f"checkpoint file {opt_file} is missing")
        self.optimizer = torch.load(opt_file, map_location="cpu", weights_only=True)
        ema_file = self.path / "ema.safetensors"
        self.ema = load_tensors(ema_file) if ema_file.is_file() else None

    def rng_tensors(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.path / "rng.safetensors")


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    """``run.json``: ``info`` plus the start time; a resumed run keeps what earlier starts recorded."""
    info = {**info, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    run_file = Path(run_dir) / "run.json"
    if run_file.is_file():
        try:
            earlier = json.loads(run_file.read_text())
            info["earlier_starts"] = [
                *earlier.pop("earlier_starts", []),
                {k: earlier.get(k) for k in ("started", "processes", "resumed_from")},
            ]
        except (json.JSONDecodeError, AttributeError):
            pass
    run_file.write_text(json.dumps(info, indent=1))
