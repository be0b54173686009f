"""`cifar-infer` against `cifar-ray classify` on one folder: images/s and the peak memory of each whole job.

    python -m benchmarks.ray FOLDER [--model FILE] [--batch-size N] [--actors N]     (in a venv with ./runtime[ray])

Each runs as its own process tree; wall seconds include start-up; "img/s run" is what the command's own summary line
reports (classification only); memory is the tree's (the driver, Ray's daemons and every worker), sampled every
0.1 s as the sum of RSS (shared pages counted in every process) and of PSS (shared pages divided among them).
Then whether the two agree on every label.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import Measured, run_measured


def measure(module_args: list[str]) -> Measured:
    """`python -m MODULE ARGS...` to its end, with its process tree's memory; it must exit 0."""
    run = run_measured([sys.executable, "-m", *module_args], tree=True, every=0.1)
    if run.returncode != 0:
        raise SystemExit(f"{module_args[0]} exited {run.returncode}: {run.stderr.strip()[-300:]}")
    return run


def labels(jsonl: Path) -> dict[str, tuple[str | None, float | None]]:
    rows = (json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines())
    return {row["path"]: (row.get("label"), row.get("confidence")) for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--actors", type=int)
    args = parser.parse_args()
    common = [
        str(args.folder),
        "--batch-size",
        str(args.batch_size),
        *(["--model", str(args.model)] if args.model else []),
    ]
    with tempfile.TemporaryDirectory(prefix="cifar-ray-bench-") as tmp:
        outs = {name: Path(tmp) / f"{name}.jsonl" for name in ("cifar-infer", "cifar-ray")}
        actors = ["--actors", str(args.actors)] if args.actors else []
        runs = {
            "cifar-infer": measure(["cifar_runtime", *common, "-f", "jsonl", "-o", str(outs["cifar-infer"])]),
            "cifar-ray": measure(["cifar_runtime.ray_cli", "classify", *common, *actors, "-o", str(outs["cifar-ray"])]),
        }
        rows = {name: labels(out) for name, out in outs.items()}
    print(f"{'':<12} {'images':>7} {'wall s':>7} {'img/s':>7} {'img/s run':>9} {'peak RSS':>10} {'peak PSS':>10}")
    for name, run in runs.items():
        n = len(rows[name])
        rates = re.findall(r"([\d.]+) images/s", run.stderr)
        print(
            f"{name:<12} {n:>7} {run.seconds:>7.1f} {n / run.seconds:>7.0f} {float(rates[-1]) if rates else 0:>9.0f} "
            f"{run.peak_rss_mb:>6.0f} MiB {run.peak_pss_mb or 0:>6.0f} MiB"
        )
    a, b = rows["cifar-infer"], rows["cifar-ray"]
    same = sum(a[p][0] == b.get(p, (None,))[0] for p in a)
    drift = max((abs(a[p][1] - b[p][1]) for p in a if p in b and a[p][1] is not None), default=0.0)
    print(f"labels agree on {same}/{len(a)} files; largest confidence difference {drift:.6f}")
    raise SystemExit(0 if same == len(a) == len(b) else 1)


if __name__ == "__main__":
    main()
