"""The trained model that ships inside the package: it is the published artifact, and it classifies real images."""

from pathlib import Path

from cifar_runtime import Classifier
from cifar_runtime.locate import bundled_model

REPO = Path(__file__).resolve().parents[2]


def test_bundled_model_is_the_published_artifact():
    bundled = bundled_model()
    assert bundled is not None, "runtime/cifar_runtime/models/cifar10_cnn.onnx is missing"
    assert bundled.read_bytes() == (REPO / "artifacts" / "cnn" / "cnn.onnx").read_bytes(), (
        "the runtime's copy differs from artifacts/cnn/cnn.onnx: copy the artifact into the package again"
    )


def test_bundled_model_classifies_the_real_fixture_near_its_test_accuracy(cifar_fixture: Path):
    clf = Classifier(device="cpu")
    paths = sorted((cifar_fixture / "test").glob("*/*.jpg"))
    assert len(paths) == 300
    predictions = clf.predict(paths)
    accuracy = sum(p.label == path.parent.name for p, path in zip(predictions, paths, strict=True)) / len(paths)
    # 300 real test images: the binomial standard deviation is ~2 points at 85%, so 6 points is 3 sigma.
    assert clf.info.test_acc is not None
    assert abs(accuracy - clf.info.test_acc) <= 0.06, (accuracy, clf.info.test_acc)
