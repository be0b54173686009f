"""`cifar-infer serve`: the runtime as a small local HTTP service (Starlette on uvicorn; an optional extra).

One process, one ONNX Runtime session with explicit threads. Requests are decoded in a thread pool, off the event
loop, within the classifier's pixel budget; their images join a micro-batch (at most --max-batch images, waiting at
most --max-delay-ms for company) that one worker thread runs on the session. Each response holds exactly the rows
`cifar-infer -f jsonl` writes for the same files.

Endpoints: POST /v1/classify (multipart field `file`, repeatable; or one image as the raw body), GET /v1/model,
/livez, /readyz, /metrics (Prometheus), /openapi.json. Limits answer, they never crash: a body over --max-body-mb
is 413, a full queue 429 with Retry-After, a request past --deadline-s 504, a malformed request 400, a wrong or
missing token 401. On SIGTERM readiness turns 503, new requests get 503, and those accepted are answered within
--grace-s before the process exits 0.

This file holds the settings, the service's state and its lifecycle; the micro-batcher is `serve_batch.py`, the
routes, guard and request parsing `serve_http.py`, the CLI `serve_cli.py`.
"""

from __future__ import annotations

import asyncio
import io
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifar_runtime.api import Classifier
from cifar_runtime.decode import DEFAULT_MAX_PIXELS, DecodeConfig
from cifar_runtime.errors import ImageError, InstallError, UsageError
from cifar_runtime.output import to_row
from cifar_runtime.pipeline import Result

try:
    import uvicorn
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from cifar_runtime.serve_batch import Batcher, Overloaded
    from cifar_runtime.serve_http import build_app, error, request_images
