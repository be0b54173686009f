"""--precision: which file of a model family runs (fp32, its int8 sibling, fp16), and why, in the API and the CLI."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from runtime_files import TINY, with_metadata
from typer.testing import CliRunner

from cifar_runtime import CifarRuntimeWarning, Classifier, ModelError, UsageError
from cifar_runtime import precision as precision_module
from cifar_runtime.cli import app
from cifar_runtime.exitcodes import EXIT_OK, EXIT_USAGE
from cifar_runtime.locate import bundled_model
from cifar_runtime.precision import AUTO_MAX_DROP, accuracy_drop, sibling


def parity(reference: float = 84.8, accuracies: tuple[float, ...] = (84.7, 84.7), passed: bool = True) -> str:
    """A parity report as cifar-export writes it into a quantized file's metadata."""
    rows = [{"batch_size": b, "accuracy": a} for b, a in zip((1, 8, 7), accuracies, strict=False)]
    return json.dumps({"passed": passed, "precision": "int8", "reference_accuracy": reference, "rows": rows})


def family(folder: Path, **int8_metadata: str) -> Path:
    """m.onnx (the tiny fp32 model) and m.int8.onnx beside it: the same graph labelled int8, with a parity report
    (recording a 0.1-point drop) and any metadata given. Returns the fp32 file."""
    base = folder / "m.onnx"
    shutil.copy(TINY, base)
    metadata = {"precision": "int8", "parity": parity(), **int8_metadata}
    (folder / "m.int8.onnx").write_bytes(with_metadata(metadata))
    return base


def test_sibling_names() -> None:
    assert sibling(Path("a/cnn.onnx"), "int8") == Path("a/cnn.int8.onnx")
    assert sibling(Path("a/cnn.int8.onnx"), "fp32") == Path("a/cnn.onnx")
    assert sibling(Path("a/cnn.int8.onnx"), "fp16") == Path("a/cnn.fp16.onnx")


def test_auto_takes_int8_on_cpu_when_its_recorded_drop_is_small(tmp_path: Path) -> None:
    base = family(tmp_path)
    clf = Classifier(base, device="cpu", precision="auto")
    assert (clf.precision, clf.model_path) == ("int8", tmp_path / "m.int8.onnx")
    assert clf.precision_reason == f"auto: int8 on CPU (m.int8.onnx loses 0.10 accuracy points <= {AUTO_MAX_DROP})"


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ({"parity": parity(accuracies=(84.7, 84.4))}, f"m.int8.onnx loses 0.40 accuracy points > {AUTO_MAX_DROP}"),
        ({"parity": parity(passed=False)}, "m.int8.onnx records no passed accuracy check"),
        ({"parity": "not json"}, "m.int8.onnx records no passed accuracy check"),
        ({"parity": json.dumps({"passed": True, "rows": []})}, "m.int8.onnx records no passed accuracy check"),
    ],
)
def test_auto_keeps_fp32_when_int8_lost_too_much_or_did_not_say(tmp_path: Path, metadata: dict, why: str) -> None:
    clf = Classifier(family(tmp_path, **metadata), device="cpu", precision="auto")
    assert (clf.precision, clf.model_path, clf.precision_reason) == ("fp32", tmp_path / "m.onnx", f"auto: fp32 ({why})")


def test_auto_without_a_sibling_and_with_a_file_already_quantized(tmp_path: Path) -> None:
    clf = Classifier(TINY, device="cpu", precision="auto")
    assert (clf.precision, clf.precision_reason) == ("fp32", "auto: fp32 (no tiny_cnn.int8.onnx beside it)")
    family(tmp_path)
    clf = Classifier(tmp_path / "m.int8.onnx", device="cpu", precision="auto")
    assert (clf.precision, clf.precision_reason) == ("int8", "auto: int8, the file as given")


