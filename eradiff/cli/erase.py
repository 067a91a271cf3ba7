"""``eradiff erase IMG MASK``: parse options, pair files, and call :func:`eradiff.pipeline.erase`.

IMG and MASK are files or folders. A folder of images is paired with masks by file stem (a MASK
folder) or with one mask file for all. Outputs: ``-o`` file or folder; by default
``STEM.erased.EXT`` beside an input file, or a sibling folder ``IMGDIR-erased/`` for a folder.
An output file needs an image suffix; missing output folders are created. An output never
replaces an input, and is written atomically. A mask with nothing to erase copies the input: the
file's own bytes when the output has the input's format. Progress and messages go to stderr;
``--json`` prints the report on stdout. Every error is one line on stderr with a non-zero exit:
2 for invalid options, 1 for everything else (any image failing included).

Options, paths and the model spec are checked before torch is imported, so a typo fails at once;
the JSON report's ``timings`` split the run into import, model load, read, erase and write.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
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
from eradiff.cli.threads import apply_threads, check_threads, runtime_report, threads_option
from eradiff.formats import FORMATS, format_for_suffix, format_key
from eradiff.pairing import image_names, mask_for, masks_by_stem, output_suffix


@dataclass
class Job:
    """One image to erase."""

    image: Path
    mask: Path | None
    output: Path
    error: str | None = None
    status: str = "pending"
    compare: Path | None = None
    warnings: list[str] = field(default_factory=list)
    report: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _images_in(folder: Path) -> list[Path]:
    return [folder / name for name in image_names(p.name for p in folder.iterdir() if p.is_file())]


def plan_jobs(image: Path, mask: Path, output: str | Path | None, fmt: str | None) -> list[Job]:
    """Pair images with masks and choose output paths; checks that nothing overwrites an input.

    ``output`` names a folder when it is one, when IMG is a folder, or when it ends with a path
    separator (as typed: ``-o out/``); otherwise a file, which needs an image suffix.

    Raises:
        CLIError: missing IMG or MASK, an empty folder, an output folder that is a file, an output
            file without an image suffix, or an output that would replace an input.
    """
    as_folder = output is not None and str(output).endswith(("/", os.sep))
    output = None if output is None else Path(output)
    if not image.exists():
        raise CLIError(f"image {str(image)!r}: no such file or folder")
    if not mask.exists():
        raise CLIError(f"mask {str(mask)!r}: no such file or folder")
    images = _images_in(image) if image.is_dir() else [image]
    if not images:
        raise CLIError(f"folder {str(image)!r} holds no image files")
    if image.is_dir() and mask.is_dir() and image.resolve() == mask.resolve():
        raise CLIError("IMG and MASK are the same folder; put the masks in a folder of their own")
    masks = masks_by_stem(p.name for p in mask.iterdir() if p.is_file()) if mask.is_dir() else {}
    if output is not None and output.exists() and not output.is_dir() and (image.is_dir() or len(images) > 1):
        raise CLIError(f"output {str(output)!r} is a file; a folder of images needs an output folder")
    out_dir: Path | None = None
    if image.is_dir():
        out_dir = output if output is not None else image.parent / f"{image.name}-erased"
    elif output is not None and (output.is_dir() or as_folder):
        out_dir = output
    elif output is not None:
        _check_output_suffix(output, fmt, like=output_suffix(image.name, fmt))
    jobs = []
    for img in images:
        m, error = mask, None
        if mask.is_dir():
            name, error = mask_for(img.stem, masks, folder=str(mask))
            m = None if name is None else mask / name
        suffix = output_suffix(img.name, fmt)
        if out_dir is not None:
            out = out_dir / f"{img.stem}{suffix}"
        elif output is not None:
            out = output
        else:
            out = img.parent / f"{img.stem}.erased{suffix}"
        jobs.append(Job(image=img, mask=m, output=out, error=error))
    inputs = {p.resolve() for job in jobs for p in (job.image, job.mask) if p is not None}
    for job in jobs:
        if job.output.resolve() in inputs:
            raise CLIError(f"output {str(job.output)!r} would overwrite an input; choose another -o")
    outputs = [job.output.resolve() for job in jobs]
    if len(set(outputs)) != len(outputs):
        raise CLIError("several images would be written to the same output file; use an output folder")
    return jobs


def _check_output_suffix(output: Path, fmt: str | None, *, like: str) -> None:
    if not output.suffix:
        raise CLIError(
            f"output {str(output)!r} has no image suffix: name a file such as {output.name}{like}, "
            f"or a folder as {output.name}{os.sep}"
        )
    if fmt is None and format_for_suffix(output.suffix) is None:
        raise CLIError(f"output {str(output)!r}: unknown image suffix {output.suffix!r}")


def _check_writable(jobs: list[Job]) -> None:
    for folder in {job.output.parent for job in jobs}:
        probe = folder
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise CLIError(f"output folder {str(folder)!r}: {str(probe)!r} is not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise CLIError(f"output folder {str(folder)!r} is not writable")


def _console(quiet: bool):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, highlight=False)


def _say(console, text: str) -> None:
    """A line that must reach stderr even with --quiet (errors, the chosen seed)."""
    if console.quiet:
        print(text, file=sys.stderr)
    else:
        console.print(text, markup=False, soft_wrap=True)


@with_erase_options()
def erase_command(
    image: Path = typer.Argument(..., help="Image file, or a folder of images.", show_default=False),
    mask: Path = typer.Argument(
        ..., help="Mask file (white = erase), or a folder of masks matched by file stem.", show_default=False
    ),
    output: str | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Output file (with an image suffix) or folder; missing folders are created "
        "(default: STEM.erased.EXT beside IMG, or IMGDIR-erased/).",
    ),
    model: str | None = model_option(),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    offline: bool = typer.Option(False, "--offline", help="Never contact the Hugging Face hub."),
    compare: bool = typer.Option(False, "--compare", help="Also write STEM.compare.EXT (before | after)."),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable report on stdout."),
    fmt: str | None = typer.Option(None, "--format", help="Output format: png | jpeg | webp | tiff | bmp."),
    backend: str = typer.Option(
        "torch", "--backend", help="UNet backend: torch | onnx (--model FILE.onnx) | trt (--model FILE.plan)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary on stderr."),
    threads: int | None = threads_option(),
    **erase: Any,
) -> None:
    """Erase what MASK covers in IMG and fill it with coherent background."""
    args = dict(
        image=image, mask=mask, output=output, model=model, device=device, offline=offline, compare=compare,
        json_out=json_out, fmt=fmt, backend=backend, quiet=quiet, threads=threads, **erase,
    )  # fmt: skip
    console = _console(quiet)
    try:
        code = _run(console, **args)
    except CLIError as exc:
        fail(str(exc), exc.code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # a bug, not a user error: still one line, no traceback
        from eradiff.errors import first_line

        fail(f"unexpected {type(exc).__name__}: {first_line(exc)}", 1)
    raise typer.Exit(code)


def _check_choices(args: dict) -> str | None:
    """Option values checked without torch; returns the ``--format`` key (None = the input's)."""
    check_device_and_backend(args["device"], args["backend"], args["model"])
    if args["seed"] < -1:
        raise CLIError(f"seed must be ≥ 0, or -1 for a random one; got {args['seed']}", 2)
    try:
        check_threads(args["threads"])
    except ValueError as exc:
        raise CLIError(str(exc), 2) from exc
    if args["fmt"] is None:
        return None
    fmt = format_key(args["fmt"])
    if fmt is None:
        raise CLIError(f"format {args['fmt']!r} is not supported; choose one of {', '.join(FORMATS)}", 2)
    return fmt


def _run(console, **args) -> int:
    started = time.perf_counter()
    # 1. what needs no torch: option values, paths, output folders, the model spec (fails at once)
    fmt = _check_choices(args)
    jobs = plan_jobs(args["image"], args["mask"], args["output"], fmt)
    _check_writable(jobs)
    offline = args["offline"]
    if args["backend"] == "torch":
        try:
            offline = check_model_spec(args["model"], offline=offline)
        except ModelSpecError as exc:
            raise CLIError(str(exc), 1) from exc
    seed = args["seed"]
    if seed == -1:
        seed = secrets.randbelow(2**31)
        _say(console, f"seed: {seed}")
    # 2. the options' ranges (no torch yet), then torch and the pipeline
    options = erase_options_from(args, seed=seed)
    t0 = time.perf_counter()
    apply_threads(args["threads"])
    timings = {"import": time.perf_counter() - t0}
    # 3. the model, then every image
    t0 = time.perf_counter()
    model, device, dtype = _load(args, offline=offline, console=console)
    timings["load"] = time.perf_counter() - t0
    _erase_all(model, jobs, options, fmt=fmt, compare=args["compare"], console=console)
    for phase in ("read", "erase", "write"):
        timings[phase] = sum(job.timings.get(phase, 0.0) for job in jobs)
    failed = [job for job in jobs if job.status == "failed"]
    seconds = time.perf_counter() - started
    timings["total"] = seconds
    _summary(jobs, seconds, console)
    if args["json_out"]:
        report = {
            "model": {"spec": args["model"] or "default", "name": model.name, "family": model.family,
                      "device": str(device), "dtype": str(dtype).removeprefix("torch."), "backend": args["backend"],
                      "load_seconds": round(timings["load"], 4)},
            "options": asdict(options),
            "seed": seed,
            "runtime": runtime_report(),
            "images": [
                {"image": str(j.image), "mask": None if j.mask is None else str(j.mask), "output": str(j.output),
                 "compare": None if j.compare is None else str(j.compare), "status": j.status, "error": j.error,
                 "warnings": j.warnings, "report": j.report}
                for j in jobs
            ],
            "summary": {"ok": sum(j.status != "failed" for j in jobs), "failed": len(failed),
                        "copied": sum(j.status == "copied" for j in jobs), "seconds": round(seconds, 4)},
            "timings": {k: round(v, 4) for k, v in timings.items()},
        }  # fmt: skip
        print(json.dumps(report, indent=2))
    return 1 if failed else 0


def _load(args: dict, *, offline: bool, console):
    """The model on its device: ``(model, device, dtype)``; a load error is a one-line CLIError."""
    with console.status("loading model…"):
        return load_erasure_model(args["model"], backend=args["backend"], device=args["device"], offline=offline)


def _erase_all(model, jobs: list[Job], options, *, fmt: str | None, compare: bool, console) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=console.quiet) as bar:
        images_task = bar.add_task("images", total=len(jobs))
        steps_task = bar.add_task("steps", total=None)
        for job in jobs:
            bar.update(steps_task, description=f"steps · {job.image.name}", completed=0, total=None)

            def on_step(window: int, windows: int, step: int, steps: int, name: str = job.image.name) -> None:
                label = f"steps · {name}" + (f" · window {window}/{windows}" if windows > 1 else "")
                bar.update(steps_task, description=label, completed=step, total=steps)

            _erase_one(model, job, options, fmt=fmt, compare=compare, progress=on_step)
            if job.status == "failed":
                _say(console, f"error: {job.error}")
            for warning in job.warnings:
                console.print(f"[yellow]warning[/yellow] {job.image.name}: {warning}")
            bar.advance(images_task)


