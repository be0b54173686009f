"""Rich tables for what the commands measured; the CLI prints them, the JSON files hold the same numbers."""

from __future__ import annotations

from rich import box
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


def bench_table(summary: dict) -> Table:
    """One row per engine, as measured in its own process."""
    cfg = summary["provenance"]["config"]
    table = Table(
        title=f"bench: {summary['arch']}, {summary['checkpoint']}",
        caption=f"p50/p99: batch-1 latency; img/s: batch-{cfg['throughput_batch']} throughput; RSS: peak of the "
        f"engine's own process; top-1 on {summary['image_count']} images of {summary['images']}",
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE,
    )
    table.add_column("engine", no_wrap=True)
    for col in ("file MB", "p50 ms", "p99 ms", "img/s", "RSS MB", "top-1 %", "check"):
        table.add_column(col, justify="right")
    for row in summary["rows"]:
        r = row["result"]
        checked = "yes" if row["checked"] else "[red]FAILED[/]"
        if r is None:
            table.add_row(
                row["engine"], f"{row['file_mb']:.1f}", f"[red]error: {row['error']}[/]", "", "", "", "", checked
            )
            continue
        table.add_row(
            row["engine"] + ("" if row["device"] == "cpu" else f" ({row['device']})"),
            f"{row['file_mb']:.1f}",
            f"{r['latency_p50_ms']:.2f}",
            f"{r['latency_p99_ms']:.2f}",
            f"{r['throughput_ips']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['top1']:.2f}",
            checked,
        )
    return table


def ratio_lines(summary: dict) -> list[str]:
    """The speed-ups this run measured, beside the targets the README states."""
    batch = summary["provenance"]["config"]["throughput_batch"]
    names = {
        "ort_fp32_vs_eager_throughput": (f"ORT fp32 / eager, batch-{batch} throughput", "target >= 2"),
        "ort_fp32_vs_eager_latency_p50": ("ORT fp32 / eager, batch-1 p50 latency", "target <= 0.6"),
        "ort_int8_vs_fp32_latency_p50": ("ORT int8 / fp32, batch-1 p50 latency", "target <= 0.7"),
    }
    return [f"{names[k][0]}: {v:.2f}x ({names[k][1]})" for k, v in summary["ratios"].items()]
