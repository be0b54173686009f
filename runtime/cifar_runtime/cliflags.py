"""What every CLI of the repository shares: the exit-code epilog of its --help and its --version flag."""

from __future__ import annotations

import textwrap
from typing import Any

import typer

from cifar_runtime.exitcodes import MEANINGS

CLIS = ("cifar-infer", "cifar-ray", "cifar-train", "cifar-export")


def exit_codes_epilog(prog: str) -> str:
    """The exit-code table for `prog --help` (\\b: click keeps the lines as they are)."""
    others = ", ".join(c for c in CLIS if c != prog)
    codes = "\n".join(
        textwrap.fill(text, 96, initial_indent=f"  {code:<3}  ", subsequent_indent=" " * 7)
        for code, text in MEANINGS.items()
    )
    return f"\b\nExit codes (the same in {others}):\n{codes}"


def version_flag(line: str) -> Any:
    """A typer.Option for --version that prints `line` and exits 0."""

    def show(value: bool) -> None:
        if value:
            typer.echo(line)
            raise typer.Exit()

    return typer.Option("--version", callback=show, is_eager=True, help="Show the version and exit.")