except ImportError as e:
    raise InstallError(f"cifar-infer serve needs its extra ({e}): pip install 'cifar-runtime[serve]'") from e


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the service; each field is a `cifar-infer serve` flag of the same name."""

    model: Path | None = None  # None: $CIFAR_MODEL, else the bundled model
    precision: str = "auto"
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    threads: int = 2  # ONNX Runtime intra-op threads of the one session
    workers: int = 2  # image-decoding threads
    max_batch: int = 32  # images run together at most (1: no batching)
    max_delay_ms: float = 2.0  # how long the first image of a batch waits for company
    queue: int = 256  # images accepted and not yet answered, at most; beyond: 429
    max_body_mb: float = 16.0  # a request body beyond: 413
    max_files: int = 64  # images in one request, at most
    max_pixels: int = DEFAULT_MAX_PIXELS
    deadline_s: float = 10.0  # a request not answered by then: 504
    grace_s: float = 10.0  # after SIGTERM, time given to requests already accepted
    top_k: int = 1  # the default; a request may ask ?top_k=K
    min_confidence: float | str = 0.0
    token: str = field(default="", repr=False)  # "" = no authentication; else `Authorization: Bearer TOKEN`
    cors_origin: str = ""  # "" = no CORS headers


class Metrics:
    """Prometheus metrics of one service, in a registry of its own."""

    def __init__(self, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cifar_requests", "HTTP requests by path and status.", ["path", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "cifar_request_seconds",
            "Classify requests, arrival to answer.",
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
        )
        buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, max_batch})
        self.batch = Histogram(
            "cifar_batch_images",
            "Images per ONNX Runtime call.",
            registry=self.registry,
            buckets=[b for b in buckets if b <= max_batch],
        )
        self.queue = Gauge("cifar_queue_images", "Images accepted and not yet answered.", registry=self.registry)
        self.images = Counter(
            "cifar_images", "Images classified, and images that could not be read.", ["outcome"], registry=self.registry
        )


class Service:
    """The state of one running service: its classifier, batcher, metrics and the draining flag."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        decode = DecodeConfig(cfg.max_pixels)
        self.classifier = Classifier(
            cfg.model,
            "cpu",
            precision=cfg.precision,
            decode=decode,
            min_confidence=cfg.min_confidence,
            threads=cfg.threads,
        )
        self.classifier.check_top_k(cfg.top_k, "--top-k")
        self.classifier.check_batch_size(cfg.max_batch, "--max-batch")
        self.metrics = Metrics(cfg.max_batch)
        self.batcher = Batcher(self.classifier, self.metrics, cfg.max_batch, cfg.max_delay_ms, cfg.queue)
        self.decoders = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="cifar-serve-decode")
        self.state = "starting"  # -> "ready" -> "draining" (after SIGTERM)
        self.in_flight = 0  # classify requests accepted and not yet answered

    async def classify(self, request: Request) -> Response:
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await asyncio.wait_for(self._classify(request), self.cfg.deadline_s)
        except TimeoutError:
            return error(504, f"not answered within the deadline of {self.cfg.deadline_s:g} s")
        finally:
            self.in_flight -= 1
            self.metrics.latency.observe(time.perf_counter() - started)

    async def _classify(self, request: Request) -> Response:
        if self.state != "ready":
            return error(503, self.state, {"Retry-After": "1"})
        try:
            top_k = int(request.query_params.get("top_k", self.cfg.top_k))
            self.classifier.check_top_k(top_k, "top_k")
        except (ValueError, UsageError) as e:
            return error(400, str(e) if isinstance(e, UsageError) else "top_k must be an integer")
        # A full queue refuses before the body is read or decoded: a refusal must cost far less than an answer, or
        # beyond capacity the service would spend its cores refusing.
        if self.batcher.waiting + self.batcher.coming >= self.cfg.queue:
            return self._full()
        files = await request_images(request, self.cfg)
        if isinstance(files, Response):
            return files
        if not self.batcher.reserve(len(files)):
            return self._full()
        loop = asyncio.get_running_loop()
        try:
            decoded = await asyncio.gather(
                *(loop.run_in_executor(self.decoders, self._prepare, data) for _, data in files)
            )
        finally:
            self.batcher.coming -= len(files)  # their images join the queue next, with no await in between
        ok = [x for x in decoded if isinstance(x, np.ndarray)]
        try:
            predictions = iter(await self.batcher.classify(ok, top_k) if ok else [])
        except Overloaded:
            return self._full()
        rows = []
        for (name, _), x in zip(files, decoded, strict=True):
            result = Result(name, error=str(x)) if isinstance(x, ImageError) else Result(name, next(predictions))
            rows.append(to_row(result))
            self.metrics.images.labels("classified" if result.prediction else "error").inc()
        return JSONResponse(rows)

    def _full(self) -> Response:
        return error(429, f"the queue holds {self.cfg.queue} images: retry later", {"Retry-After": "1"})

    def _prepare(self, data: bytes) -> np.ndarray | ImageError:
        try:
            return self.classifier.model_input(self.classifier.read_pixels(io.BytesIO(data))[None])[0]
        except ImageError as e:
            return e

    def warm_up(self) -> None:
        """One call before the first request: ONNX Runtime allocates and picks its kernels then."""
        h, w = self.classifier.input_size
        self.classifier.predict_batch(self.classifier.model_input(np.zeros((1, h, w, 3), np.uint8)))

    def model(self) -> dict[str, Any]:
        info = self.classifier.info
        return {
            "file": self.classifier.model_path.name,
            "arch": info.arch,
            "classes": list(info.classes),
            "input_size": list(info.input_size),
            "precision": self.classifier.precision,
            "temperature": info.temperature,
            "min_confidence": self.classifier.min_confidence,
            "recommended_min_confidence": info.recommended_min_confidence,
            "test_acc": info.test_acc,
            "source_sha256": info.source_sha256,
            "batching": {"max_batch": self.cfg.max_batch, "max_delay_ms": self.cfg.max_delay_ms},
        }


def serve(cfg: ServeConfig, say: Callable[[str], None] = print) -> int:
    """Run the service until SIGTERM or Ctrl-C, then drain it; return the exit code (0 after a clean shutdown)."""
    service = Service(cfg)
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(service),
            host=cfg.host,
            port=cfg.port,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=5,
            access_log=False,
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # ours drain first

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def stop_when_idle() -> None:
            ends = loop.time() + cfg.grace_s
            while service.in_flight and loop.time() < ends:
                await asyncio.sleep(0.02)
            server.should_exit = True

        def drain() -> None:
            if service.state != "draining":
                service.state = "draining"  # readiness 503, new requests 503; those accepted are answered
                say(f"cifar-infer serve: draining {service.in_flight} request(s), at most {cfg.grace_s:g} s")
                loop.create_task(stop_when_idle())

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, drain)
        batching = asyncio.create_task(service.batcher.run())
        service.warm_up()
        service.state = "ready"
        say(
            f"cifar-infer serve: {service.classifier.model_path.name} ({service.classifier.precision}) on "
            f"http://{cfg.host}:{cfg.port}/ (batches of up to {cfg.max_batch} images, {cfg.max_delay_ms:g} ms)"
        )
        try:
            await server.serve()
        finally:
            batching.cancel()
        say(f"cifar-infer serve: stopped; {service.in_flight} accepted request(s) left unanswered")

    asyncio.run(main())
    return 0
