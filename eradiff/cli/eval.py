"""``eradiff eval``: measure erasure methods on (input, mask, ground truth) triples.

Triples come from a folder (``--triples DIR`` with images/, masks/, gt/) or are synthesized by
pasting objects onto photos with a seed (``--manifest data/debian/manifest.json --split val``, or
``--objects DIR --backgrounds DIR``). Methods are specs ``NAME=KIND[:key=value,...]`` (see
:mod:`eradiff.eval.methods`), e.g.::

    eradiff eval --manifest data/debian/manifest.json --split val --count 100 --seed 0 \\
        -m eradiff=default -m "w/o SRA=default:sra=false" -m telea -m ns --out runs/eval

Writes ``report.json``, ``table.md`` and ``figure.png`` to ``--out`` and prints the table. Errors
are one line on stderr with exit code 2.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import NoReturn

import typer

from eradiff.cli._common import fail
from eradiff.cli.threads import apply_threads, check_threads, threads_option

DEFAULT_METHODS = ("eradiff=default", "telea", "ns")


def _fail(message: str, code: int = 2) -> NoReturn:
    fail(message, code)  # eval's errors are option errors (2) unless said otherwise


def eval_command(
    triples: Path | None = typer.Option(None, "--triples", help="Folder with images/, masks/, gt/ (matched by stem)."),
    manifest: Path | None = typer.Option(None, "--manifest", help="Synthesize from a Debian data manifest."),
    split: str = typer.Option("val", "--split", help="Manifest split to synthesize from (train or val)."),
    objects: Path | None = typer.Option(None, "--objects", help="Synthesize: folder of RGBA cut-outs."),
    backgrounds: Path | None = typer.Option(None, "--backgrounds", help="Synthesize: folder of photos."),
    count: int = typer.Option(100, "--count", min=2, help="Synthesized triples."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the synthesized triples."),
    max_side: int = typer.Option(1024, "--max-side", min=64, help="Longest side of synthesized images."),
    save_triples: Path | None = typer.Option(None, "--save-triples", help="Write the synthesized triples here."),
    method: list[str] = typer.Option(  # noqa: B006 (typer needs a list default)
        list(DEFAULT_METHODS), "--method", "-m", help="Method spec NAME=KIND[:k=v,...]; repeatable."
    ),
    out: Path = typer.Option(
        Path("runs/eval"), "--out", "-o", help="Output folder (report.json, table.md, figure.png)."
    ),
    no_fid: bool = typer.Option(False, "--no-fid", help="Skip FID/KID/Local FID (no Inception weights needed)."),
    whole_vgg: bool = typer.Option(
        False, "--whole-image-vgg", help="Also LPIPS-vgg and DISTS on whole images (slow on a CPU)."
    ),
    device: str = typer.Option("cpu", "--device", help="Device for models: cpu, cuda, mps or auto."),
    examples: int = typer.Option(3, "--examples", min=0, help="Example rows in the figure."),
    threads: int | None = threads_option(),
) -> None:
    """Measure erasure methods (models and classical baselines) on triples."""
    try:
        check_threads(threads)
    except ValueError as exc:
        _fail(str(exc))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from eradiff.errors import EraDiffError, first_line
    from eradiff.eval import report
    from eradiff.eval.methods import MethodSpecError, build_method
    from eradiff.eval.run import Metrics, evaluate
    from eradiff.eval.triples import TripleError, load_triples, synthesize_triples
    from eradiff.eval.triples import save_triples as save_triples_to
    from eradiff.metrics.weights import MetricWeightsUnavailable

    apply_threads(threads)
    console = Console(stderr=True, highlight=False)
    sources = [triples is not None, manifest is not None, objects is not None or backgrounds is not None]
    if sum(sources) != 1:
        _fail("give exactly one of --triples, --manifest, or --objects with --backgrounds")
    try:
        if triples is not None:
            cases = load_triples(triples)
        else:
            from eradiff.train.sources import CutoutSource

            if manifest is not None:
                if not manifest.is_file():
                    _fail(f"manifest not found: {manifest} (fetch it with python -m eradiff.train.datasets.debian)")
                source = CutoutSource.from_manifest(manifest, split=split)
            else:
                if objects is None or backgrounds is None:
                    _fail("--objects and --backgrounds go together")
                source = CutoutSource.from_folders(objects, backgrounds)
            cases = synthesize_triples(source, count=count, seed=seed, max_side=max_side)
            if save_triples is not None:
                save_triples_to(cases, save_triples)
        cache: dict = {}
        methods = [build_method(spec, device=device, model_cache=cache) for spec in method]
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            _fail(f"method names must be unique, got {names}")
        metrics = Metrics.load(set_level=not no_fid)
    except (TripleError, MethodSpecError, EraDiffError, MetricWeightsUnavailable, ValueError, OSError) as e:
        _fail(first_line(e))

    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        tasks = {n: bar.add_task(n, total=len(cases)) for n in names}

        def on_progress(name: str, done: int, total: int) -> None:
            bar.update(tasks[name], completed=done)

        try:
            results = evaluate(
                methods, cases, metrics=metrics, keep_outputs=examples, progress=on_progress, whole_image_vgg=whole_vgg
            )
        except (EraDiffError, ValueError, RuntimeError) as e:
            _fail(first_line(e))
    meta = {
        "triples": str(triples) if triples else f"synthesized: {manifest or (objects, backgrounds)} split={split}",
        "count": len(cases),
        "seed": seed,
        "methods": list(method),
        "seconds": time.perf_counter() - start,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, out / "report.json", meta=meta)
    (out / "table.md").write_text(report.markdown_table(results) + "\n")
    if examples:
        report.write_figure(results, cases, out / "figure.png", examples=examples)
    Console().print(report.rich_table(results))
    console.print(f"wrote {out / 'report.json'}, {out / 'table.md'}" + (f", {out / 'figure.png'}" if examples else ""))
