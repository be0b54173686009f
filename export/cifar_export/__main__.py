"""`python -m cifar_export` runs the CLI."""

from cifar_export.cli import app

app(prog_name="cifar-export")
