"""The benchmark command: its soak arithmetic on known samples, and (slow) a whole run on the fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.runtime import BenchConfig, Run, run_bench, soak_summary


def test_soak_summary_reads_rss_drift_and_rates_per_tenth() -> None:
    # 1000 rows at 100 rows/s; RSS 100 MB until row 200, then 105 MB
    samples = [(t / 10, int(10 * t), 100.0 if 10 * t < 200 else 105.0) for t in range(0, 1001)]
    summary = soak_summary(Run(100.0, 110.0, 1000, None, 0, samples), 1000)
    assert summary["rss_after_first_tenth_mb"] == 100.0 and summary["rss_at_end_mb"] == 105.0
    assert summary["rss_drift_percent"] == pytest.approx(5.0)
    assert summary["rates"] == [100] * 10


@pytest.mark.slow
def test_bench_runs_end_to_end_on_the_fixture(cifar_fixture: Path) -> None:
    lines: list[str] = []
    cfg = BenchConfig(cifar_fixture / "test", photos=4, soak=2, batch_sizes=(8,), model_seconds=0.1)
    result = run_bench(cfg, say=lines.append)
    assert len(lines) == 7 and result["images"] == 300
    assert 0 < result["folder"]["peak_rss_mb"] < 400 and 0 < result["hostile"]["peak_rss_mb"] < 400
    assert result["accuracy"]["fp32"] > 70 and result["accuracy"]["int8"] > 70
    assert result["soak"]["images"] == 600 and result["large_jpegs"]["photos"] == 4
