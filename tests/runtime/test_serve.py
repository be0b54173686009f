"""`cifar-infer serve` as a real process on loopback: the rows cifar-infer writes, the limits, probes, metrics and a
SIGTERM that loses no accepted request. Needs the [serve] extra (tests/run.sh installs it)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from extras import missing
from runtime_files import TINY
from typer.testing import CliRunner

from cifar_runtime.cli import app as infer_app

try:
    import starlette  # noqa: F401
except ImportError:
    missing("no [serve] extra: pip install './runtime[serve]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        args = ["-m", "cifar_runtime", "serve", "--model", str(TINY), "--port", str(self.port), *flags]
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()  # type: ignore[union-attr]
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the service never became ready")

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None
    ) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path)
        return status, body

    def classify(self, files: list[Path], query: str = "", headers: dict | None = None) -> tuple[int, dict, bytes]:
        body, kind = multipart(files)
        return self.request("POST", f"/v1/classify{query}", body, {"Content-Type": kind, **(headers or {})})

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def multipart(files: list[Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{f.name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + f.read_bytes()
        + b"\r\n"
        for f in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server("--max-body-mb", "0.5", "--token-file", str(token_file()))
    yield s
    assert s.stop() == 0


def token_file() -> Path:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"cifar-serve-test-token-{os.getpid()}"
    path.write_text("s3cret\n", encoding="utf-8")
    return path


AUTH = {"Authorization": "Bearer s3cret"}


def test_its_rows_are_cifar_infers_rows(server: Server, test_images: list[Path]) -> None:
    files = test_images[:40]
    status, _, body = server.classify(files, "?top_k=3", AUTH)
    assert status == 200
    served = json.loads(body)
    cli = CliRunner().invoke(infer_app, ["-m", str(TINY), "-f", "jsonl", "-k", "3", *map(str, files)])
    rows = [json.loads(line) for line in cli.stdout.splitlines()]
    for row in rows:
        row["path"] = Path(row["path"]).name  # the service names each file as the client sent it
    assert served == rows


def test_a_raw_body_is_one_image_and_a_bad_one_is_its_error_row(server: Server, test_images: list[Path]) -> None:
    status, _, body = server.request(
        "POST", "/v1/classify", test_images[0].read_bytes(), {"X-Filename": "a.jpg", **AUTH}
    )
    assert status == 200 and json.loads(body)[0]["path"] == "a.jpg"
    status, _, body = server.request("POST", "/v1/classify", b"not an image", AUTH)
    assert status == 200 and json.loads(body) == [{"path": "body", "error": "not an image file Pillow can read"}]


def test_limits_answer_and_the_service_stays_healthy(server: Server, test_images: list[Path], tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(600_000))  # over --max-body-mb 0.5
    assert server.classify([big], headers=AUTH)[0] == 413
    assert (
        server.request(
            "POST", "/v1/classify", b"--x\r\ngarbage", {"Content-Type": "multipart/form-data; boundary=x", **AUTH}
        )[0]
        == 400
    )
    assert server.request("POST", "/v1/classify", b"", AUTH)[0] == 400
    assert server.classify(test_images[:1], "?top_k=99", AUTH)[0] == 400
    assert server.classify(test_images[:1])[0] == 401  # no token
    assert server.classify(test_images[:1], headers={"Authorization": "Bearer wrong"})[0] == 401
    # a client that sends half its body and leaves
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Length: 5000\r\n\r\n"
            + b"x" * 100
        )
    assert server.get("/livez")[0] == 200 and server.classify(test_images[:2], headers=AUTH)[0] == 200


def test_probes_model_metrics_and_openapi_need_no_guessing(server: Server) -> None:
    assert server.get("/readyz")[0] == 200 and server.get("/livez")[0] == 200  # probes need no token
    status, _, body = server.request("GET", "/v1/model", headers=AUTH)
    assert status == 200 and json.loads(body)["classes"][0] == "airplane"
    status, _, body = server.request("GET", "/metrics", headers=AUTH)
    text = body.decode()
    assert status == 200 and 'cifar_requests_total{path="/v1/classify",status="413"}' in text
    assert "cifar_batch_images_bucket" in text and "cifar_queue_images" in text and "cifar_request_seconds" in text
    status, _, body = server.request("GET", "/openapi.json", headers=AUTH)
    assert status == 200 and "/v1/classify" in json.loads(body)["paths"]


def test_a_full_queue_is_429_with_retry_after(test_images: list[Path]) -> None:
    s = Server("--queue", "2")
    try:
        status, headers, _ = s.classify(test_images[:3])  # three images can never fit a queue of two
        assert status == 429 and headers.get("retry-after") == "1"
        assert s.classify(test_images[:2])[0] == 200
    finally:
        assert s.stop() == 0


def test_sigterm_under_load_answers_every_accepted_request_then_exits_0(test_images: list[Path]) -> None:
    s = Server("--max-batch", "4", "--max-delay-ms", "5")
    results: list[int] = []

    def client() -> None:
        for _ in range(20):
            try:
                results.append(s.classify(test_images[:4])[0])
            except OSError:  # refused after the listener closed: never accepted, so never lost
                results.append(-1)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=60)
    assert s.proc.wait(timeout=60) == 0
    assert results and set(results) <= {200, 503, -1} and 200 in results  # no 5xx but "draining" 503, nothing lost
    said = s.proc.stderr.read()  # type: ignore[union-attr]
    assert "draining" in said and "stopped; 0 accepted request(s) left unanswered" in said


def test_a_lone_request_never_waits_for_company(test_images: list[Path]) -> None:
    s = Server("--max-delay-ms", "3000")  # a batch may wait 3 s, but only for images already being decoded
    try:
        started = time.perf_counter()
        assert s.classify(test_images[:1])[0] == 200
        assert time.perf_counter() - started < 1.5
    finally:
        assert s.stop() == 0
