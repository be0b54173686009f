"""`cifar-infer` through Typer's CliRunner: formats, bad inputs, exit codes, --resume, stdin, --info."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import onnxruntime as ort
import pytest
from runtime_files import TINY, TINY_BATCH3, TINY_NOMETA, bad_images, unusual_images
from typer.testing import CliRunner, Result

from cifar_runtime import locate
from cifar_runtime.cli import app
from cifar_runtime.exitcodes import MEANINGS

KEYS_OK = ["path", "label", "index", "confidence", "top_k", "abstained"]
KEYS_ERROR = ["path", "error"]


def invoke(*args: str | Path, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def jsonl_rows(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed run (and no traceback)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_folder_to_jsonl(cifar_fixture: Path, test_images: list[Path]) -> None:
    result = invoke("-m", TINY, "-f", "jsonl", "-k", "2", cifar_fixture / "test")
    assert result.exit_code == 0, result.output
    rows = jsonl_rows(result.stdout)
    assert [r["path"] for r in rows] == [str(p) for p in test_images]  # one row per file, walk order
    for row in rows:
        assert list(row) == KEYS_OK
        assert [list(k) for k in row["top_k"]] == [["label", "confidence"]] * 2  # type: ignore[union-attr]
    assert result.stderr.splitlines()[-1].startswith("cifar-infer: 300 files, 300 classified, 0 failed, ")


def test_mixed_folder_gives_error_rows_and_exit_1(mixed_folder: Path, photo: object) -> None:
    result = invoke("--model", TINY, "--format", "jsonl", "--batch-size", "4", mixed_folder)
    assert result.exit_code == 1, result.output
    rows = {Path(str(r["path"])).name: r for r in jsonl_rows(result.stdout)}
    good, bad = set(unusual_images(photo)), set(bad_images(b""))  # type: ignore[arg-type]
    assert set(rows) == good | bad  # notes.txt and .DS_Store are not image files: no rows
    assert all(list(rows[name]) == KEYS_OK for name in good)
    for name in bad:
        assert list(rows[name]) == KEYS_ERROR and "\n" not in str(rows[name]["error"])
    assert "larger than the pixel limit" in str(rows["bomb_warn.png"]["error"])
    assert "larger than Pillow's own hard limit" in str(rows["bomb_error.png"]["error"])  # 400 Mpx: past Pillow's own
    summary = f"cifar-infer: {len(rows)} files, {len(good)} classified, {len(bad)} failed, "
    assert one_error_line(result).startswith(summary)  # no warnings, no tracebacks: just the summary


def test_csv_to_output_file(tmp_path: Path, test_images: list[Path]) -> None:
    out = tmp_path / "out.csv"
    missing = tmp_path / "missing.jpg"
    result = invoke("-m", TINY, "-f", "csv", "-o", out, test_images[0], missing, test_images[1])
    assert result.exit_code == 1 and result.stdout == ""
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [r["path"] for r in rows] == [str(test_images[0]), str(missing), str(test_images[1])]
    assert list(rows[0]) == ["path", "label", "index", "confidence", "top_k", "abstained", "error"]
    assert rows[1]["error"] == "No such file or directory" and rows[1]["label"] == ""
    assert json.loads(rows[0]["top_k"])[0]["label"] == rows[0]["label"]


def test_table_is_the_default(test_images: list[Path]) -> None:
    result = invoke("-m", TINY, test_images[0])
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split() == ["label", "conf", "path"] and row.endswith(str(test_images[0]))


def test_json_format_is_one_array(test_images: list[Path]) -> None:
    result = invoke("-m", TINY, "-f", "json", *test_images[:3])
    assert [r["path"] for r in json.loads(result.stdout)] == [str(p) for p in test_images[:3]]


def test_resume_skips_rows_already_written(tmp_path: Path, cifar_fixture: Path) -> None:
    out = tmp_path / "out.jsonl"
    folder = cifar_fixture / "test"
    assert invoke("-m", TINY, "-f", "jsonl", "-o", out, folder).exit_code == 0
    complete = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(complete[:100]) + complete[100][:25], encoding="utf-8")  # interrupted mid-row
    result = invoke("-m", TINY, "-f", "jsonl", "-o", out, "--resume", folder)
    assert result.exit_code == 0, result.output
    assert "200 files, 200 classified, 0 failed, 100 skipped (already in output)" in result.stderr
    assert out.read_text(encoding="utf-8").splitlines(keepends=True) == complete  # same rows, none twice
    again = invoke("-m", TINY, "-f", "jsonl", "-o", out, "--resume", folder)
    assert again.exit_code == 0 and "0 files, 0 classified" in again.stderr
    assert out.read_text(encoding="utf-8").splitlines(keepends=True) == complete


def test_resume_csv_appends_without_a_second_header(tmp_path: Path, test_images: list[Path]) -> None:
    out = tmp_path / "out.csv"
    invoke("-m", TINY, "-f", "csv", "-o", out, *test_images[:2])
    invoke("-m", TINY, "-f", "csv", "-o", out, "--resume", *test_images[:4])
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [r["path"] for r in rows] == [str(p) for p in test_images[:4]]


def test_paths_from_stdin(tmp_path: Path, test_images: list[Path], cifar_fixture: Path) -> None:
    stdin = f"{test_images[0]}\n{cifar_fixture / 'test' / 'cat'}\n"
    result = invoke("-m", TINY, "-f", "jsonl", "-", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert len(jsonl_rows(result.stdout)) == 1 + 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "{tmp}/absent.onnx", "{img}"], "model file not found"),
        (["-m", "{tmp}/junk.onnx", "{img}"], "cannot load model"),
        (["-m", str(TINY_NOMETA), "{img}"], "lacks the metadata"),
        (["-m", str(TINY), "--resume", "{img}"], "--resume needs --output"),
        (["-m", str(TINY), "--resume", "-o", "{tmp}/t.txt", "{img}"], "--resume needs --format jsonl or csv"),
        (["-m", str(TINY), "-k", "11", "{img}"], "--top-k must be between 1 and 10"),
        (["-m", str(TINY), "--batch-size", "1000000", "{img}"], "--batch-size must be between 1 and 5461"),
        (["-m", str(TINY), "{tmp}/nodir/"], "no such file or folder: "),  # a typo: nothing could be classified
        (["-m", str(TINY), "-o", "{tmp}/no/such/dir/out.jsonl", "{img}"], "cannot write"),
    ],
)
def test_usage_and_model_errors_exit_2_in_one_line(
    tmp_path: Path, test_images: list[Path], args: list[str], message: str
) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"\0" * 100)
    result = invoke(*[a.format(tmp=tmp_path, img=test_images[0]) for a in args])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith("cifar-infer: error: ") and message in line


def test_no_default_model_exits_2(monkeypatch: pytest.MonkeyPatch, test_images: list[Path]) -> None:
    monkeypatch.setattr(locate, "BUNDLED_NAME", "not_shipped.onnx")
    result = invoke(test_images[0])
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "cifar-infer: error: no default model is bundled with this cifar-runtime: "
        "pass --model FILE (Classifier(model=...)) or set CIFAR_MODEL=FILE"
    )


def test_click_usage_errors_exit_2(test_images: list[Path]) -> None:
    assert invoke("-m", TINY, "--format", "xml", test_images[0]).exit_code == 2
    assert invoke("-m", TINY, "--batch-size", "0", test_images[0]).exit_code == 2
    assert invoke("-m", TINY).exit_code == 2  # no paths
    assert invoke().exit_code == 2  # no arguments at all: help, as a usage error


def test_help_documents_exit_codes() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit codes (the same in cifar-ray, cifar-train, cifar-export):" in text
    for code, meaning in MEANINGS.items():
        assert f"{code} {meaning}" in text
    assert "CIFAR_MODEL" in text and "--top-k" in text and "--resume" in text


def test_version_and_info() -> None:
    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout.startswith("cifar-runtime ")
    assert f"onnxruntime {ort.__version__}" in version.stdout
    info = invoke("--info", "-m", TINY)
    assert info.exit_code == 0, info.output
    for needle in (
        f"onnxruntime: {ort.__version__}",
        "providers available: ",
        "providers active: CPUExecutionProvider",
        "classes (10): airplane, automobile,",
        "input: float32 (N, 3, 32, 32)",
        "mean: [0.5, 0.5, 0.5]",
    ):
        assert needle in info.stdout
    assert invoke("--info", "-m", TINY_NOMETA).exit_code == 2


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA really loads here")
def test_cuda_fallback_is_one_warning_line(test_images: list[Path]) -> None:
    result = invoke("-m", TINY, "--device", "cuda", test_images[0])
    assert result.exit_code == 0
    warning, summary = result.stderr.splitlines()
    assert warning.startswith("cifar-infer: warning: CUDAExecutionProvider not used (")
    assert warning.endswith("running on CPUExecutionProvider")
    assert summary.startswith("cifar-infer: 1 files, 1 classified")


def test_rows_stream_one_per_line_as_they_are_done(test_images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row is flushed as soon as it is written: a crash later keeps every row before it."""
    from cifar_runtime import infer

    flushed: list[int] = []

    class Recorder(io.StringIO):
        def flush(self) -> None:
            flushed.append(self.getvalue().count("\n"))

    out = Recorder()
    cfg = infer.InferConfig(model=TINY, format="jsonl", batch_size=2)
    summary = infer.infer_files(cfg, [str(p) for p in test_images[:5]], io.StringIO(), out, io.StringIO())
    assert summary.classified == 5
    assert flushed == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("change", [["-k", "3"], ["--model", "{other}"], ["--min-confidence", "0.5"]])
