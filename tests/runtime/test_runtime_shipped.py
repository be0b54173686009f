"""The trained model that ships inside the package: it is the published artifact, and it classifies real images."""

import hashlib
import json
from pathlib import Path

from runtime_files import SHIPPED_RUN, SMALL_RUN

from cifar_runtime import Classifier
from cifar_runtime.locate import bundled_model


def test_bundled_model_is_exported_from_the_committed_checkpoint_with_its_temperature():
    bundled = bundled_model()
    assert bundled is not None, "the bundled model in runtime/cifar_runtime/models/ is missing"
    metrics = json.loads((SHIPPED_RUN / "metrics.json").read_text())
    for precision in ("fp32", "int8"):
        info = Classifier(bundled, device="cpu", precision=precision).info
        checkpoint = hashlib.sha256((SHIPPED_RUN / "best.pt").read_bytes()).hexdigest()
        assert info.source_sha256 == checkpoint, f"the bundled {precision} file comes from another checkpoint"
        assert info.temperature == metrics["temperature_scaling"]["0"]["temperature"]
        assert info.recommended_min_confidence == metrics["temperature_scaling"]["0"]["threshold"]["threshold"]


def test_bundled_model_classifies_the_real_fixture_near_its_test_accuracy(cifar_fixture: Path):
    clf = Classifier(device="cpu")
    paths = sorted((cifar_fixture / "test").glob("*/*.jpg"))
    assert len(paths) == 300
    predictions = clf.predict(paths)
    accuracy = sum(p.label == path.parent.name for p, path in zip(predictions, paths, strict=True)) / len(paths)
    # Its accuracy on the 10,000 test images through cifar-infer, as benchmarks/folder_check.py recorded it.
    published = json.loads((SHIPPED_RUN / "folder_check.int8.json").read_text())["accuracy"] / 100
    # 300 real test images: the binomial standard deviation is ~1.7 points at 90%, so 5 points is 3 sigma.
    assert abs(accuracy - published) <= 0.05, (accuracy, published)


def test_the_small_bundled_model_is_the_distilled_students_int8_file_with_its_temperature(cifar_fixture: Path):
    small = bundled_model("small")
    assert small is not None, "the small bundled model in runtime/cifar_runtime/models/ is missing"
    clf = Classifier("small", device="cpu")
    assert clf.model_path == small and clf.info.precision == "int8"  # int8 only: auto runs it as it is
    metrics = json.loads((SMALL_RUN / "metrics.json").read_text())
    published = json.loads((SMALL_RUN / "airbench94.int8.onnx.parity.json").read_text())
    assert clf.info.source_sha256 == published["source_sha256"]  # the file its parity report is about
    assert clf.info.temperature == metrics["temperature_scaling"]["0"]["temperature"]
    paths = sorted((cifar_fixture / "test").glob("*/*.jpg"))
    accuracy = sum(p.label == path.parent.name for p, path in zip(clf.predict(paths), paths, strict=True)) / 300
    expected = json.loads((SMALL_RUN / "folder_check.int8.json").read_text())["accuracy"] / 100
    assert abs(accuracy - expected) <= 0.05, (accuracy, expected)  # 3 sigma on 300 images, as for the default


def test_classifier_and_cifar_infer_give_the_same_answers_by_default(cifar_fixture: Path):
    from typer.testing import CliRunner

    from cifar_runtime.cli import app

    result = CliRunner().invoke(app, [str(cifar_fixture / "test"), "-f", "jsonl"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    predictions = Classifier().predict([row["path"] for row in rows])
    assert Classifier().model_path.name.endswith(".int8.onnx")  # auto on CPU, as the CLI
    assert [p.label for p in predictions] == [row["label"] for row in rows]
    assert max(abs(round(p.confidence, 6) - row["confidence"]) for p, row in zip(predictions, rows, strict=True)) < 1e-6
