"""``eradiff batch SOURCE [MASKS] -o OUT``: erase a whole dataset, here or on a Ray cluster, resumably.

SOURCE is a folder of images (MASKS: a folder of masks matched by stem, or one mask file, as in
``eradiff erase``) or a manifest (CSV, JSONL, Parquet: ``image``, ``mask``, optional ``output``,
``seed``); local paths or fsspec URLs. The erased images go under the local folder OUT, the
results manifest to ``OUT/results.jsonl`` (``--results``). Planning (:mod:`eradiff.batch.plan`),
the per-item worker and the engines live in :mod:`eradiff.batch`; this module parses options,
draws the progress bar and prints the summary.

Exit codes: 0 when every item is done or skipped, 1 when any failed (the others are still
written) or for a problem with SOURCE, MASKS or the model, 2 for an invalid option (``--engine
ray`` without Ray installed included), 130 for Ctrl+C (finished items are kept for the rerun).
"""

from __future__ import annotations

import functools
import math
import secrets
import sys
from pathlib import Path
from typing import Any

import typer

from eradiff.cli._common import (
    CLIError,
    check_device_and_backend,
    erase_options_from,
    fail,
    load_erasure_model,
    model_option,
    with_erase_options,
)
from eradiff.cli.hub import ModelSpecError, check_model_spec
from eradiff.formats import FORMATS, format_key

RESULT_SUFFIXES = (".jsonl", ".parquet")
MAX_LISTED_FAILURES = 10


def load_batch_model(spec: str | None, *, backend: str, device: str, offline: bool) -> Any:
    """The model of one batch worker (module level, so a ``functools.partial`` of it pickles for Ray)."""
    return load_erasure_model(spec, backend=backend, device=device, offline=offline)[0]


