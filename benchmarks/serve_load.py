"""A load test of `cifar-infer serve` on loopback, bounded in requests and time, against `cifar-infer` on the same
images as the ceiling.

    python -m benchmarks.serve_load FOLDER [--model FILE] [--out serve_load.json]     (needs ./runtime[serve])

1. closed loop: each of C clients posts one image (the raw body) and waits for the answer, C in 1, 8, 32, 64, with
   batching on (the defaults) and off (--max-batch 1): requests/s and p50/p95/p99 latency;
2. the ceiling: `cifar-infer FOLDER` (the same images, process start to exit) in images/s;
3. open loop (requests start at a fixed rate whatever the answers, as real traffic arrives) at half the saturation
   rate and at twice it: only 200 and 429 expected, and the p99 of the 200s;
4. a soak: SOAK requests at 8 clients, the server's RSS after the first tenth and at the end;
5. SIGTERM under load: every request answered 200 or the draining 503, none left unanswered, exit code 0.

The service runs with its default flags. The client is a few lines of asyncio (keep-alive connections, one request
per connection at a time, requests encoded once), so that it takes little of the two cores it shares with the
service; a client on another machine would leave the service more. Figures are for the two together.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import run_measured

try:  # the client's event loop: uvloop's where the [serve] extra installed it (as the service's), else asyncio's
    from uvloop import run
except ImportError:
    from asyncio import run

HOST = "127.0.0.1"
ROUNDS = 5  # alternations of batching on and off per number of clients


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path | None, *flags: str) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "cifar_runtime", "serve", "--port", str(self.port), *flags]
        self.proc = subprocess.Popen(cmd + (["--model", str(model)] if model else []), stderr=subprocess.PIPE)
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/readyz") as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the service never became ready")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=60)


def encode(image: bytes, port: int) -> bytes:
    """One POST /v1/classify request with the image as its raw body, encoded once."""
    head = (
        f"POST /v1/classify HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {len(image)}\r\n\r\n"
    )
    return head.encode() + image


class Client:
    """Keep-alive HTTP/1.1 connections to one service: a free one is reused, a new one opened when none is free."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.errors: dict[str, int] = {}  # why requests got no answer (status -1), by exception

    async def post(self, request: bytes) -> int:
        """The status code of one request (-1: the connection was refused or closed without an answer)."""
        while self.free and self.free[-1][0].at_eof():  # closed by the service while idle (as any HTTP client does,
            self.free.pop()[1].close()  # a connection found closed before use is dropped, not counted)
        try:
            reader, writer = self.free.pop() if self.free else await asyncio.open_connection(HOST, self.port)
        except OSError as e:
            return self.failed(e)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            writer.close()
            return self.failed(e)
        if re.search(rb"(?i)\r\nconnection: *close", head):
            writer.close()
        else:
            self.free.append((reader, writer))
        return status

    def failed(self, e: BaseException) -> int:
        name = type(e).__name__
        self.errors[name] = self.errors.get(name, 0) + 1
        return -1

    def close(self) -> None:
        for _, writer in self.free:
            writer.close()


def summary(latencies: list[float], statuses: list[int], seconds: float) -> dict[str, object]:
    ok = sorted(lat for lat, status in zip(latencies, statuses, strict=True) if status == 200)
    q = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
    return {
        "requests": len(statuses),
        "ok": len(ok),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "requests_per_s": len(ok) / seconds,
        "p50_ms": 1000 * q[49],
        "p95_ms": 1000 * q[94],
        "p99_ms": 1000 * q[98],
    }


@dataclass
class Sample:
    """What the client saw: one latency (s) and status per request, and the seconds the requests took."""

    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, other: Sample) -> None:
        self.latencies += other.latencies
        self.statuses += other.statuses
        self.seconds += other.seconds
        for name, n in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + n

    def summary(self) -> dict[str, object]:
        return summary(self.latencies, self.statuses, self.seconds) | {"errors": self.errors}


async def closed_loop(port: int, requests: list[bytes], clients: int, count: int) -> Sample:
    sample = Sample()
    http = Client(port)
    numbers = iter(range(count))

    async def client() -> None:
        for i in numbers:
            start = time.perf_counter()
            sample.statuses.append(await http.post(requests[i % len(requests)]))
            sample.latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    sample.seconds = time.perf_counter() - start
    http.close()
    sample.errors = http.errors
    return sample


async def open_loop(port: int, requests: list[bytes], rate: float, seconds: float) -> dict[str, object]:
    """Requests started at `rate` per second whatever the answers (an arrival process, as real traffic)."""
    latencies: list[float] = []
    statuses: list[int] = []
    http = Client(port)

    async def one(i: int) -> None:
        start = time.perf_counter()
        statuses.append(await http.post(requests[i % len(requests)]))
        latencies.append(time.perf_counter() - start)

    tasks, start = [], time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    http.close()
    return summary(latencies, statuses, time.perf_counter() - start) | {"offered_per_s": rate, "errors": http.errors}