def _erase_one(model, job: Job, options, *, fmt: str | None, compare: bool, progress) -> None:
    """Read, erase, encode, then write atomically; failures are recorded on the job, never raised."""
    from eradiff.pipeline.files import erase_file, failure_message
    from eradiff.pipeline.io import atomic_write, encode_image, side_by_side

    if job.error is not None:
        job.status = "failed"
        return
    try:
        assert job.mask is not None  # plan_jobs gives every job without an error its mask
        made = erase_file(model, job.image, job.mask, options, output=job.output, fmt=fmt, progress=progress)
        job.warnings.extend(made.warnings)
        t0 = time.perf_counter()
        compare_data = None
        if compare:
            compare_data = encode_image(side_by_side(made.loaded.pixels, made.result.image), made.format,
                                        like=made.loaded)  # fmt: skip
        job.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(job.output, made.data)
        if compare_data is not None:
            job.compare = job.output.with_name(f"{job.output.stem}.compare{job.output.suffix}")
            atomic_write(job.compare, compare_data)
        t = made.timings
        job.timings = {"read": t["read"], "erase": t["erase"], "write": t["encode"] + time.perf_counter() - t0}
        job.report = made.result.report.to_dict()
        job.status = "copied" if made.copied else "ok"
    except Exception as exc:  # one line per failed image; the run goes on
        job.status, job.error = "failed", failure_message(exc, image=job.image, output=job.output)


