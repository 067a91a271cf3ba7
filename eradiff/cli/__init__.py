"""The `eradiff` command line (Typer). Parsing only: every command calls a library function."""

from eradiff.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
