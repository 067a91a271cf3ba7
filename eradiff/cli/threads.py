"""CPU threads of the commands that compute (erase, serve, eval, export): ``--threads`` and OpenMP waiting.

torch's CPU kernels run on an OpenMP pool. By default GNU OpenMP keeps idle pool threads spinning
for a while after each parallel region; beside another busy process on the same cores, the
spinning threads of both fight for the CPU and an erase runs many times slower (measured:
``benchmarks/bench_busy_cpu.py``). Passive waiting lets idle threads sleep. OpenMP reads
``OMP_WAIT_POLICY`` once, when torch loads it, so :func:`passive_wait_default` runs in
:func:`eradiff.cli.main` before anything imports torch; a value the user set is kept.

``--threads N`` sets torch's pool size; by default ``OMP_NUM_THREADS`` when the user set it, else
the cores this process may run on (its CPU affinity, which container and ``taskset`` limits
narrow).
"""

from __future__ import annotations

import os

import typer

THREADS_ENV = "OMP_NUM_THREADS"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


def passive_wait_default() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy (call before torch is imported)."""
    os.environ.setdefault(WAIT_POLICY_ENV, "PASSIVE")


def usable_cores() -> int:
    """The number of cores this process may run on (CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it holds a positive integer, else :func:`usable_cores`."""
    value = os.environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else usable_cores()


def threads_option() -> typer.models.OptionInfo:
    """The ``--threads`` option, declared once for every command that computes."""
    return typer.Option(
        None,
        "--threads",
        help=f"CPU threads for torch (default: ${THREADS_ENV} if set, else the cores this process may use: "
        f"{usable_cores()} here). Idle threads sleep (OMP_WAIT_POLICY=PASSIVE unless set).",
        show_default=False,
    )


def check_threads(threads: int | None) -> None:
    """Raises ValueError for a thread count below 1 (checked before torch is imported)."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be ≥ 1, got {threads}")


def apply_threads(threads: int | None) -> int:
    """Size torch's CPU pool: ``threads``, or :func:`default_threads` when None. Returns the size."""
    import torch

    check_threads(threads)
    count = threads if threads is not None else default_threads()
    torch.set_num_threads(count)
    return count


def runtime_report() -> dict[str, object]:
    """What the CPU pool is, for JSON reports: torch's thread count and the OpenMP wait policy."""
    import torch

    return {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get(WAIT_POLICY_ENV)}


__all__ = [
    "apply_threads",
    "check_threads",
    "default_threads",
    "passive_wait_default",
    "runtime_report",
    "threads_option",
    "usable_cores",
]
