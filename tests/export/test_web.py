"""`cifar-export web` in a real browser: headless Chromium (Debian's `chromium`) driven by playwright-core (npm)
loads the built page from `python -m http.server`, picks fixture images in its file input, and the page's
probabilities must equal Python ONNX Runtime's on the same files.

Needs `apt-get install chromium` and `npm ci --prefix web` (CI does both, about a minute); skips with the reason
where either is missing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from extras import missing
from PIL import Image
from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_export.images import SAMPLES
from cifar_export.web import DIST_CANDIDATES
from cifar_runtime import Classifier
from cifar_runtime.decode import DecodeConfig
from cifar_train.images import scan_image_folder

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "web" / "test" / "classify.mjs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def needs_browser() -> None:
    if not CHROMIUM:
        missing("no Chromium: apt-get install -y chromium")
    if not shutil.which("node") or not (REPO / "web" / "node_modules" / "playwright-core").is_dir():
        missing("no playwright-core: npm ci --prefix web")
    if not DIST_CANDIDATES[0].is_dir():
        missing("no onnxruntime-web: npm ci --prefix web")


@pytest.fixture(scope="module")
def served(calibrated_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The page for the fixture's raw model (with a temperature), built by the CLI, served by http.server."""
    needs_browser()
    site = tmp_path_factory.mktemp("web") / "site"
    result = CliRunner().invoke(app, ["web", str(calibrated_raw), "--out", str(site)])
    assert result.exit_code == 0, result.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", site],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):  # until it accepts connections
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/", site
    finally:
        server.terminate()
        server.wait()


def drive(url: str, files: list[Path], screenshot: Path | None = None) -> dict:
    """What the page computed for `files`: {"results": [{name, probabilities, abstained} or {name, error}], ...}."""
    args = ["node", str(DRIVER), url, str(CHROMIUM)] + (["--screenshot", str(screenshot)] if screenshot else [])
    done = subprocess.run([*args, *map(str, files)], capture_output=True, text=True, timeout=300, cwd=REPO / "web")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_page_gives_python_onnx_runtimes_probabilities(served: tuple[str, Path], calibrated_raw: Path) -> None:
    url, site = served
    paths = scan_image_folder(SAMPLES / "test")[0][::10]  # 30 real JPEGs, 3 per class
    page = drive(url, paths)
    assert page["offsite"] == []  # nothing fetched from anywhere but the page's own folder
    assert [r["name"] for r in page["results"]] == [p.name for p in paths]
    got = np.array([r["probabilities"] for r in page["results"]])  # (30, 10)
    clf = Classifier(calibrated_raw, device="cpu")
    want = np.array(
        [
            [dict((s.label, s.confidence) for s in p.top_k)[c] for c in clf.classes]
            for p in clf.predict([str(p) for p in paths], top_k=len(clf.classes))
        ]
    )
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()
    meta = json.loads((site / "model.json").read_text())
    assert meta["classes"] == list(clf.classes) and meta["temperature"] == clf.temperature
    # the page's default minimum confidence is the model's recommended one, and it abstains as the runtime does
    recommended = Classifier(calibrated_raw, device="cpu", min_confidence="recommended")
    assert [r["abstained"] for r in page["results"]] == [
        p.abstained for p in recommended.predict(list(map(str, paths)))
    ]
    assert json.loads((site / "model.onnx.parity.json").read_text())["published"]


