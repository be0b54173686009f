"""One engine, alone in its own process so that its peak RSS is its own: `python -m benchmarks.engine_worker SPEC`.

SPEC is a JSON object (engine, model, inputs, labels, shape, device, latency_runs, throughput_batch,
throughput_runs). Prints one JSON line of measurements; benchmarks.engines measures its peak RSS from outside
(benchmarks.measure). Only numpy is imported up front: the ONNX Runtime engines run through cifar_runtime and never
load torch, as in a user's torch-free install.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cifar_export.engines import Engine, onnx_engine

# Calls before timing, at each batch size: first calls allocate and pick kernels, and TorchScript's profiling
# executor re-optimises the graph during its first few calls at a new shape.
WARMUP_RUNS = 10
TIME_CAP_S = 20.0  # stop timed runs after this long (ResNet18 at 224 on a CPU), keeping at least MIN_RUNS
MIN_RUNS = {"latency": 20, "throughput": 1}


def load(engine: str, model: Path, device: str) -> Engine:
    """The engine to measure; torch is imported only for the torch engines."""
    if engine.startswith("ort-"):
        return onnx_engine(model, device)
    from cifar_export.formats import open_engine

    return open_engine(model)


def timed(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, runs: int, kind: str) -> list[float]:
    """Seconds per call, for up to `runs` calls or TIME_CAP_S, whichever ends first."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs and (len(times) < MIN_RUNS[kind] or time.perf_counter() - start < TIME_CAP_S):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return times


def measure(spec: dict) -> dict[str, object]:
    shape = tuple(spec["shape"])  # (N, 3, H, W) of the float32 inputs file
    per_image = int(np.prod(shape[1:]))

    def read(start: int, count: int) -> np.ndarray:
        # A plain read per batch, not a memory map: mapped pages would count in RSS and blur the figure.
        x = np.fromfile(spec["inputs"], dtype=np.float32, count=count * per_image, offset=start * per_image * 4)
        return x.reshape(-1, *shape[1:])

    t0 = time.perf_counter()
    engine = load(spec["engine"], Path(spec["model"]), spec["device"])
    run = engine.run
    load_s = time.perf_counter() - t0

    one = read(0, 1)
    for _ in range(WARMUP_RUNS):
        run(one)
    latency = np.array(timed(run, one, spec["latency_runs"], "latency")) * 1e3  # ms

    batch = spec["throughput_batch"]
    big = read(0, min(batch, shape[0]))
    big = np.ascontiguousarray(np.resize(big, (batch, *shape[1:])))  # repeat the images up to a full batch
    for _ in range(WARMUP_RUNS if len(big) <= 64 else 2):  # warm-up at this size (fewer when batches are big)
        run(big)
    throughput = timed(run, big, spec["throughput_runs"], "throughput")

    labels = np.load(spec["labels"])
    correct = 0
    for start in range(0, shape[0], batch):
        x = read(start, min(batch, shape[0] - start))
        correct += int((run(x).argmax(1) == labels[start : start + len(x)]).sum())

    return {
        "engine": spec["engine"],
        "runs_on": engine.runs_on,
        "load_s": load_s,
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p99_ms": float(np.percentile(latency, 99)),
        "latency_runs": len(latency),
        "throughput_ips": batch * len(throughput) / sum(throughput),
        "throughput_runs": len(throughput),
        "top1": 100.0 * correct / shape[0],
        "images": shape[0],
    }


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
