"""Memory bounded by design: declared sizes refused unread, JPEGs decoded at reduced scale, decodes at once bounded."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from runtime_files import TINY
from typer.testing import CliRunner

from benchmarks.hostile_files import BIG, hostile_headers, upscaled_photos
from benchmarks.measure import run_measured
from cifar_runtime import Classifier, ImageError
from cifar_runtime import decode as decode_module
from cifar_runtime.cli import app, resume_command
from cifar_runtime.decode import DEFAULT_MAX_PIXELS, DecodeBudget, DecodeConfig, load_image
from cifar_runtime.exitcodes import EXIT_OK, EXIT_PARTIAL
from cifar_runtime.infer import InferConfig
from cifar_runtime.pipeline import classify_files

SCRIPT = Path(sys.executable).parent / "cifar-infer"
RSS_TARGET_MB = 400


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    for name, data in hostile_headers(DEFAULT_MAX_PIXELS).items():
        (folder / name).write_bytes(data)
    return folder


def test_declared_size_over_the_limit_is_refused_before_decoding(
    hostile: Path, classifier: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[str] = []
    original = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        loaded.append(os.path.basename(str(self.filename)))
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    big = sorted(p for p in hostile.iterdir() if "_big." in p.name)
    assert {p.suffix for p in big} == {".png", ".jpg", ".gif", ".bmp", ".tif", ".webp"}
    for path, outcome in zip(big, classifier.predict_many(big), strict=True):
        assert isinstance(outcome, ImageError), path.name
        if path.name == "jpeg_big.jpg":  # HUGE, as a baseline JPEG counts at its reduced scale: past Pillow's own limit
            assert "larger than Pillow's own hard limit, which no flag raises" in str(outcome)
        elif path.suffix != ".webp":  # libwebp itself refuses a canvas that does not match its frame, before us
            assert f"declares {BIG}x{BIG} = {BIG * BIG} pixels, over the limit of {DEFAULT_MAX_PIXELS}" in str(outcome)
    assert loaded == []  # not one of them reached a decoder


def test_every_hostile_file_is_one_error_row_and_the_process_stays_small(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    # a real cifar-infer process, and its own peak RSS
    run = run_measured(
        [sys.executable, "-m", "cifar_runtime", "-m", str(TINY), str(hostile), "-f", "jsonl", "-o", str(out)]
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert run.returncode == EXIT_PARTIAL, run.stderr
    assert sorted(Path(r["path"]).name for r in rows) == sorted(p.name for p in hostile.iterdir())
    over = [r for r in rows if "_big." in r["path"] or "_huge." in r["path"]]
    assert len(over) == 8 and all(set(r) == {"path", "error"} for r in over)
    (line,) = run.stderr.splitlines()  # the summary; nothing else reached stderr
    assert line.startswith(f"cifar-infer: {len(rows)} files, ")
    assert 0 < run.peak_rss_mb < RSS_TARGET_MB


def test_a_baseline_jpeg_counts_at_the_scale_it_decodes_at(tmp_path: Path, test_images: list[Path]) -> None:
    photo = tmp_path / "camera.jpg"  # 16 Mpx, over the default limit as declared; 1/8 scale decodes 0.25 Mpx
    with Image.open(test_images[0]) as img:
        img.convert("RGB").resize((4608, 3456)).save(photo, quality=85)
    assert DEFAULT_MAX_PIXELS < 4608 * 3456
    reduced = CliRunner().invoke(app, ["-m", str(TINY), "-f", "jsonl", str(photo)])
    assert reduced.exit_code == EXIT_OK and "label" in json.loads(reduced.stdout), reduced.output
    exact = CliRunner().invoke(app, ["-m", str(TINY), "-f", "jsonl", "--exact", str(photo)])  # full size: refused
    assert exact.exit_code == EXIT_PARTIAL and "over the limit" in json.loads(exact.stdout)["error"]


def test_max_pixels_is_the_limit_and_can_be_raised(tmp_path: Path, test_images: list[Path]) -> None:
    photo = tmp_path / "photo.png"
    with Image.open(test_images[0]) as img:
        img.resize((200, 100)).save(photo)
    small = CliRunner().invoke(app, ["-m", str(TINY), "-f", "jsonl", "--max-pixels", "19999", str(photo)])
    assert small.exit_code == EXIT_PARTIAL
    error = json.loads(small.stdout)["error"]
    assert error == (
        "larger than the pixel limit: it declares 200x100 = 20000 pixels, over the limit of 19999 (raise it with "
        "cifar-infer --max-pixels N, or DecodeConfig(max_pixels=N) in Python, to read it)"
    )
    enough = CliRunner().invoke(app, ["-m", str(TINY), "-f", "jsonl", "--max-pixels", "20000", str(photo)])
    assert enough.exit_code == EXIT_OK and "label" in json.loads(enough.stdout)


def test_a_large_jpeg_decodes_at_reduced_scale_unless_exact(tmp_path: Path, photo: Image.Image) -> None:
    path = tmp_path / "big.jpg"
    photo.resize((1000, 600)).save(path, quality=90)
    assert load_image(path, DecodeConfig(), (32, 32)).size == (250, 150)  # 1/4: the largest keeping sides >= 4x32
    assert load_image(path, DecodeConfig(exact=True), (32, 32)).size == (1000, 600)
    assert load_image(path, DecodeConfig(), None).size == (1000, 600)  # no target size: nothing to reduce towards
    png = tmp_path / "big.png"
    photo.resize((1000, 600)).save(png)
    assert load_image(png, DecodeConfig(), (32, 32)).size == (1000, 600)  # only JPEG has a reduced-scale decode


def test_reduced_scale_and_exact_decodes_agree_on_large_photos(tmp_path: Path, test_images: list[Path]) -> None:
    """The bundled model on 60 real test images enlarged to 512-1024 px JPEGs: the reduced-scale decode changes
    pixels a little, and must not change the answers much (the bench measures this on 1,000 images)."""
    photos = upscaled_photos(test_images[::5], tmp_path)
    draft = Classifier(device="cpu", precision="fp32").predict(photos)
    exact = Classifier(device="cpu", precision="fp32", decode=DecodeConfig(exact=True)).predict(photos)
    agreement = np.mean([a.label == b.label for a, b in zip(draft, exact, strict=True)])
    assert agreement >= 0.9, agreement


def test_budget_makes_a_large_decode_wait_for_room() -> None:
    budget = DecodeBudget(100)
    events: list[str] = []
    first_holds, second_started = threading.Event(), threading.Event()

    def second() -> None:
        second_started.set()
        with budget.hold(50):
            events.append("second in")

    with budget.hold(60):
        first_holds.set()
        thread = threading.Thread(target=second)
        thread.start()
        second_started.wait()
        time.sleep(0.1)  # ample time for the second to get in, were it not blocked
        events.append("first out")
    thread.join(timeout=5)
    assert events == ["first out", "second in"]
    with budget.hold(10**9):  # larger than the whole budget: it runs alone, holding all of it
        assert budget.in_use == 100
    assert budget.in_use == 0 and budget.peak == 100


@pytest.mark.parametrize(("max_pixels", "most_at_once"), [(64 * 64, 1), (DEFAULT_MAX_PIXELS, 4)])
def test_images_decoded_at_once_are_bounded_by_the_pixel_budget(
    tmp_path: Path, photo: Image.Image, monkeypatch: pytest.MonkeyPatch, max_pixels: int, most_at_once: int
) -> None:
    """8 images of 64x64 through 4 decoding threads: with a budget of one image they decode one at a time."""
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"{i}.png")
        photo.resize((64, 64)).save(paths[-1])
    running, most = 0, 0
    lock = threading.Lock()
    original = decode_module.to_rgb

    def slow_to_rgb(img: Image.Image) -> Image.Image:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)  # long enough for every free thread to arrive while this one decodes
        with lock:
            running -= 1
        return original(img)

    monkeypatch.setattr(decode_module, "to_rgb", slow_to_rgb)
    clf = Classifier(TINY, device="cpu", decode=DecodeConfig(max_pixels=max_pixels))
    results = list(classify_files(clf, [str(p) for p in paths], batch_size=8, workers=4))
    assert all(r.prediction is not None for r in results)
    assert most == most_at_once
    assert clf._budget.peak == min(max_pixels, most_at_once * 64 * 64)


def test_the_resume_command_keeps_the_decoding_and_precision_flags() -> None:
    cfg = InferConfig(format="jsonl", output=Path("o.jsonl"), precision="fp32", max_pixels=5000, exact=True)
    assert resume_command(cfg, ["photos"]) == (
        "cifar-infer --format jsonl --output o.jsonl --precision fp32 --max-pixels 5000 --exact --resume photos"
    )
