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
"""

from __future__ import annotations

import asyncio
import hmac
import io
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cifar_runtime.api import Classifier, Prediction
from cifar_runtime.decode import DEFAULT_MAX_PIXELS, DecodeConfig
from cifar_runtime.errors import ImageError, InstallError, UsageError
from cifar_runtime.output import display_path, to_row
from cifar_runtime.pipeline import Result

try:
    import uvicorn
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
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


class Overloaded(Exception):
    """The queue is full: the caller should retry later."""


@dataclass
class _Item:
    pixels: np.ndarray  # one row of a model_input batch
    top_k: int
    future: asyncio.Future[Prediction]


class Batcher:
    """Collects model inputs across requests into batches and runs each on one worker thread."""

    def __init__(self, classifier: Classifier, cfg: ServeConfig, metrics: Metrics) -> None:
        self.classifier, self.cfg, self.metrics = classifier, cfg, metrics
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.waiting = 0  # images accepted and not yet answered
        self.coming = 0  # images of accepted requests still being decoded: the only company worth waiting for
        self.runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cifar-serve-ort")  # one session, in order

    def reserve(self, images: int) -> bool:
        """Room in the queue for `images` about to be decoded (counted from now on), or False when it is full."""
        if self.waiting + self.coming + images > self.cfg.queue:
            return False
        self.coming += images
        return True

    async def classify(self, inputs: list[np.ndarray], top_k: int) -> list[Prediction]:
        if self.waiting + len(inputs) > self.cfg.queue:
            raise Overloaded
        loop = asyncio.get_running_loop()
        items = [_Item(x, top_k, loop.create_future()) for x in inputs]
        self.waiting += len(items)
        self.metrics.queue.set(self.waiting)
        for item in items:
            self.queue.put_nowait(item)
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        finally:
            self.waiting -= len(items)
            self.metrics.queue.set(self.waiting)

    async def run(self) -> None:
        """The batching loop: a batch starts with the first waiting image and closes when full, when no other image
        is on its way (waiting for nothing would only add latency: one client alone is never slowed), or when its
        first image has waited max_delay_ms. Under load, batches form from what arrives while the last one runs."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            closes = loop.time() + self.cfg.max_delay_ms / 1000
            while len(batch) < self.cfg.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                if not self.coming:
                    break
                left = closes - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            batch = [item for item in batch if not item.future.done()]  # a request past its deadline left
            if not batch:
                continue
            self.metrics.batch.observe(len(batch))
            k = max(item.top_k for item in batch)
            try:
                predictions = await loop.run_in_executor(
                    self.runner, self.classifier.predict_batch, np.stack([item.pixels for item in batch]), k
                )
            except Exception as e:  # the session failed: every request of the batch gets the error, the loop goes on
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)
                continue
            for item, p in zip(batch, predictions, strict=True):
                if not item.future.done():
                    item.future.set_result(replace(p, top_k=p.top_k[: item.top_k]))


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
        self.batcher = Batcher(self.classifier, cfg, self.metrics)
        self.decoders = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="cifar-serve-decode")
        self.state = "starting"  # -> "ready" -> "draining" (after SIGTERM)
        self.in_flight = 0  # classify requests accepted and not yet answered

    async def classify(self, request: Request) -> Response:
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await asyncio.wait_for(self._classify(request), self.cfg.deadline_s)
        except TimeoutError:
            return _error(504, f"not answered within the deadline of {self.cfg.deadline_s:g} s")
        finally:
            self.in_flight -= 1
            self.metrics.latency.observe(time.perf_counter() - started)

    async def _classify(self, request: Request) -> Response:
        if self.state != "ready":
            return _error(503, self.state, {"Retry-After": "1"})
        try:
            top_k = int(request.query_params.get("top_k", self.cfg.top_k))
            self.classifier.check_top_k(top_k, "top_k")
        except (ValueError, UsageError) as e:
            return _error(400, str(e) if isinstance(e, UsageError) else "top_k must be an integer")
        # A full queue refuses before the body is read or decoded: a refusal must cost far less than an answer, or
        # beyond capacity the service would spend its cores refusing.
        if self.batcher.waiting + self.batcher.coming >= self.cfg.queue:
            return self._full()
        files = await _files(request, self.cfg)
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
        return _error(429, f"the queue holds {self.cfg.queue} images: retry later", {"Retry-After": "1"})

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