def test_resized_and_transparent_images_match_too(
    served: tuple[str, Path], calibrated_raw: Path, tmp_path: Path
) -> None:
    """Images not at the input size go through the page's port of Pillow's bilinear resize: shrunk, enlarged, odd
    ratios, JPEG and PNG, with and without transparency; the page must still compute what the runtime computes."""
    url, _ = served
    sources = scan_image_folder(SAMPLES / "test")[0][5::30]  # 10 images, one per class
    files = []
    for i, (src, size) in enumerate(
        zip(sources, [(320, 240), (97, 61), (20, 20), (33, 32), (600, 450)] * 2, strict=True)
    ):
        img = Image.open(src).convert("RGB").resize(size, Image.Resampling.BICUBIC)
        if i % 3 == 1:  # a transparent band: composited on white by both
            img = img.convert("RGBA")
            img.putalpha(Image.linear_gradient("L").resize(size))
        path = tmp_path / f"{i:02d}.{'jpg' if i % 3 == 2 else 'png'}"
        img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)
        files.append(path)
    page = drive(url, files)
    got = np.array([r["probabilities"] for r in page["results"]])
    # --exact: JPEGs decoded at full size, as the browser decodes them (by default cifar-infer decodes large
    # JPEGs at reduced scale, which the browser cannot)
    clf = Classifier(calibrated_raw, device="cpu", decode=DecodeConfig(exact=True))
    want = np.array(
        [
            [dict((s.label, s.confidence) for s in p.top_k)[c] for c in clf.classes]
            for p in clf.predict([str(f) for f in files], top_k=len(clf.classes))
        ]
    )
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()


def test_a_broken_file_gets_an_error_row_and_the_rest_are_classified(served: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = served
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    good = scan_image_folder(SAMPLES / "test")[0][:2]
    results = drive(url, [good[0], broken, good[1]])["results"]
    assert [("error" in r) for r in results] == [False, True, False]


def test_web_refuses_a_float_model_and_an_existing_folder(
    cnn_exported: Path, calibrated_raw: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["web", str(cnn_exported / "cnn.onnx"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "--raw" in result.output
    (tmp_path / "b").mkdir()
    result = CliRunner().invoke(
        app, ["web", str(calibrated_raw), "--out", str(tmp_path / "b"), "--ort-dist", str(tmp_path)]
    )
    assert result.exit_code == 2


def test_overwrite_replaces_an_earlier_page_and_nothing_else(
    served: tuple[str, Path], calibrated_raw: Path, tmp_path: Path
) -> None:
    _, site = served  # a page the CLI wrote
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "best.pt").write_bytes(b"a user's file")
    result = CliRunner().invoke(app, ["web", str(calibrated_raw), "--out", str(mine), "--overwrite"])
    assert result.exit_code == 2 and "not a page folder" in result.output
    assert (mine / "best.pt").read_bytes() == b"a user's file"
    page = tmp_path / "page"
    shutil.copytree(site, page)
    (page / "model.json").write_text("{}")
    result = CliRunner().invoke(app, ["web", str(calibrated_raw), "--out", str(page), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads((page / "model.json").read_text())["layout"] == "NHWC"


def test_the_pinned_version_is_the_one_the_package_names() -> None:
    from cifar_export.web import ORT_WEB_VERSION

    assert json.loads((REPO / "web" / "package.json").read_text())["dependencies"]["onnxruntime-web"] == ORT_WEB_VERSION


def test_outside_the_repository_it_finds_an_npm_install_in_the_working_folder(
    calibrated_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cifar_export.web as web

    needs_browser()  # for onnxruntime-web's files
    monkeypatch.setattr(web, "DIST_CANDIDATES", web.DIST_CANDIDATES[1:])  # as a non-editable install sees it
    monkeypatch.chdir(tmp_path)
    missing = CliRunner().invoke(app, ["web", str(calibrated_raw), "--out", "site"])
    assert missing.exit_code == 2 and f"npm install onnxruntime-web@{web.ORT_WEB_VERSION}` in this folder" in (
        missing.stderr
    )
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "onnxruntime-web").symlink_to(DIST_CANDIDATES[0].parent)
    built = CliRunner().invoke(app, ["web", str(calibrated_raw), "--out", "site"])
    assert built.exit_code == 0, built.output
    assert (tmp_path / "site" / "ort" / "ort.wasm.min.js").is_file()
