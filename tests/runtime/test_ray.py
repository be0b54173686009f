"""Ray Data gives cifar-infer's rows: a real local Ray instance (2 CPUs, no network), real JPEGs and bad files.

Runs where Ray is installed (`pip install './runtime[ray]'`, the .venv-ray of the README); skipped elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_files import TINY, bad_images
from typer.testing import CliRunner

from cifar_runtime import EXIT_PARTIAL, EXIT_USAGE
from cifar_runtime.cli import app as infer_app

ray = pytest.importorskip(
    "ray", reason="Ray is not installed: pip install './runtime[ray]' (see README, Scale out on Ray)"
)
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with ray[data]")
from cifar_runtime import ray_data  # noqa: E402  (only importable with Ray)
from cifar_runtime.ray_cli import app as ray_app  # noqa: E402

pytestmark = pytest.mark.ray
TOLERANCE = 1e-6 + 1e-12  # confidences are rounded to 6 decimals: one step of rounding apart at most


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance of 2 CPUs for this module, stopped at its end."""
    os.environ.pop("RAY_ADDRESS", None)  # never join a cluster from a test
    assert ray_data.connect(num_cpus=2), "a Ray instance was already running"
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(cifar_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The fixture's test/ split (300 real JPEGs), a folder of bad files, a good image whose name is not UTF-8, and
    a named file that does not exist."""
    bad, odd = tmp_path_factory.mktemp("bad"), tmp_path_factory.mktemp("odd")
    jpeg = next((cifar_fixture / "test" / "cat").glob("*.jpg")).read_bytes()
    for name, data in bad_images(jpeg).items():  # empty, truncated, corrupt, text named .jpg, decompression bombs
        (bad / name).write_bytes(data)
    (odd / os.fsdecode(b"caf\xe9.jpg")).write_bytes(jpeg)
    return [str(cifar_fixture / "test"), str(bad), str(odd), str(bad / "missing.jpg")]


def infer_rows(args: list[str], *flags: str) -> list[dict]:
    result = CliRunner().invoke(infer_app, [*flags, "-f", "jsonl", *args])
    assert result.exit_code == EXIT_PARTIAL, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_same_rows(got: list[dict], want: list[dict]) -> None:
    """Same paths, labels, indices, top-k labels and error rows; confidences within TOLERANCE."""
    assert [r["path"] for r in got] == [r["path"] for r in want]
    for g, w in zip(got, want, strict=True):
        if "error" in w:
            assert g == w
            continue
        assert (g["label"], g["index"], [s["label"] for s in g["top_k"]], g["abstained"]) == (
            w["label"],
            w["index"],
            [s["label"] for s in w["top_k"]],
            w["abstained"],
        ), w["path"]
        confidences = [(g["confidence"], w["confidence"])] + [
            (a["confidence"], b["confidence"]) for a, b in zip(g["top_k"], w["top_k"], strict=True)
        ]
        assert all(abs(a - b) <= TOLERANCE for a, b in confidences), (w["path"], confidences)


def test_ray_writes_the_rows_cifar_infer_writes(local_ray: None, inputs: list[str], tmp_path: Path) -> None:
    want = infer_rows(inputs, "-k", "3", "--min-confidence", "recommended")  # the bundled model, by default in both
    assert 0 < sum(r.get("abstained", False) for r in want) < 300  # some rows abstain, most do not
    out = tmp_path / "preds.jsonl"
    # several batches on each of two actors
    cfg = ray_data.RayConfig(top_k=3, batch_size=16, actors=2, min_confidence="recommended")
    summary = ray_data.classify(inputs, out, cfg)
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert_same_rows(got, want)
    errors = [r for r in want if "error" in r]
    assert len(errors) == len(bad_images(b"")) + 1 and len(want) == 300 + 1 + len(errors)  # bad files + missing.jpg
    assert (summary.files, summary.classified, summary.failed) == (len(want), len(want) - len(errors), len(errors))
    assert any(r["path"].endswith("caf\\xe9.jpg") and "label" in r for r in got)  # written as cifar-infer writes it


def test_uris_read_by_ray_give_the_same_rows(local_ray: None, inputs: list[str]) -> None:
    """The URI route: Ray's own read_binary_files lists and reads the files (file:// here, s3:// on a cluster), and
    the actors decode bytes instead of paths."""
    test_split, bad, _, _ = inputs
    want = sorted(infer_rows([test_split, bad], "-m", str(TINY)), key=lambda r: r["path"])
    ds, unreadable = ray_data.read_inputs([f"file://{test_split}", f"file://{bad}"])
    assert ds.schema().names == ["bytes", "path"] and unreadable == []
    cfg = ray_data.RayConfig(model=TINY, batch_size=32)  # no fixed --actors: the autoscaling pool leaves reads a CPU
    got = sorted(ray_data.classify_dataset(ds, cfg).take_all(), key=lambda r: r["path"])
    got = [{k: v for k, v in row.items() if v is not None} for row in got]  # a column a row lacks is null
    assert_same_rows(got, want)  # Ray gives a file:// URI's path without the scheme: cifar-infer's absolute path


def test_cli_writes_parquet_and_says_partial(local_ray: None, inputs: list[str], tmp_path: Path) -> None:
    out = tmp_path / "preds.parquet"
    result = CliRunner().invoke(ray_app, ["classify", *inputs, "-m", str(TINY), "-f", "parquet", "-o", str(out)])
    assert result.exit_code == EXIT_PARTIAL, result.output
    want = infer_rows(inputs, "-m", str(TINY))
    errors = sum("error" in r for r in want)
    assert f"{len(want)} files, {len(want) - errors} classified, {errors} failed" in result.stderr
    rows = pq.read_table(out).to_pylist()
    got = sorted(({k: v for k, v in r.items() if v is not None} for r in rows), key=lambda r: r["path"])
    assert_same_rows(got, sorted(want, key=lambda r: r["path"]))
    assert ray.is_initialized()  # the CLI leaves a Ray it did not start running


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["{empty}", "-o", "{out}"], "no image files found in", id="no-images"),
        pytest.param(["{images}", "-m", "{bad_model}", "-o", "{out}"], "model.onnx", id="bad-model"),
        pytest.param(["{images}", "-o", "s3://bucket/preds.jsonl"], "use --format parquet", id="jsonl-to-a-uri"),
        pytest.param(["file://{images}", "--actors", "2", "-o", "{out}"], "leave a CPU", id="actors-starve-reads"),
        pytest.param(["{images}", "--address", "127.0.0.1:9", "-o", "{out}"], "cannot connect", id="no-cluster"),
    ],
)
def test_cli_refuses_bad_runs_with_one_line_and_exit_2(
    local_ray: None, args: list[str], says: str, cifar_fixture: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    names = {
        "empty": tmp_path / "empty",
        "out": tmp_path / "out.jsonl",
        "images": cifar_fixture / "test" / "cat",
        "bad_model": tmp_path / "model.onnx",
    }
    if "--address" in args:  # with Ray already up the CLI would use it: it joins a cluster only when none is
        ray.shutdown()
    try:
        result = CliRunner().invoke(ray_app, ["classify", *(a.format(**names) for a in args)])
    finally:
        if not ray.is_initialized():
            ray_data.connect(num_cpus=2)
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith("cifar-ray: error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    assert says in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_ray_brings_no_torch() -> None:
    assert importlib.util.find_spec("torch") is None, "Ray or one of its dependencies installed torch"
