"""The service's HTTP surface: the Starlette routes, the ASGI guard (bearer token, body-size cap, requests counted
by path and status), the OpenAPI document, and reading a request's images."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cifar_runtime.output import display_path

if TYPE_CHECKING:
    from cifar_runtime.serve import ServeConfig, Service


async def request_images(request: Request, cfg: ServeConfig) -> list[tuple[str, bytes]] | Response:
    """The request's images as (name, bytes): multipart fields `file`, or the whole body as one image."""
    limit = int(cfg.max_body_mb * 2**20)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return error(413, f"the body is larger than {cfg.max_body_mb:g} MB")
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
                return error(400, "no multipart field named `file`: send one per image")
            return files
        body = await request.body()
    except BodyTooLarge:
        return error(413, f"the body is larger than {cfg.max_body_mb:g} MB")
    except Exception as e:  # malformed multipart, a client that went away: the request, not the service, failed
        return error(400, f"cannot read the request: {type(e).__name__}")
    if not body:
        return error(400, "an empty body: send an image, or multipart fields named `file`")
    return [(display_path(request.headers.get("x-filename", "body")), body)]


class BodyTooLarge(Exception):
    """Raised by the body-size guard when a body without Content-Length grows past the limit."""


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
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
        return error(503, service.state)

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
    return _Guard(app, service, tuple(route.path for route in routes))  # type: ignore[return-value]


class _Guard:
    """ASGI wrapper: the bearer token (constant-time), a body-size cap that holds without Content-Length too, and
    requests counted by path and status."""

    OPEN = ("/livez", "/readyz")  # probes need no token

    def __init__(self, app: Callable[..., Awaitable[None]], service: Service, paths: tuple[str, ...]) -> None:
        self.app, self.service, self.paths = app, service, paths
        self.token = service.cfg.token.encode()
        self.limit = int(service.cfg.max_body_mb * 2**20)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in self.paths else "other"  # bounded label values
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
                raise BodyTooLarge
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
