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
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "CHECKPOINT_RE",
    "CheckpointError",
    "checkpoint_dir",
    "find_checkpoints",
    "latest_checkpoint",
    "load_tensors",
    "prune_checkpoints",
    "remove_partial",
    "resolve_resume",
    "save_tensors",
    "write_atomic_dir",
]

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