@with_erase_options(exclude=("seed",))  # --seed is the global seed here (its own help above)
def batch_command(
    source: str = typer.Argument(
        ..., help="A folder of images, or a manifest (.csv, .jsonl, .parquet); a path or URL.", show_default=False
    ),
    masks: str | None = typer.Argument(
        None, help="For a folder: a folder of masks matched by file stem, or one mask file.", show_default=False
    ),
    output: str = typer.Option(..., "-o", "--output", help="Output folder (local; created).", show_default=False),
    results: str | None = typer.Option(
        None, "--results", help="Results manifest: .jsonl or .parquet (default OUT/results.jsonl)."
    ),
    engine: str = typer.Option("local", "--engine", help="local (this process) | ray (Ray Data actors)."),
    address: str = typer.Option(
        "local", "--address", help="Ray: local (start one for this run) | auto (this machine's cluster) | ray://H:P."
    ),
    workers: int = typer.Option(1, "--workers", help="Ray: actors, each with its own model."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="Ray: GPUs per actor (1 on a GPU node)."),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help="Ray: CPUs per actor."),
    batch_size: int = typer.Option(4, "--batch-size", help="Ray: items per actor call."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo items a previous run finished."),
    model: str | None = model_option(),
    seed: int = typer.Option(
        0,
        "--seed",
        help="Global seed: an item's seed is its manifest seed, else a hash of this and its output name "
        "(-1 picks a random one and prints it).",
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps (on each worker)."),
    offline: bool = typer.Option(False, "--offline", help="Never contact the Hugging Face hub."),
    fmt: str | None = typer.Option(None, "--format", help="Output format: png | jpeg | webp | tiff | bmp."),
    backend: str = typer.Option("torch", "--backend", help="UNet backend: torch | onnx | trt (--model FILE)."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="torch CPU threads per worker (default: --cpus-per-worker, rounded up).",
        show_default=False,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary; failures still print."),
    **erase: Any,
) -> None:
    """Erase a dataset: every image of a folder or manifest, locally or on Ray; resumable."""
    from rich.console import Console

    args = dict(
        source=source, masks=masks, output=output, results=results, engine=engine, address=address, workers=workers,
        gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker, batch_size=batch_size, overwrite=overwrite,
        model=model, seed=seed, device=device, offline=offline, fmt=fmt, backend=backend, threads=threads, **erase,
    )  # fmt: skip
    console = Console(stderr=True, quiet=quiet, highlight=False)
    try:
        code = _run(console, **args)
    except CLIError as exc:
        fail(str(exc), exc.code)
    except KeyboardInterrupt:
        fail("interrupted; finished items are recorded: rerun the same command to do the rest", 130)
    except RuntimeError as exc:
        from eradiff.batch.worker import WorkerStartError

        fail(str(exc) if isinstance(exc, WorkerStartError) else _one_line(exc), 1)
    except Exception as exc:  # a bug or an engine failure, not a user error: still one line, no traceback
        fail(_one_line(exc), 1)
    raise typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    from eradiff.errors import first_line

    cause = getattr(exc, "cause", None)  # Ray wraps an actor's exception (e.g. a model that cannot load)
    if isinstance(cause, CLIError):
        return first_line(cause)
    if isinstance(cause, Exception) and cause is not exc:
        exc = cause
    return f"unexpected {type(exc).__name__}: {first_line(exc)}"


def _check(args: dict[str, Any]) -> str | None:
    """Option values checked without torch or ray; returns the ``--format`` key (None = the input's)."""
    if args["engine"] not in ("local", "ray"):
        raise CLIError(f"engine {args['engine']!r} is not valid; choose local or ray", 2)
    check_device_and_backend(args["device"], args["backend"], args["model"])
    if args["seed"] < -1:
        raise CLIError(f"seed must be ≥ 0, or -1 for a random one; got {args['seed']}", 2)
    for name in ("workers", "batch_size"):
        if args[name] < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be ≥ 1, got {args[name]}", 2)
    if args["threads"] is not None and args["threads"] < 1:
        raise CLIError(f"--threads must be ≥ 1, got {args['threads']}", 2)
    if args["cpus_per_worker"] <= 0 or args["gpus_per_worker"] < 0:
        raise CLIError("--cpus-per-worker must be > 0 and --gpus-per-worker ≥ 0", 2)
    if args["engine"] == "local":
        ray_only = {
            "--workers": args["workers"] != 1,
            "--address": args["address"] != "local",
            "--gpus-per-worker": args["gpus_per_worker"] != 0,
            "--batch-size": args["batch_size"] != 4,
        }
        given = [name for name, changed in ray_only.items() if changed]
        if given:
            raise CLIError(f"{', '.join(given)} need --engine ray (the local engine is one worker in this process)", 2)
    if args["fmt"] is None:
        return None
    fmt = format_key(args["fmt"])
    if fmt is None:
        raise CLIError(f"format {args['fmt']!r} is not supported; choose one of {', '.join(FORMATS)}", 2)
    return fmt


def _paths(args: dict[str, Any]) -> tuple[Path, Path]:
    """OUT (a local folder) and the results file."""
    out_text = args["output"]
    if "://" in out_text and not out_text.startswith("file://"):
        raise CLIError(f"output {out_text!r}: OUT must be a local folder (a shared file system on a cluster)", 2)
    from eradiff.batch.plan import local_path

    out = local_path(out_text)
    assert out is not None
    if out.exists() and not out.is_dir():
        raise CLIError(f"output {str(out)!r} is a file; OUT must be a folder")
    results = Path(args["results"]).expanduser() if args["results"] else out / "results.jsonl"
    if results.suffix.lower() not in RESULT_SUFFIXES:
        raise CLIError(f"--results {str(results)!r}: the name must end in .jsonl or .parquet", 2)
    if results.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError as exc:
            raise CLIError('--results FILE.parquet needs pyarrow: pip install -e ".[ray]"', 2) from exc
    return out, results


def _run(console: Any, **args: Any) -> int:
    from eradiff.batch import PlanError, RayOptions, WorkerConfig, plan, run_batch

    # 1. what needs neither torch nor ray: options, paths, the plan, the model spec
    fmt = _check(args)
    out, results = _paths(args)
    seed = args["seed"]
    if seed == -1:
        seed = secrets.randbelow(2**31)
        print(f"seed: {seed} (pass --seed {seed} to resume this batch)", file=sys.stderr)
    options = erase_options_from(args, seed=seed)
    try:
        items = plan(args["source"], args["masks"], out, seed=seed, fmt=fmt)
    except PlanError as exc:
        raise CLIError(str(exc), 1) from exc
    if args["engine"] == "ray":
        from eradiff.batch.ray_engine import RayUnavailable, import_ray

        try:
            import_ray(loopback=args["address"] == "local")
        except RayUnavailable as exc:
            raise CLIError(str(exc), 2) from exc
    offline = args["offline"]
    if args["backend"] == "torch":
        try:
            offline = check_model_spec(args["model"], offline=offline)
        except ModelSpecError as exc:
            raise CLIError(str(exc), 1) from exc
    # 2. the workers' settings, then the engine
    threads = args["threads"] or max(1, math.ceil(args["cpus_per_worker"]))
    load = functools.partial(load_batch_model, args["model"], backend=args["backend"], device=args["device"],
                             offline=offline)  # fmt: skip
    config = WorkerConfig(load=load, options=options, fmt=fmt, threads=threads, overwrite=args["overwrite"],
                          settings=f"model={args['model'] or 'default'} backend={args['backend']}")  # fmt: skip
    ray = RayOptions(address=args["address"], workers=args["workers"], cpus_per_worker=args["cpus_per_worker"],
                     gpus_per_worker=args["gpus_per_worker"], batch_size=args["batch_size"])  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with _Progress(console, len(items)) as on_row:
        outcome = run_batch(items, config, results=results, engine=args["engine"], ray=ray, on_row=on_row)
    _summary(console, outcome, engine=args["engine"], workers=args["workers"])
    return 1 if outcome.counts["failed"] else 0


class _Progress:
    """A rich bar on stderr (items/s, ETA, failures so far); yields the ``on_row`` callback."""

    def __init__(self, console: Any, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _speed_column(),
                   TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[failed]} failed"))  # fmt: skip
        self.bar = Progress(*columns, console=console, transient=True, disable=console.quiet)
        self.total = total

    def __enter__(self):
        self.bar.__enter__()
        task = self.bar.add_task("erasing", total=self.total, failed=0)
        failed = 0

        def on_row(row: dict[str, Any]) -> None:
            nonlocal failed
            failed += row["status"] == "failed"
            self.bar.update(task, advance=1, failed=failed)

        return on_row

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)


def _speed_column():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("  -  items/s" if speed is None else f"{speed:5.2f} items/s")

    return SpeedColumn()


def _summary(console: Any, outcome: Any, *, engine: str, workers: int) -> None:
    """Counts, speed, the first failures (printed even with --quiet) and where the results are."""
    rows, counts, seconds = outcome.rows, outcome.counts, outcome.seconds
    failed = [row for row in rows if row["status"] == "failed"]
    for row in failed[:MAX_LISTED_FAILURES]:
        print(f"failed {row['key']}: {row['error']}", file=sys.stderr)
    if len(failed) > MAX_LISTED_FAILURES:
        print(f"… and {len(failed) - MAX_LISTED_FAILURES} more failed: see {outcome.results}", file=sys.stderr)
    where = "this process" if engine == "local" else f"ray, {workers} worker{'s' * (workers != 1)}"
    done = counts["done"]
    rate = f"{done / seconds:.2f} images/s" if seconds > 0 and done else "nothing erased"
    console.print(f"{len(rows)} items: {done} done, {counts['skipped']} skipped, {counts['failed']} failed "
                  f"in {seconds:.1f} s ({rate}; {where})", markup=False, soft_wrap=True)  # fmt: skip
    console.print(f"results: {outcome.results}", markup=False, soft_wrap=True)


__all__ = ["batch_command", "load_batch_model"]
