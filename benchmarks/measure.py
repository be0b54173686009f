"""The one way this repository measures a command: wall time and the peak memory of its process (or process tree).

A child's peak is read from Linux's /proc: VmHWM, the kernel's own high-water mark of the process's resident set,
for one process; for a tree (Ray's daemons and workers), the sums of VmRSS and of PSS over every live descendant,
sampled every `every` seconds. getrusage's ru_maxrss is no use here: Linux carries it across fork and exec, so a
child would report its parent's peak. Standard library only: it runs in every venv, the torch-free ones included.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MIB = 2**20


@dataclass(frozen=True)
class Measured:
    """One command run to its end."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall time, process start to exit
    peak_rss_mb: (
        float  # one process: its VmHWM; a tree: the largest sum of VmRSS seen (shared pages counted per process)
    )
    peak_pss_mb: float | None = None  # a tree: the largest sum of PSS seen (shared pages divided among processes)


def run_measured(
    cmd: list[str],
    stdin: str | None = None,
    tree: bool = False,
    every: float = 0.02,
    on_sample: Callable[[float, float], None] | None = None,
) -> Measured:
    """Run `cmd` to its end and measure it (stdout and stderr captured as text); `on_sample(seconds, rss_mb)` is
    called at every sample with the current resident set (of the tree, with `tree`)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    peaks = [0, 0]  # kB: RSS (VmHWM for one process), PSS
    sampler = threading.Thread(target=_sample, args=(proc, start, tree, every, on_sample, peaks), daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate(stdin)  # feeds stdin and drains both pipes, however large
    sampler.join()
    return Measured(
        proc.returncode, stdout, stderr, time.perf_counter() - start, peaks[0] / 1024, peaks[1] / 1024 if tree else None
    )


def _sample(
    proc: subprocess.Popen[str],
    start: float,
    tree: bool,
    every: float,
    on_sample: Callable[[float, float], None] | None,
    peaks: list[int],
) -> None:
    while proc.poll() is None:
        if tree:
            pids = [proc.pid, *_descendants(proc.pid)]
            rss_kb = sum(_status_kb(p, "VmRSS") for p in pids)
            peaks[0] = max(peaks[0], rss_kb)
            peaks[1] = max(peaks[1], sum(_pss_kb(p) for p in pids))
        else:
            rss_kb = _status_kb(proc.pid, "VmRSS")
            peaks[0] = max(peaks[0], _status_kb(proc.pid, "VmHWM"))
        if on_sample is not None and rss_kb:
            on_sample(time.perf_counter() - start, rss_kb / 1024)
        time.sleep(every)


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError):  # the process ended between listing and reading
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found
