"""Typer application object; sub-commands register themselves here."""

import typer

import eradiff

app = typer.Typer(
    name="eradiff",
    help="Erase objects from images with a diffusion model (EraDiff: CRO + SRA).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"eradiff {eradiff.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


from eradiff.cli.erase import erase_command  # noqa: E402  (commands register below the app)

app.command("erase", no_args_is_help=True)(erase_command)

from eradiff.cli.train import train_command  # noqa: E402

app.command("train")(train_command)

from eradiff.cli.eval import eval_command  # noqa: E402

app.command("eval")(eval_command)

from eradiff.cli.serve import serve_command  # noqa: E402

app.command("serve")(serve_command)

from eradiff.cli.export import export_command  # noqa: E402

app.command("export", no_args_is_help=True)(export_command)

from eradiff.cli.batch import batch_command  # noqa: E402

app.command("batch", no_args_is_help=True)(batch_command)
