"""A load test of `cifar-infer serve` on loopback, bounded in requests and time, against `cifar-infer` on the same
images as the ceiling.

    python -m benchmarks.serve_load FOLDER [--model FILE] [--out serve_load.json]     (needs httpx, ./runtime[serve])

1. closed loop: each of C clients posts one image and waits for the answer, C in 1, 8, 32, 64, with batching on
   (--max-batch 32) and off (--max-batch 1): requests/s and p50/p95/p99 latency;
2. the ceiling: `cifar-infer FOLDER` (the same images) in images/s;
3. open loop at half the saturation rate (p99) and at twice it (only 200 and 429 expected; p99 of the 200s);
4. a soak: SOAK requests at 8 clients, the server's RSS after the first tenth and at the end;
5. SIGTERM under load: every request answered 200 or the draining 503, none left unanswered, exit code 0.
Client and server share this machine's cores: the figures are for the two together.
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
from pathlib import Path

import httpx

from benchmarks.measure import run_measured


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path | None, *flags: str) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "cifar_runtime", "serve", "--port", str(self.port), "--queue", "512", *flags]
        self.proc = subprocess.Popen(cmd + (["--model", str(model)] if model else []), stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
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


async def closed_loop(url: str, images: list[bytes], clients: int, requests: int) -> dict[str, object]:
    latencies: list[float] = []
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        counter = iter(range(requests))

        async def client() -> None:
            for i in counter:
                start = time.perf_counter()
                r = await http.post(f"{url}/v1/classify", content=images[i % len(images)])
                latencies.append(time.perf_counter() - start)
                statuses.append(r.status_code)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return summary(latencies, statuses, time.perf_counter() - start)


async def open_loop(url: str, images: list[bytes], rate: float, seconds: float) -> dict[str, object]:
    """Requests started at `rate` per second whatever the answers (an arrival process, as real traffic)."""
    latencies: list[float] = []
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:

        async def one(i: int) -> None:
            start = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/classify", content=images[i % len(images)])
                statuses.append(r.status_code)
            except httpx.HTTPError:
                statuses.append(-1)
            latencies.append(time.perf_counter() - start)

        tasks, start, n = [], time.perf_counter(), int(rate * seconds)
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        return summary(latencies, statuses, time.perf_counter() - start) | {"offered_per_s": rate}


async def sigterm_under_load(server: Server, images: list[bytes], clients: int, after_s: float) -> dict[str, object]:
    """C clients post until the service stops taking requests; SIGTERM after `after_s`. Answers other than 200 and
    the draining 503 count as lost, and so does what the service itself reports unanswered when it exits."""
    outcomes: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:

        async def client(c: int) -> None:
            for i in itertools.count(c):
                try:
                    r = await http.post(f"{server.url}/v1/classify", content=images[i % len(images)])
                    outcome = str(r.status_code)
                except httpx.ConnectError:
                    outcome = "refused (listener closed)"
                except httpx.HTTPError as e:  # a keep-alive connection closed as a request was sent
                    outcome = f"connection closed ({type(e).__name__})"
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome != "200":
                    return

        async def stop() -> None:
            await asyncio.sleep(after_s)
            server.proc.send_signal(signal.SIGTERM)

        await asyncio.gather(stop(), *(client(c) for c in range(clients)))
    code = await asyncio.to_thread(server.proc.wait, 60)
    said = server.proc.stderr.read().decode()  # type: ignore[union-attr]
    unanswered = re.search(r"stopped; (\d+) accepted request\(s\) left unanswered", said)
    return {
        "outcomes": outcomes,
        "exit_code": code,
        "unanswered_by_server": int(unanswered.group(1)) if unanswered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--requests", type=int, default=3000, help="per closed-loop measurement")
    parser.add_argument("--soak", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    paths = sorted(args.folder.rglob("*.jpg"))
    images = [p.read_bytes() for p in paths]
    report: dict[str, object] = {"images": len(images), "closed_loop": {}}

    ceiling = run_measured(
        [sys.executable, "-m", "cifar_runtime", str(args.folder), "-f", "jsonl", "-o", "/dev/null"]
        + (["--model", str(args.model)] if args.model else [])
    )
    report["cifar_infer_images_per_s"] = len(images) / ceiling.seconds
    print(f"cifar-infer on the folder: {report['cifar_infer_images_per_s']:.0f} images/s (process start to exit)")

    for name, flags in (("batching on", ["--max-batch", "32"]), ("batching off", ["--max-batch", "1"])):
        server = Server(args.model, *flags)
        rows = {}
        for clients in (1, 8, 32, 64):
            row = asyncio.run(closed_loop(server.url, images, clients, args.requests))
            rows[str(clients)] = row
            print(
                f"{name:<13} {clients:>2} clients: {row['requests_per_s']:6.0f} req/s, p50 {row['p50_ms']:6.1f} ms, "
                f"p95 {row['p95_ms']:6.1f} ms, p99 {row['p99_ms']:6.1f} ms, statuses {row['statuses']}"
            )
        report["closed_loop"][name] = rows  # type: ignore[index]
        server.stop()

    best = max(row["requests_per_s"] for rows in report["closed_loop"].values() for row in rows.values())  # type: ignore[union-attr]
    report["saturation_per_s"] = best
    report["saturation_vs_cifar_infer"] = best / report["cifar_infer_images_per_s"]  # type: ignore[operator]
    print(f"saturation {best:.0f} req/s = {report['saturation_vs_cifar_infer']:.2f}x cifar-infer's images/s")

    server = Server(args.model, "--max-batch", "32")
    for name, factor in (("half saturation", 0.5), ("twice saturation", 2.0)):
        row = asyncio.run(open_loop(server.url, images, factor * best, 10.0))
        report[name] = row
        print(
            f"open loop, {name} ({row['offered_per_s']:.0f}/s offered): {row['requests_per_s']:.0f} req/s answered "
            f"200, p99 {row['p99_ms']:.1f} ms, statuses {row['statuses']}"
        )
    asyncio.run(closed_loop(server.url, images, 8, args.soak // 10))  # the first tenth
    first = server.rss_mb()
    soak = asyncio.run(closed_loop(server.url, images, 8, args.soak - args.soak // 10))
    last = server.rss_mb()
    report["soak"] = {
        "requests": args.soak,
        "rss_after_first_tenth_mb": first,
        "rss_at_end_mb": last,
        "drift_percent": 100 * (last - first) / first,
        **soak,
    }
    print(
        f"soak: {args.soak} requests, RSS {first:.0f} MB after the first tenth, {last:.0f} MB at the end "
        f"({report['soak']['drift_percent']:+.1f}%), statuses {soak['statuses']}"
    )  # type: ignore[index]
    server.stop()

    server = Server(args.model, "--max-batch", "32")
    report["sigterm_under_load"] = row = asyncio.run(sigterm_under_load(server, images, 32, 2.0))
    print(
        f"SIGTERM under load (32 clients): exit code {row['exit_code']}, outcomes {row['outcomes']}, "
        f"unanswered by the service {row['unanswered_by_server']}"
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
