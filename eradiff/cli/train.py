"""``eradiff train``: fine-tune an erasure model with Chain-Rectifying Optimization.

Parsing only: the work is :func:`eradiff.train.loop.train`. Commands::

    # one process (CPU, or the first GPU accelerate finds)
    eradiff train --config configs/tiny-test.yaml --output runs/tiny

    # override any config key (values are YAML), shorten a run
    eradiff train --config cfg.yaml --set optim.lr=1e-4 --set objective.kind=standard --max-steps 500

    # continue: the newest checkpoint of the run folder (a fresh start when there is none) ...
    eradiff train --config cfg.yaml --resume latest
    # ... or a given checkpoint (its own config.yaml is used when --config is left out)
    eradiff train --resume runs/tiny/ckpt-00000020

    # several processes / GPUs / machines: the same arguments after accelerate's own
    accelerate launch --multi_gpu --num_processes 2 -m eradiff.cli train --config cfg.yaml
    accelerate launch --multi_gpu --num_machines 2 --machine_rank R --main_process_ip HOST \
        --num_processes 16 -m eradiff.cli train --config cfg.yaml

On a machine without a GPU the ``--multi_gpu`` command starts CPU processes on gloo (eradiff asks
accelerate for the CPU when it is launched as several processes and finds no GPU); accelerate's
own ``--cpu`` flag starts a single process whatever ``--num_processes`` says.

``train.batch_size`` is the global batch, so the same config gives the same run on any number of
processes. The run folder gets ``config.yaml`` (resolved), ``run.json`` (versions),
``metrics.jsonl``, ``samples/``, ``ckpt-XXXXXXXX/`` and, at the end, ``model.safetensors``
(EMA weights) that ``eradiff erase --model`` loads. Errors are one line on stderr: exit code 2
for a bad config or option, 1 for anything else.
"""

from __future__ import annotations

from pathlib import Path

import typer


def train_command(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML training config (see eradiff/train/config.py for every key)."
    ),
    resume: str | None = typer.Option(
        None, "--resume", help="'latest' (newest checkpoint of the run folder) or a checkpoint / run folder."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run folder (overrides output_dir)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Overrides train.max_steps."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config key: --set section.key=value (repeatable; value parsed as YAML)."
    ),
) -> None:
    """Train an erasure model with CRO (paper Sec. 4.1, Algorithm 1) on accelerate."""
    from eradiff.errors import EraDiffError
    from eradiff.train.build import DataError
    from eradiff.train.checkpoint import CheckpointError, resolve_resume
    from eradiff.train.config import ConfigError, load_config
    from eradiff.train.loop import NonFiniteLossError, train

    extra = list(overrides)
    if max_steps is not None:
        extra.append(f"train.max_steps={max_steps}")
    try:
        resume_dir = None
        if resume is not None and resume != "latest":
            resume_dir = resolve_resume(resume, Path("."))
        if config is None:
            if resume_dir is None:
                raise ConfigError("--config is required (or --resume with a checkpoint folder that holds config.yaml)")
            config = resume_dir / "config.yaml"
        if output is not None:
            extra.append(f"output_dir={output}")
        elif resume_dir is not None:
            extra.append(f"output_dir={resume_dir.parent}")
        cfg = load_config(config, extra)
        result = train(cfg, resume=resume_dir if resume_dir is not None else resume)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except (DataError, CheckpointError, NonFiniteLossError, EraDiffError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if result.export_path is not None:
        finite = [x for x in result.losses if x == x]
        last = f"{sum(finite[-10:]) / len(finite[-10:]):.5f}" if finite else "n/a"
        typer.echo(
            f"trained to step {result.step} (mean loss of the last steps {last}, "
            f"{result.nonfinite_steps} non-finite steps skipped); weights: {result.export_path}",
            err=True,
        )
