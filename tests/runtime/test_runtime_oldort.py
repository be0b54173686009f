"""Old runtimes on devices: the oldest versions runtime/pyproject.toml allows must run every bundled model file.

Creates a venv, installs each dependency at its declared floor (`onnxruntime>=1.17` -> `onnxruntime==1.17`) and the
runtime itself, then classifies the real fixture with every file in cifar_runtime/models/. Needs PyPI, takes about
a minute: it runs only when selected, `pytest -m oldort tests/runtime`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from extras import missing

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "runtime"
MODELS = RUNTIME / "cifar_runtime" / "models"
TIMEOUT = 900  # seconds, for pip

pytestmark = pytest.mark.oldort


def oldest_requirements() -> list[str]:
    """Each declared dependency pinned at its floor, e.g. "onnxruntime>=1.17" -> "onnxruntime==1.17"."""
    declared = tomllib.loads((RUNTIME / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = []
    for requirement in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)\s*", requirement)
        assert match, f"{requirement!r}: give every runtime dependency a floor (name>=version)"
        pins.append(f"{match[1]}=={match[2]}")
    return pins


@pytest.fixture(scope="module")
def old_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "oldort" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("installs the oldest declared onnxruntime from PyPI: run with -m oldort")
    venv = tmp_path_factory.mktemp("oldest") / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for args in ([*oldest_requirements()], ["--no-deps", RUNTIME]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=TIMEOUT)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING")]
            missing(f"pip cannot install {args}: {lines[-1] if lines else done.returncode}")
    return python


def test_the_oldest_declared_versions_are_what_got_installed(old_python: Path) -> None:
    listed = subprocess.run(
        [old_python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    installed = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
    for pin in oldest_requirements():
        name, version = pin.split("==")
        assert installed[name.lower()].startswith(version), (pin, installed[name.lower()])


@pytest.mark.parametrize("model", sorted(p.name for p in MODELS.glob("*.onnx")))
def test_every_bundled_model_classifies_the_fixture(old_python: Path, cifar_fixture: Path, model: str) -> None:
    script = (
        "import sys; from pathlib import Path; from cifar_runtime import Classifier\n"
        "clf = Classifier(sys.argv[1], device='cpu')\n"  # the file exactly as given, whatever its precision
        "paths = sorted(Path(sys.argv[2]).glob('*/*.jpg'))\n"
        "hits = sum(p.label == path.parent.name for p, path in zip(clf.predict(paths), paths))\n"
        "print(clf.precision, len(paths), hits)\n"
    )
    done = subprocess.run(
        [old_python, "-c", script, MODELS / model, cifar_fixture / "test"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    precision, images, hits = done.stdout.split()
    assert int(images) == 300 and int(hits) / 300 > 0.7, done.stdout  # the real model scores ~85% on them


def test_the_default_run_needs_no_fallback(old_python: Path, cifar_fixture: Path) -> None:
    cli = old_python.parent / "cifar-infer"
    done = subprocess.run([cli, "-f", "jsonl", cifar_fixture / "test"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, done.stderr  # e.g. an int8 file this onnxruntime cannot load
    assert len(done.stdout.splitlines()) == 300