def test_auto_warns_and_keeps_fp32_for_a_stale_or_unloadable_sibling(tmp_path: Path) -> None:
    base = family(tmp_path, source_sha256="f" * 64)  # quantized from another checkpoint than m.onnx
    with pytest.warns(CifarRuntimeWarning, match="comes from another checkpoint"):
        assert Classifier(base, device="cpu", precision="auto").precision == "fp32"
    (tmp_path / "m.int8.onnx").write_bytes(b"\x08\x0a" + b"\xff" * 64)  # e.g. an IR version ORT cannot read
    with pytest.warns(CifarRuntimeWarning, match="m.int8.onnx not used .*; running fp32"):
        clf = Classifier(base, device="cpu", precision="auto")
    assert (clf.precision, clf.precision_reason) == ("fp32", "auto: fp32 (m.int8.onnx does not load here)")


def test_auto_keeps_fp32_on_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU here: make the CPU provider count as CUDA, so the CUDA branch runs on a real session.
    monkeypatch.setattr(precision_module, "CUDA", "CPUExecutionProvider")
    clf = Classifier(family(tmp_path), device="cpu", precision="auto")
    assert (clf.precision, clf.precision_reason) == ("fp32", "auto: fp32 on CUDA")


def test_explicit_precisions(tmp_path: Path) -> None:
    base = family(tmp_path)
    assert Classifier(base, device="cpu", precision="int8").model_path == tmp_path / "m.int8.onnx"
    as_fp32 = Classifier(tmp_path / "m.int8.onnx", device="cpu", precision="fp32")
    assert (as_fp32.model_path, as_fp32.precision_reason) == (base, "fp32, as asked")
    as_given = Classifier(base, device="cpu", precision=None)  # exactly the file given
    assert (as_given.model_path, as_given.precision_reason) == (base, "the file as given")
    default = Classifier(base, device="cpu")  # the API's default is the CLI's: auto
    assert default.model_path == tmp_path / "m.int8.onnx" and default.precision_reason.startswith("auto: int8")
    with pytest.raises(ModelError, match=r"no int8 version of .*tiny_cnn.onnx: expected .*tiny_cnn.int8.onnx"):
        Classifier(TINY, device="cpu", precision="int8")
    with pytest.raises(UsageError, match="fp16 runs only on CUDA"):
        Classifier(base, device="cpu", precision="fp16")
    with pytest.raises(UsageError, match="precision must be one of auto, fp32, int8, fp16"):
        Classifier(base, device="cpu", precision="int4")


def test_accuracy_drop_is_the_worst_batch_size_against_the_reference() -> None:
    info = Classifier(TINY, device="cpu").info
    assert accuracy_drop(info) is None  # an fp32 file has no parity report of this kind
    assert accuracy_drop(replace(info, extra={"parity": parity(accuracies=(84.7, 84.1, 84.6))})) == pytest.approx(0.7)


def test_cli_defaults_to_auto_and_info_says_which_precision_runs(tmp_path: Path, test_images: list[Path]) -> None:
    base = family(tmp_path)
    info = CliRunner().invoke(app, ["--info", "-m", str(base)])
    assert info.exit_code == EXIT_OK
    assert "precision: int8 (auto: int8 on CPU (m.int8.onnx loses 0.10 accuracy points <= 0.3))" in info.stdout
    assert f"model: {tmp_path / 'm.int8.onnx'}" in info.stdout
    fp32 = CliRunner().invoke(app, ["--info", "-m", str(base), "--precision", "fp32"])
    assert "precision: fp32 (fp32, the file as given)" in fp32.stdout
    missing = CliRunner().invoke(app, ["-m", str(TINY), "--precision", "int8", str(test_images[0])])
    assert missing.exit_code == EXIT_USAGE and missing.stderr.startswith("cifar-infer: error: no int8 version of")


def test_the_bundled_int8_sibling_is_what_auto_takes() -> None:
    bundled = bundled_model()
    assert bundled is not None
    int8 = sibling(bundled, "int8")
    clf = Classifier(device="cpu", precision="auto")
    assert (clf.model_path, clf.precision) == (int8, "int8")
