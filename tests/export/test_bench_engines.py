"""The engine benchmark: each engine measured in its own process; ONNX Runtime's without torch loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.engines import ratio_lines
from cifar_export.images import load_images
from cifar_runtime import Classifier

# Runs the worker for the ORT engine, then reports whether anything imported torch on the way.
PROBE = """
import json, sys
from benchmarks.engine_worker import measure
result = measure(json.loads(sys.argv[1]))
print(json.dumps({**result, "torch_loaded": "torch" in sys.modules}))
"""


def test_ort_worker_measures_without_torch(cnn_exported: Path, tmp_path: Path) -> None:
    info = Classifier(cnn_exported / "cnn.onnx", device="cpu").info
    images = load_images("", "test", info, limit=20)
    images.inputs.tofile(tmp_path / "inputs.f32")
    np.save(tmp_path / "labels.npy", images.labels)
    spec = {
        "engine": "ort-fp32",
        "model": str(cnn_exported / "cnn.onnx"),
        "device": "cpu",
        "inputs": str(tmp_path / "inputs.f32"),
        "labels": str(tmp_path / "labels.npy"),
        "shape": list(images.inputs.shape),
        "latency_runs": 25,
        "throughput_batch": 8,
        "throughput_runs": 2,
    }
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(spec)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert not result["torch_loaded"]
    assert result["latency_runs"] == 25 and result["throughput_runs"] == 2 and result["images"] == 20
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"]
    assert result["throughput_ips"] > 0 and result["runs_on"] == "CPUExecutionProvider"
    # its top-1 is the model's on these images, as the runtime session computes it directly
    logits = Classifier(cnn_exported / "cnn.onnx", device="cpu").logits(images.inputs)
    assert result["top1"] == pytest.approx(100 * np.mean(logits.argmax(1) == images.labels))


@pytest.mark.slow
def test_bench_runs_every_engine_on_a_random_cnn(tmp_path: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "benchmarks.engines",
        "--arch",
        "cnn",
        "--out",
        str(tmp_path),
        "--limit",
        "64",
        "--latency-runs",
        "20",
        "--throughput-batch",
        "32",
        "--throughput-runs",
        "2",
        "--calibration-count",
        "64",
    ]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "bench.json").read_text())
    engines = [r["engine"] for r in summary["rows"]]
    assert engines[:5] == ["torch-eager", "ort-fp32", "torch-export", "torchscript", "ort-int8"]
    for row in summary["rows"]:
        assert row["result"] and not row["error"], row
        assert 20 < row["result"]["peak_rss_mb"] < 2000  # each engine's own process
    assert set(summary["ratios"]) >= {"ort_fp32_vs_eager_throughput", "ort_int8_vs_fp32_latency_p50"}
    assert "ort-int8" in result.stdout


def test_ratio_lines_name_the_throughput_batch_that_was_measured() -> None:
    summary = {"provenance": {"config": {"throughput_batch": 32}}, "ratios": {"ort_fp32_vs_eager_throughput": 2.5}}
    (line,) = ratio_lines(summary)
    assert "batch-32 throughput" in line and "256" not in line
