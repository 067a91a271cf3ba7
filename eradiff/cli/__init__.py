"""The `eradiff` command line (Typer). Parsing only: every command calls a library function."""

from eradiff.cli.app import app
from eradiff.cli.threads import passive_wait_default


def main() -> None:
    passive_wait_default()  # before any command imports torch (OpenMP reads it once, at load)
    app()


__all__ = ["app", "main"]
