"""Classifier: golden logits against numpy, every input kind, static batches, threads, the default model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from runtime_files import TINY, TINY_BATCH3, WEIGHTS, batch_of

from cifar_runtime import Classifier, ImageError, ModelError, Prediction, Score, UsageError, locate
from cifar_runtime.api import to_predictions
from cifar_runtime.preprocess import load_image


def numpy_logits(batch: np.ndarray) -> np.ndarray:
    """The tiny CNN in float64 numpy: Conv(3->8, 3x3, stride 2, pad 1) -> Relu -> mean -> Gemm."""
    w = np.load(WEIGHTS)
    padded = np.pad(batch.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))  # (N, 3, 34, 34)
    windows = sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::2, ::2]  # (N, 3, 16, 16, 3, 3)
    conv = np.einsum("nchwij,ocij->nohw", windows, w["conv_w"]) + w["conv_b"][None, :, None, None]
    features = np.maximum(conv, 0).mean(axis=(2, 3))  # (N, 8)
    return features @ w["fc_w"].T + w["fc_b"]  # (N, 10)


def test_golden_logits_on_real_images(classifier: Classifier, test_images: list[Path]) -> None:
    batch = batch_of([load_image(p) for p in test_images[::5]], classifier.info)  # 60 images, all classes
    logits = classifier.logits(batch)
    assert logits.shape == (60, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, numpy_logits(batch), rtol=1e-4, atol=1e-5)
    labels = {p.label for p in classifier.predict_batch(batch)}
    assert len(labels) > 1  # the seeded weights do not collapse to one class, so the test can fail


def test_metadata_is_exposed(classifier: Classifier) -> None:
    assert classifier.classes[0] == "airplane" and len(classifier.classes) == 10
    assert classifier.input_size == (32, 32)
    assert classifier.info.mean == (0.5, 0.5, 0.5) and classifier.info.arch == "tiny-cnn"
    assert classifier.model_path == TINY


def test_every_input_kind_gives_the_same_prediction(classifier: Classifier, test_images: list[Path]) -> None:
    path = test_images[7]
    with Image.open(path) as img:
        pil = img.copy()
    expected = classifier.predict(str(path), top_k=3)
    assert isinstance(expected, Prediction) and isinstance(expected.top_k[0], Score)
    assert classifier.predict(path, top_k=3) == expected
    assert classifier.predict(pil, top_k=3) == expected
    assert classifier.predict(np.asarray(pil), top_k=3) == expected
    assert classifier.predict([path, pil, np.asarray(pil)], top_k=3) == [expected] * 3
    assert classifier.predict((path,), top_k=3) == [expected]
    assert classifier.predict([]) == []


def test_prediction_fields(classifier: Classifier, test_images: list[Path]) -> None:
    p = classifier.predict(test_images[0], top_k=10)
    assert [s.label for s in p.top_k][0] == p.label == classifier.classes[p.index]
    assert p.confidence == p.top_k[0].confidence
    confidences = [s.confidence for s in p.top_k]
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) == pytest.approx(1.0)
    assert sorted(s.label for s in p.top_k) == sorted(classifier.classes)


def test_to_predictions_softmax_and_ties() -> None:
    logits = np.array([[0.0, 0.0, np.log(2.0)], [1000.0, 0.0, 1000.0]], np.float32)
    first, second = to_predictions(logits, ("a", "b", "c"), top_k=2)
    assert first.label == "c" and first.confidence == pytest.approx(0.5)
    assert first.top_k[1] == Score("a", pytest.approx(0.25))
    assert (second.index, second.top_k[1].label) == (0, "c")  # a tie goes to the lower index; no overflow


def test_batching_does_not_change_results(classifier: Classifier, test_images: list[Path]) -> None:
    one_by_one = [classifier.predict(p, top_k=2) for p in test_images[:10]]
    for batch_size in (1, 3, 64):
        batched = classifier.predict(test_images[:10], top_k=2, batch_size=batch_size)
        assert [p.label for p in batched] == [p.label for p in one_by_one]
        np.testing.assert_allclose([p.confidence for p in batched], [p.confidence for p in one_by_one], rtol=1e-5)


def test_static_batch_model_is_split_and_padded(classifier: Classifier, test_images: list[Path]) -> None:
    static = Classifier(TINY_BATCH3, device="cpu")
    batch = batch_of([load_image(p) for p in test_images[:7]], classifier.info)  # 7 = 3 + 3 + 1 (padded)
    np.testing.assert_allclose(static.logits(batch), classifier.logits(batch), rtol=1e-5, atol=1e-6)
    assert static.logits(batch[:0]).shape == (0, 10)


def test_bad_arguments_raise_usage_errors(classifier: Classifier, test_images: list[Path]) -> None:
    for top_k in (0, 11):
        with pytest.raises(UsageError, match="top_k must be between 1 and 10"):
            classifier.predict(test_images[0], top_k=top_k)
    with pytest.raises(UsageError, match="batch_size"):
        classifier.predict([test_images[0]], batch_size=0)
    with pytest.raises(UsageError, match="expected a path, a PIL image or a uint8"):
        classifier.predict(12)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # UsageError is a ValueError, as Python code expects
        Classifier(TINY, device="tpu")


def test_unreadable_image_error_names_the_file(classifier: Classifier, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(ImageError, match=r"bad\.jpg: not an image file Pillow can read"):
        classifier.predict([bad])


def test_model_with_wrong_input_shape_is_refused(tmp_path: Path) -> None:
    # same file, but metadata says 48x48 while the graph takes 32x32
    data = TINY.read_bytes().replace(b"[32, 32]", b"[48, 48]")
    path = tmp_path / "mismatch.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError, match="does not match its metadata"):
        Classifier(path, device="cpu")


def test_one_classifier_is_safe_across_threads(classifier: Classifier, test_images: list[Path]) -> None:
    chunks = [test_images[i : i + 12] for i in range(0, 96, 12)]  # 8 different batches
    expected = [classifier.predict(chunk, top_k=3) for chunk in chunks]
    results: dict[int, list[list[Prediction]]] = {i: [] for i in range(len(chunks))}
    start = threading.Barrier(len(chunks))

    def work(i: int) -> None:
        start.wait()  # all threads call into the same session at once
        for _ in range(5):
            results[i].append(classifier.predict(chunks[i], top_k=3))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, runs in results.items():
        assert runs == [expected[i]] * 5


def test_default_model_missing_is_a_one_line_model_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(locate, "BUNDLED_NAME", "not_shipped.onnx")
    with pytest.raises(ModelError) as caught:
        Classifier()
    message = str(caught.value)
    assert message.startswith("no default model is bundled") and "--model" in message and "CIFAR_MODEL" in message


def test_default_model_comes_from_env_then_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIFAR_MODEL", str(TINY))
    assert Classifier().model_path == TINY
    monkeypatch.delenv("CIFAR_MODEL")
    package_dir = tmp_path / "cifar_runtime"
    (package_dir / "models").mkdir(parents=True)
    (package_dir / "models" / locate.BUNDLED_NAME).write_bytes(TINY.read_bytes())
    monkeypatch.setattr(locate.resources, "files", lambda _: package_dir)
    assert Classifier().model_path == package_dir / "models" / locate.BUNDLED_NAME


def test_a_bundled_models_name_picks_it_unless_a_file_has_that_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package_dir = tmp_path / "cifar_runtime"
    (package_dir / "models").mkdir(parents=True)
    (package_dir / "models" / locate.SMALL_NAME).write_bytes(TINY.read_bytes())
    monkeypatch.setattr(locate.resources, "files", lambda _: package_dir)
    monkeypatch.chdir(tmp_path)
    assert Classifier("small").model_path == package_dir / "models" / locate.SMALL_NAME
    with pytest.raises(ModelError, match="no 'default' model"):  # named, but not in this build
        Classifier("default")
    Path("small").write_bytes(TINY.read_bytes())  # a file the user made wins over the name
    assert Classifier("small", precision=None).model_path == Path("small")


def test_a_large_batch_runs_in_chunks_with_the_same_logits(classifier: Classifier, test_images: list[Path]) -> None:
    from cifar_runtime.api import RUN_CHUNK

    batch = np.stack([classifier.model_input(classifier.read_pixels(p)[None])[0] for p in test_images])
    batch = np.concatenate([batch, batch])[: RUN_CHUNK + 7]  # more than one chunk, the last one ragged
    whole = classifier.logits(batch)
    one_by_one = np.concatenate([classifier.logits(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    with pytest.raises(UsageError, match="batch_size must be between 1 and 5461"):
        classifier.predict(test_images[:2], batch_size=classifier.max_batch_size + 1)
