"""One engine, alone in its own process so that its peak RSS is its own: `python -m cifar_export.bench_worker SPEC`.

SPEC is a JSON object (engine, model, inputs, labels, shape, device, latency_runs, throughput_batch,
throughput_runs). Prints one JSON line of measurements. Only numpy is imported up front: the ONNX Runtime
engines run through cifar_runtime and never load torch, as in a user's torch-free install.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

WARMUP_RUNS = 10  # batch-1 runs before timing: first calls allocate and pick kernels
TIME_CAP_S = 20.0  # stop timed runs after this long (ResNet18 at 224 on a CPU), keeping at least MIN_RUNS
MIN_RUNS = {"latency": 20, "throughput": 1}

Runner = Callable[[np.ndarray], np.ndarray]


def load(engine: str, model: Path, device: str) -> tuple[Runner, str]:
    """The engine's runner and what it runs on; torch is imported only for the torch engines."""
    if engine.startswith("ort-"):
        from cifar_runtime.session import open_session

        session = open_session(model, device=device)
        name = session.get_inputs()[0].name
        return (lambda x: session.run(None, {name: x})[0]), session.get_providers()[0]
    import torch

    if engine == "torch-eager":
        from cifar_train.checkpoint import load_checkpoint, model_from_checkpoint

        module = model_from_checkpoint(load_checkpoint(model))
    else:
        module = torch.jit.load(str(model), map_location="cpu")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run, f"torch cpu, {torch.get_num_threads()} threads"


def timed(run: Runner, x: np.ndarray, runs: int, kind: str) -> list[float]:
    """Seconds per call, for up to `runs` calls or TIME_CAP_S, whichever ends first."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs and (len(times) < MIN_RUNS[kind] or time.perf_counter() - start < TIME_CAP_S):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return times


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark: model + runtime + one batch of inputs."""
    # VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across exec, so a worker started from a
    # 1 GB parent would report the parent's peak.
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # other Unixes: no /proc


def measure(spec: dict) -> dict[str, object]:
    shape = tuple(spec["shape"])  # (N, 3, H, W) of the float32 inputs file
    per_image = int(np.prod(shape[1:]))

    def read(start: int, count: int) -> np.ndarray:
        # A plain read per batch, not a memory map: mapped pages would count in RSS and blur the figure.
        x = np.fromfile(spec["inputs"], dtype=np.float32, count=count * per_image, offset=start * per_image * 4)
        return x.reshape(-1, *shape[1:])

    t0 = time.perf_counter()
    run, runs_on = load(spec["engine"], Path(spec["model"]), spec["device"])
    load_s = time.perf_counter() - t0

    one = read(0, 1)
    for _ in range(WARMUP_RUNS):
        run(one)
    latency = np.array(timed(run, one, spec["latency_runs"], "latency")) * 1e3  # ms

    batch = spec["throughput_batch"]
    big = read(0, min(batch, shape[0]))
    big = np.ascontiguousarray(np.resize(big, (batch, *shape[1:])))  # repeat the images up to a full batch
    run(big)  # warm-up at this size
    throughput = timed(run, big, spec["throughput_runs"], "throughput")

    labels = np.load(spec["labels"])
    correct = 0
    for start in range(0, shape[0], batch):
        x = read(start, min(batch, shape[0] - start))
        correct += int((run(x).argmax(1) == labels[start : start + len(x)]).sum())

    return {
        "engine": spec["engine"],
        "runs_on": runs_on,
        "load_s": load_s,
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p99_ms": float(np.percentile(latency, 99)),
        "latency_runs": len(latency),
        "throughput_ips": batch * len(throughput) / sum(throughput),
        "throughput_runs": len(throughput),
        "top1": 100.0 * correct / shape[0],
        "images": shape[0],
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