def _summary(jobs: list[Job], seconds: float, console) -> None:
    """One line for one image (nothing more after its error line); a table first for a batch.

    A failed image's error was printed when it failed: the table shows its status only.
    """
    counts = {status: sum(job.status == status for job in jobs) for status in ("ok", "copied", "failed")}
    if len(jobs) == 1:
        job = jobs[0]
        if job.status == "ok":
            windows = len(job.report["windows"])
            console.print(f"erased {job.image.name} → {job.output} ({windows} window{'s' * (windows != 1)}) "
                          f"in {seconds:.1f} s", markup=False, soft_wrap=True)  # fmt: skip
        elif job.status == "copied":
            console.print(f"copied {job.image.name} unchanged → {job.output} (the mask is empty)", markup=False,
                          soft_wrap=True)  # fmt: skip
        return
    from rich.table import Table

    table = Table(title=None, show_edge=False, box=None, pad_edge=False)
    for column in ("image", "status", "windows", "seconds", "output"):
        table.add_column(column)
    for job in jobs:
        windows = len(job.report["windows"]) if job.report else 0
        secs = f"{job.report['seconds']:.2f}" if job.report else "-"
        colour = {"ok": "green", "copied": "yellow", "failed": "red"}.get(job.status, "white")
        shown = str(job.output) if job.status != "failed" else "-"
        table.add_row(job.image.name, f"[{colour}]{job.status}[/{colour}]", str(windows), secs, shown)
    console.print(table)
    parts = [f"{counts['ok']} erased"] + [f"{counts[k]} {k}" for k in ("copied", "failed") if counts[k]]
    console.print(f"{len(jobs)} images: {', '.join(parts)} in {seconds:.1f} s")