async def sigterm_under_load(server: Server, requests: list[bytes], clients: int, after_s: float) -> dict[str, object]:
    """C clients post until the service stops taking requests; SIGTERM after `after_s`. Answers other than 200 and
    the draining 503 would be lost requests, and so would what the service itself reports unanswered at exit."""
    outcomes: dict[str, int] = {}
    http = Client(server.port)

    async def client(c: int) -> None:
        for i in itertools.count(c):
            status = await http.post(requests[i % len(requests)])
            outcome = "refused or closed before an answer" if status == -1 else str(status)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if status != 200:
                return

    async def stop() -> None:
        await asyncio.sleep(after_s)
        server.proc.send_signal(signal.SIGTERM)

    await asyncio.gather(stop(), *(client(c) for c in range(clients)))
    http.close()
    code = await asyncio.to_thread(server.proc.wait, 60)
    said = server.proc.stderr.read().decode()  # type: ignore[union-attr]
    unanswered = re.search(r"stopped; (\d+) accepted request\(s\) left unanswered", said)
    return {
        "outcomes": outcomes,
        "exit_code": code,
        "unanswered_by_service": int(unanswered[1]) if unanswered else None,
    }


def line(name: str, row: dict) -> str:
    return (
        f"{name}: {row['requests_per_s']:5.0f} req/s, p50 {row['p50_ms']:6.1f} ms, p95 {row['p95_ms']:6.1f} ms, "
        f"p99 {row['p99_ms']:6.1f} ms, statuses {row['statuses']}"
        + (f", no answer: {row['errors']}" if row["errors"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--requests", type=int, default=5000, help="per closed-loop measurement")
    parser.add_argument("--soak", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    images = [p.read_bytes() for p in sorted(args.folder.rglob("*.jpg"))]
    model = ["--model", str(args.model)] if args.model else []
    report: dict[str, object] = {"images": len(images), "closed_loop": {}}

    ceiling = run_measured(
        [sys.executable, "-m", "cifar_runtime", str(args.folder), "-f", "jsonl", "-o", "/dev/null"] + model
    )
    report["cifar_infer_images_per_s"] = len(images) / ceiling.seconds
    print(f"cifar-infer on the folder: {report['cifar_infer_images_per_s']:.0f} images/s (process start to exit)")

    # Batching on and off measured in alternation, ROUNDS times each, so that a change in the machine's speed over
    # the run (other tenants, clock) falls on both alike; each idle service costs the other nothing.
    servers = {"batching on": Server(args.model), "batching off": Server(args.model, "--max-batch", "1")}
    requests = {name: [encode(image, server.port) for image in images] for name, server in servers.items()}
    for clients in (1, 8, 32, 64):
        samples = {name: Sample() for name in servers}
        for _ in range(ROUNDS):
            for name, server in servers.items():
                samples[name].add(run(closed_loop(server.port, requests[name], clients, args.requests // ROUNDS)))
        for name, sample in samples.items():
            report["closed_loop"].setdefault(name, {})[str(clients)] = row = sample.summary()  # type: ignore[union-attr]
            print(line(f"{name:<13} {clients:>2} clients", row))
    for server in servers.values():
        server.stop()

    on, off = report["closed_loop"]["batching on"], report["closed_loop"]["batching off"]  # type: ignore[index]
    best = max(row["requests_per_s"] for rows in (on, off) for row in rows.values())
    report["saturation_per_s"] = best
    report["saturation_vs_cifar_infer"] = best / report["cifar_infer_images_per_s"]  # type: ignore[operator]
    report["batching_on_vs_off"] = {c: on[c]["requests_per_s"] / off[c]["requests_per_s"] for c in on}
    print(f"saturation {best:.0f} req/s = {report['saturation_vs_cifar_infer']:.2f}x cifar-infer's images/s")
    print(
        "batching on / off, requests/s by clients: "
        + ", ".join(f"{c}: {r:.2f}" for c, r in report["batching_on_vs_off"].items())
    )

    server = Server(args.model)
    requests = [encode(image, server.port) for image in images]
    for name, factor in (("half saturation", 0.5), ("twice saturation", 2.0)):
        report[name] = row = run(open_loop(server.port, requests, factor * best, 10.0))
        print(line(f"open loop, {name} ({row['offered_per_s']:.0f}/s offered), 200s", row))
    server.stop()

    server = Server(args.model)  # a service of its own: what the overload left behind is not a leak
    requests = [encode(image, server.port) for image in images]
    run(closed_loop(server.port, requests, 8, args.soak // 10))  # the first tenth
    first = server.rss_mb()
    soak = run(closed_loop(server.port, requests, 8, args.soak - args.soak // 10)).summary()
    last = server.rss_mb()
    drift = 100 * (last - first) / first
    report["soak"] = {
        "requests": args.soak,
        "rss_after_first_tenth_mb": first,
        "rss_at_end_mb": last,
        "drift_percent": drift,
        **soak,
    }
    print(
        f"soak: {args.soak} requests, RSS {first:.0f} MB after the first tenth, {last:.0f} MB at the end "
        f"({drift:+.1f}%), statuses {soak['statuses']}"
    )
    server.stop()

    server = Server(args.model)
    requests = [encode(image, server.port) for image in images]
    report["sigterm_under_load"] = row = run(sigterm_under_load(server, requests, 32, 2.0))
    print(
        f"SIGTERM under load (32 clients): exit code {row['exit_code']}, outcomes {row['outcomes']}, "
        f"unanswered by the service {row['unanswered_by_service']}"
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