async def _files(request: Request, cfg: ServeConfig) -> list[tuple[str, bytes]] | Response:
    """The request's images as (name, bytes): multipart fields `file`, or the whole body as one image."""
    limit = int(cfg.max_body_mb * 2**20)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _error(413, f"the body is larger than {cfg.max_body_mb:g} MB")
    kind = request.headers.get("content-type", "")
    try:
        if kind.startswith("multipart/form-data"):
            async with request.form(max_files=cfg.max_files, max_fields=cfg.max_files, max_part_size=limit) as form:
                files = [
                    (display_path(upload.filename or f"file{i}"), await upload.read())
                    for i, upload in enumerate(form.getlist("file"))
                    if hasattr(upload, "read")
                ]
            if not files:
                return _error(400, "no multipart field named `file`: send one per image")
            return files
        body = await request.body()
    except _BodyTooLarge:
        return _error(413, f"the body is larger than {cfg.max_body_mb:g} MB")
    except Exception as e:  # malformed multipart, a client that went away: the request, not the service, failed
        return _error(400, f"cannot read the request: {type(e).__name__}")
    if not body:
        return _error(400, "an empty body: send an image, or multipart fields named `file`")
    return [(display_path(request.headers.get("x-filename", "body")), body)]


class _BodyTooLarge(Exception):
    """Raised by the body-size guard when a body without Content-Length grows past the limit."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "cifar-infer serve", "version": "1"},
    "paths": {
        "/v1/classify": {
            "post": {
                "summary": "Classify one or many images; one row per image, as `cifar-infer -f jsonl` writes it.",
                "parameters": [{"name": "top_k", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                                },
                            }
                        },
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    }
                },
                "responses": {
                    "200": {"description": "rows: {path, label, index, confidence, top_k, abstained} or {path, error}"},
                    "400": {"description": "malformed request"},
                    "401": {"description": "missing or wrong bearer token"},
                    "413": {"description": "body too large"},
                    "429": {"description": "queue full; see Retry-After"},
                    "503": {"description": "starting or shutting down"},
                    "504": {"description": "deadline exceeded"},
                },
            }
        },
        "/v1/model": {"get": {"summary": "The model's metadata and the service's batching settings."}},
        "/livez": {"get": {"summary": "200 while the process runs."}},
        "/readyz": {"get": {"summary": "200 when it takes requests; 503 while starting or shutting down."}},
        "/metrics": {"get": {"summary": "Prometheus metrics."}},
    },
}


def build_app(service: Service) -> Starlette:
    """The ASGI app of `service`: routes, the token check, the body-size guard, per-path metrics."""
    cfg = service.cfg

    async def classify(request: Request) -> Response:
        return await service.classify(request)

    async def model(request: Request) -> Response:
        return JSONResponse(service.model())

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        if service.state == "ready":
            return JSONResponse({"status": "ready"})
        return _error(503, service.state)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.metrics.registry), media_type="text/plain; version=0.0.4")

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    routes = [
        Route("/v1/classify", classify, methods=["POST"]),
        Route("/v1/model", model),
        Route("/livez", livez),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
    ]
    middleware = (
        [
            Middleware(
                CORSMiddleware,
                allow_origins=[cfg.cors_origin],
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Filename"],
            )
        ]
        if cfg.cors_origin
        else []
    )
    app = Starlette(routes=routes, middleware=middleware)
    return _Guard(app, service)  # type: ignore[return-value]


class _Guard:
    """ASGI wrapper: the bearer token (constant-time), a body-size cap that holds without Content-Length too, and
    requests counted by path and status."""

    OPEN = ("/livez", "/readyz")  # probes need no token

    def __init__(self, app: Callable[..., Awaitable[None]], service: Service) -> None:
        self.app, self.service = app, service
        self.token = service.cfg.token.encode()
        self.limit = int(service.cfg.max_body_mb * 2**20)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in _KNOWN else "other"  # bounded label values
        status = {"code": 500}

        async def counted_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        received = 0

        async def capped_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge
            return message

        try:
            if self.token and scope["path"] not in self.OPEN and not self._authorised(scope):
                await JSONResponse(
                    {"error": "missing or wrong bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )(scope, receive, counted_send)
                return
            await self.app(scope, capped_receive, counted_send)
        finally:
            self.service.metrics.requests.labels(path, str(status["code"])).inc()

    def _authorised(self, scope: dict) -> bool:
        given = dict(scope["headers"]).get(b"authorization", b"")
        expected = b"Bearer " + self.token
        return hmac.compare_digest(given, expected)


_KNOWN = ("/v1/classify", "/v1/model", "/livez", "/readyz", "/metrics", "/openapi.json")


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
