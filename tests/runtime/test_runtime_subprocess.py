"""`cifar-infer` and `python -m cifar_runtime` as real processes, and proof that nothing imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from runtime_files import TINY

from cifar_runtime.locate import bundled_model

SCRIPT = Path(sys.executable).parent / "cifar-infer"  # the console script pip installed beside python
TIMEOUT = 60  # seconds; a hang (e.g. a symlink loop walked forever) fails instead of blocking CI


def run(*args: str | Path, stdin: str | None = None, module: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cifar_runtime"] if module else [str(SCRIPT)]
    return subprocess.run(
        [*command, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_module_on_a_folder(cifar_fixture: Path) -> None:
    done = run("-m", TINY, "-f", "jsonl", cifar_fixture / "train", module=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    keys = ["path", "label", "index", "confidence", "top_k", "abstained"]
    assert len(rows) == 200 and all(list(r) == keys for r in rows)
    assert done.stderr.startswith("cifar-infer: 200 files, 200 classified, 0 failed")


def test_console_script_on_bad_files_and_a_symlink_loop(mixed_folder: Path, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "mixed").symlink_to(mixed_folder)
    (loop / "back").symlink_to(loop)  # loop/back/back/back/... would never end
    done = run("--model", TINY, "--format", "csv", loop)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert "15 classified, 6 failed" in done.stderr


def test_stdin_and_env_model(test_images: list[Path]) -> None:
    stdin = "".join(f"{p}\n" for p in test_images[:3])
    done = subprocess.run(
        [str(SCRIPT), "-f", "jsonl", "-"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={"CIFAR_MODEL": str(TINY), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["path"] for line in done.stdout.splitlines()] == [str(p) for p in test_images[:3]]


def test_without_a_model(test_images: list[Path]) -> None:
    done = run(test_images[0])
    if bundled_model() is None:
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("cifar-infer: error: no default model is bundled")
        assert len(done.stderr.splitlines()) == 1
    else:  # once a trained model ships inside the package, the same command just works
        assert done.returncode == 0, done.stderr


# Runs in a fresh interpreter that refuses to import torch, torchvision or onnx, so it proves the
# runtime works without them even in a dev environment that has them installed.
NO_TORCH = textwrap.dedent(
    """
    import io, sys
    from importlib.abc import MetaPathFinder

    class Refuse(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "onnx"):
                raise ImportError(f"{name} is off limits for cifar_runtime")

    sys.meta_path.insert(0, Refuse())
    from typer.testing import CliRunner
    from cifar_runtime import Classifier
    from cifar_runtime.cli import app

    model, image, folder = sys.argv[1:4]
    print(Classifier(model).predict([image, image], top_k=3)[0].label)
    result = CliRunner().invoke(app, ["-m", model, "-f", "jsonl", "--info", folder])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["-m", model, "-f", "csv", folder])
    assert result.exit_code == 0, result.output
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "onnx"))
    assert not heavy, heavy
    print("no torch")
    """
)


def test_api_and_cli_never_import_torch(test_images: list[Path], cifar_fixture: Path) -> None:
    args = [str(TINY), str(test_images[0]), str(cifar_fixture / "test" / "dog")]
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "no torch"


def test_a_reader_that_closes_the_pipe_stops_it_quietly(cifar_fixture: Path) -> None:
    """`cifar-infer folder | head -1`: no error line, exit 141 as any Unix filter whose reader left."""
    done = subprocess.run(
        f"'{SCRIPT}' -m '{TINY}' -f jsonl '{cifar_fixture}' | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert len(done.stdout.splitlines()) == 1 and json.loads(done.stdout)["label"]
    assert done.returncode == 141 and done.stderr == ""


def test_no_telemetry_warning_when_home_is_not_writable(test_images: list[Path], tmp_path: Path) -> None:
    home = tmp_path / "a-file"  # ONNX Runtime cannot store its telemetry device id under it, even as root
    home.write_text("")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}  # and no ORT_DISABLE_TELEMETRY of the caller's
    done = subprocess.run(
        [str(SCRIPT), "--model", str(TINY), str(test_images[0])],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("cifar-infer: 1 files, 1 classified"), done.stderr


def test_classifier_and_cifar_infer_give_the_same_answers_by_default(test_images: list[Path]) -> None:
    from cifar_runtime import Classifier

    done = run("-f", "jsonl", *test_images)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    predictions = Classifier().predict(list(test_images))  # the bundled model at default precision, as the CLI
    assert [p.label for p in predictions] == [r["label"] for r in rows]
    assert [round(p.confidence, 6) for p in predictions] == [round(r["confidence"], 6) for r in rows]
