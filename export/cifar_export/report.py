"""The parity table the CLI prints; the JSON report beside each file holds the same numbers."""

from __future__ import annotations

from rich.table import Table

from cifar_export.parity import ParityReport


def parity_table(name: str, report: ParityReport) -> Table:
    """One row per batch size: the four parity numbers and both accuracies."""
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    title = f"{name} ({report.precision}) vs {report.reference}: {verdict}"
    table = Table(title=title, title_justify="left")
    # Short headers so the table fits 80 columns (CI logs, pipes).
    for col in ("batch", "images", "max |Δ|", "max rel", "agree %", "softmax Δ", "top-1 %", "orig %"):
        table.add_column(col, justify="right")
    for r in report.rows:
        table.add_row(
            str(r.batch_size),
            str(r.images),
            f"{r.max_abs:.2e}",
            f"{r.max_rel:.2e}",
            f"{r.top1_agreement:.2f}",
            f"{r.softmax_max_diff:.2e}",
            f"{r.accuracy:.2f}",
            f"{report.reference_accuracy:.2f}",
        )
    return table
