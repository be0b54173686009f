"""What a user hits when things go wrong: write errors, Ctrl-C, resumed failures, wrong model files, empty input.

Each has one line on stderr and the exit code of the README's table; Ctrl-C is sent to a real process.
"""

from __future__ import annotations

import io
import json
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from runtime_files import TINY, png_header_only
from typer.testing import CliRunner, Result

from cifar_runtime import Classifier, ImageError, Interrupted, Prediction
from cifar_runtime.cli import app
from cifar_runtime.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT_FAILED, EXIT_PARTIAL, EXIT_USAGE

SCRIPT = Path(sys.executable).parent / "cifar-infer"
TIMEOUT = 300  # seconds: a hang guard, not a speed check (finishing 20,000 files at batch 1 on a loaded 2-core box)


def invoke(*args: str | Path, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def only_line(result: Result) -> str:
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in result.output
    return line


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json", "table"])
def test_a_full_disk_is_one_line_and_exit_4(test_images: list[Path], fmt: str) -> None:
    result = invoke("-m", TINY, "-f", fmt, "-o", "/dev/full", *test_images[:3])
    assert result.exit_code == EXIT_OUTPUT_FAILED
    assert only_line(result) == "cifar-infer: error: cannot write /dev/full: No space left on device"
    assert Path("/dev/full").is_char_device()  # a whole-file format wrote into it, never renamed over it


def test_stdout_write_errors_exit_4_in_a_real_process(test_images: list[Path]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [SCRIPT, "-m", TINY, "-f", "jsonl", test_images[0]], stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert done.returncode == EXIT_OUTPUT_FAILED
    assert done.stderr == "cifar-infer: error: cannot write stdout: No space left on device\n"


def many_files(tmp_path: Path, test_images: list[Path], n: int) -> Path:
    """n image files (symlinks to the fixture): enough that a run is still going when Ctrl-C arrives."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i:05d}.jpg").symlink_to(test_images[i % len(test_images)])
    return folder


def default_sigint() -> None:
    """In the child: Ctrl-C handled as in a terminal, even if this test process inherited SIGINT ignored (a child
    started with SIG_IGN keeps it, and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(proc: subprocess.Popen[str], ready: Path | Callable[[], Path | None]) -> str:
    """Send SIGINT once `ready` (a file, or a function finding it) has content: the run is writing rows. Returns
    the process's stderr."""
    deadline = time.monotonic() + TIMEOUT

    def has_rows() -> bool:
        path = ready() if callable(ready) else ready
        return path is not None and path.exists() and path.stat().st_size > 0

    while not has_rows():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    return stderr


def test_ctrl_c_says_rows_written_and_the_resume_command_that_finishes(tmp_path: Path, test_images: list[Path]) -> None:
    folder = many_files(tmp_path, test_images, 20000)
    out = tmp_path / "out.jsonl"
    args = ["-m", TINY, "-f", "jsonl", "-o", out, "--batch-size", "1", "--workers", "1", folder]
    proc = subprocess.Popen([SCRIPT, *map(str, args)], stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    stderr = interrupt_when(proc, out)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    (line,) = stderr.splitlines()
    rows = out.read_text(encoding="utf-8").splitlines()
    assert line.startswith(f"cifar-infer: interrupted: {len(rows)} rows written to {out}; to continue: cifar-infer ")
    assert 0 < len(rows) < 20000
    command = shlex.split(line.split("; to continue: ")[1])
    assert command[-2:] == ["--resume", str(folder)]
    done = subprocess.run([SCRIPT, *command[1:]], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == EXIT_OK, done.stderr
    paths = [json.loads(row)["path"] for row in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(paths) == sorted(str(p) for p in folder.iterdir())  # every file once


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_ctrl_c_right_after_a_row_is_written_still_counts_that_row(
    tmp_path: Path, test_images: list[Path], monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """A real SIGINT delivered the moment row 3 is in the file, before the run has counted it: the count says 3."""
    from cifar_runtime import infer

    make_writer = infer.make_writer

    def interrupting_writer(*args: object, **kwargs: object) -> object:
        writer = make_writer(*args, **kwargs)
        write = writer.write

        def write_then_ctrl_c(result: object) -> None:
            write(result)
            if len(written) == 2:
                signal.raise_signal(signal.SIGINT)
                for _ in range(1000):  # Python runs its signal handler here, at a loop's backward jump
                    pass
            written.append(result)

        writer.write = write_then_ctrl_c
        return writer

    written: list[object] = []
    monkeypatch.setattr(infer, "make_writer", interrupting_writer)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever pytest inherited
    out = tmp_path / f"out.{fmt}"
    cfg = infer.InferConfig(model=TINY, format=fmt, output=out, batch_size=1, workers=1)
    try:
        with pytest.raises(Interrupted) as stopped:
            infer.infer_files(cfg, [str(p) for p in test_images], io.StringIO(), io.StringIO(), io.StringIO())
    finally:
        signal.signal(signal.SIGINT, previous)
    rows = out.read_text(encoding="utf-8").splitlines()[(fmt == "csv") :]  # csv: after its header
    assert stopped.value.rows == len(rows) == 3
    assert signal.getsignal(signal.SIGINT) is previous  # the run put back the handler it found


def test_ctrl_c_leaves_an_earlier_json_file_intact(tmp_path: Path, test_images: list[Path]) -> None:
    folder = many_files(tmp_path, test_images, 20000)
    out = tmp_path / "out.json"
    out.write_text('[{"path": "earlier run"}]\n', encoding="utf-8")
    args = ["-m", TINY, "-f", "json", "-o", out, "--batch-size", "1", "--workers", "1", folder]
    proc = subprocess.Popen([SCRIPT, *map(str, args)], stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    stderr = interrupt_when(proc, lambda: next(tmp_path.glob(".out.json.*.tmp"), None))  # json goes to a temp file
    assert proc.returncode == EXIT_INTERRUPTED
    assert stderr == (
        f"cifar-infer: interrupted: 0 rows written to {out}; only --format jsonl or csv with --output can --resume\n"
    )
    assert json.loads(out.read_text(encoding="utf-8")) == [{"path": "earlier run"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many", "out.json"]  # no temporary file left


def test_json_output_replaces_the_file_only_when_complete(tmp_path: Path, test_images: list[Path]) -> None:
    out = tmp_path / "out.json"
    link = tmp_path / "link.json"
    link.symlink_to(out)
    assert invoke("-m", TINY, "-f", "json", "-o", link, *test_images[:2]).exit_code == EXIT_OK
    assert link.is_symlink() and len(json.loads(out.read_text(encoding="utf-8"))) == 2  # through the link


def test_resume_retries_files_that_failed_before(tmp_path: Path, test_images: list[Path]) -> None:
    late, broken = tmp_path / "late.jpg", tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "out.jsonl"
    inputs = [test_images[0], late, broken]
    assert invoke("-m", TINY, "-f", "jsonl", "-o", out, *inputs).exit_code == EXIT_PARTIAL
    shutil.copy(test_images[1], late)  # the missing file has arrived; broken.jpg is still broken
    result = invoke("-m", TINY, "-f", "jsonl", "-o", out, "--resume", *inputs)
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "2 files, 1 classified, 1 failed, 1 skipped (already in output), 2 earlier failures retried" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["path"], "error" in r) for r in rows] == [
        (str(test_images[0]), False),
        (str(late), False),
        (str(broken), True),
    ]


def test_resume_from_an_unreadable_output_is_one_line(tmp_path: Path, test_images: list[Path]) -> None:
    result = invoke("-m", TINY, "-f", "jsonl", "-o", tmp_path, "--resume", test_images[0])  # a folder
    assert result.exit_code == EXIT_USAGE
    assert only_line(result) == f"cifar-infer: error: cannot resume from {tmp_path}: Is a directory"


def test_a_pytorch_checkpoint_or_a_folder_as_model_says_what_to_do(
    tmp_path: Path, test_images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    zipped = tmp_path / "best.pt"  # torch.save's format: a zip holding <name>/data.pkl
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("best/data.pkl", pickle.dumps({"model": {}}, protocol=2))
        archive.writestr("best/version", "3\n")
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"state_dict": {}}, protocol=2))
    other_zip = tmp_path / "model.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("model.onnx", TINY.read_bytes())
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(TINY, folder / "cnn.onnx")
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    scripted, program = tmp_path / "cnn.torchscript.pt", tmp_path / "cnn.pt2"  # torch.jit.save and torch.export.save
    for path, names in (
        (scripted, ("code/__torch__/m.py", "data.pkl", "constants.pkl")),
        (program, ("archive_format", "models/model.json", "data/weights/w0")),
    ):
        with zipfile.ZipFile(path, "w") as archive:
            for name in names:
                archive.writestr(f"x/{name}", "")
    from_checkpoint = "export ONNX from the cifar-train checkpoint it came from: `cifar-export onnx CHECKPOINT.pt`"
    expected = {
        scripted: f"{scripted} is a TorchScript program, which ONNX Runtime cannot run: {from_checkpoint}",
        program: f"{program} is a torch.export (.pt2) program, which ONNX Runtime cannot run: {from_checkpoint}",
        empty_folder: f"{empty_folder} is a folder with no .onnx file in it: pass an ONNX model file",
        zipped: f"{zipped} is a PyTorch checkpoint, not an ONNX model: export it with `cifar-export onnx {zipped}`",
        legacy: f"{legacy} is a PyTorch checkpoint, not an ONNX model: export it with `cifar-export onnx {legacy}`",
        other_zip: f"{other_zip} is a zip archive, not an ONNX model: unpack it and pass the .onnx file in it "
        "(model.onnx)",
        folder: f"{folder} is a folder, not a model file: pass the .onnx file in it, e.g. {folder / 'cnn.onnx'}",
    }
    for model, message in expected.items():
        result = invoke("-m", model, test_images[0])
        assert result.exit_code == EXIT_USAGE and only_line(result) == f"cifar-infer: error: {message}"
    monkeypatch.setenv("CIFAR_MODEL", str(tmp_path / "gone.onnx"))
    result = invoke(test_images[0])
    assert result.exit_code == EXIT_USAGE
    assert only_line(result) == (
        f"cifar-infer: error: model file not found: {tmp_path / 'gone.onnx'} "
        "(the model named by the CIFAR_MODEL environment variable)"
    )


def test_a_decompression_bomb_warning_never_reaches_stderr(tmp_path: Path, classifier: Classifier) -> None:
    bomb = tmp_path / "90mpx.png"
    bomb.write_bytes(png_header_only(9500, 9500))  # 90.25 Mpx: just over Pillow's 89.5 Mpx warning limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (outcome,) = classifier.predict_many([bomb])
    assert isinstance(outcome, ImageError) and "larger than the pixel limit" in str(outcome)
    assert caught == []  # the API raised nothing else and printed nothing beside the error
    result = invoke("-m", TINY, "-f", "jsonl", bomb)
    assert result.exit_code == EXIT_PARTIAL and only_line(result).startswith("cifar-infer: 1 files, 0 classified")


@pytest.mark.parametrize("source", ["stdin", "empty folder", "folder of text"])
def test_no_image_files_is_a_usage_error(tmp_path: Path, source: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("no images here\n")
    arg = {"stdin": "-", "empty folder": empty, "folder of text": tmp_path / "text"}[source]
    out = tmp_path / "out.jsonl"
    out.write_text('{"path": "kept", "error": "x"}\n')
    result = invoke("-m", TINY, "-f", "jsonl", "-o", out, arg, stdin="")
    assert result.exit_code == EXIT_USAGE
    where = "stdin" if source == "stdin" else str(arg)
    assert only_line(result) == f"cifar-infer: error: no image files found in {where}"
    assert out.read_text() == '{"path": "kept", "error": "x"}\n'  # an earlier output is left alone


def test_top_k_help_states_its_maximum_and_larger_is_refused(test_images: list[Path]) -> None:
    assert "at most the model's number of classes, a larger K is refused" in " ".join(invoke("--help").stdout.split())
    result = invoke("-m", TINY, "-k", "11", test_images[0])
    assert result.exit_code == EXIT_USAGE
    assert only_line(result) == "cifar-infer: error: --top-k must be between 1 and 10 for this model, got 11"


def test_predict_many_gives_one_result_per_input_in_order(
    classifier: Classifier, test_images: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    good = [test_images[3], test_images[4], test_images[5]]
    results = classifier.predict_many([good[0], bad, good[1], tmp_path / "missing.png", good[2]], top_k=2, batch_size=2)
    assert [type(r) for r in results] == [Prediction, ImageError, Prediction, ImageError, Prediction]
    assert [r for r in results if isinstance(r, Prediction)] == classifier.predict(good, top_k=2)
    assert str(results[1]) == f"{bad}: not an image file Pillow can read"
    assert str(results[3]) == f"{tmp_path / 'missing.png'}: No such file or directory"
    assert classifier.predict_many([]) == []


def test_a_symlink_loop_is_named_as_what_it_is(tmp_path: Path, classifier: Classifier) -> None:
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    (outcome,) = classifier.predict_many([loop])
    assert isinstance(outcome, ImageError) and str(outcome).endswith("Too many levels of symbolic links")