def test_resume_with_other_settings_is_refused_and_the_output_kept(
    tmp_path: Path, test_images: list[Path], change: list[str]
) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(TINY_BATCH3.read_bytes())  # another model (static batch): same classes, other file
    out = tmp_path / "rows.jsonl"
    first = invoke("-m", TINY, "-f", "jsonl", "-o", out, *test_images[:3])
    before = out.read_text()
    args = ["-m", TINY, "-f", "jsonl", "-o", out, "--resume", *test_images[:5]]
    changed = [a.format(other=other) for a in change]
    result = invoke(*(changed + args if change[0] != "--model" else [*changed, *args[2:]]))
    assert first.exit_code == 0 and result.exit_code == 2 and out.read_text() == before
    assert "cannot resume" in one_error_line(result) and "made with other settings" in one_error_line(result)
    assert invoke(*args).exit_code == 0 and len(jsonl_rows(out.read_text())) == 5  # the same settings resume


@pytest.mark.parametrize("module", ["cifar_runtime.cli", "cifar_runtime.ray_cli"])
def test_every_cli_prints_the_same_exit_codes_and_a_version(module: str) -> None:
    import importlib

    from cifar_runtime.exitcodes import MEANINGS

    cli = importlib.import_module(module).app
    text = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("cifar-runtime ")
    if module.endswith("ray_cli"):  # the table is on its command's help
        text = " ".join(CliRunner().invoke(cli, ["classify", "--help"]).output.split())
    assert all(" ".join(meaning.split()) in text for meaning in MEANINGS.values())
