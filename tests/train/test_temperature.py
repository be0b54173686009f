"""Temperature scaling: the fit, the scores that judge it, and that runs fit it on validation only."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from recipes_for_tests import fast_config
from typer.testing import CliRunner

from cifar_train import load_checkpoint
from cifar_train.calibration import (
    expected_calibration_error,
    fit_temperature,
    recommend_threshold,
    scores,
    softmax,
)
from cifar_train.cli import app
from cifar_train.run import train
from cifar_train.temperature import KEY


def sample_labels(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    probs = softmax(logits)
    return np.array([rng.choice(len(p), p=p) for p in probs])


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_the_fit_recovers_the_temperature_the_labels_were_drawn_at(true_temperature):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20_000, 10))
    labels = sample_labels(logits / true_temperature, rng)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_scaling_by_the_fitted_temperature_lowers_nll_and_ece_and_keeps_every_label():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, size=(5000, 10))
    labels = sample_labels(logits * 2.0, rng)  # the model is under-confident: T < 1 sharpens, as label smoothing
    t = fit_temperature(logits, labels)
    before, after = scores(softmax(logits), labels), scores(softmax(logits / t), labels)
    assert t < 1 and after.nll < before.nll and after.ece < before.ece / 3 and after.brier < before.brier
    assert after.accuracy == before.accuracy


def test_a_validation_split_without_errors_gets_the_rule_of_succession_not_certainty():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1, size=(149, 10))
    labels = logits.argmax(1)  # every image right: the NLL has no minimum, it falls as T falls
    t = fit_temperature(logits, labels)
    assert softmax(logits / t).max(1).mean() == pytest.approx(150 / 151, abs=1e-9)  # (n + 1) / (n + 2)
    wrong = labels.copy()
    wrong[0] = (labels[0] + 1) % 10  # one error: a minimum exists again, and the fit is the NLL's
    assert fit_temperature(logits, wrong) > t


def test_ece_is_the_gap_between_confidence_and_accuracy():
    confidence = np.array([0.9] * 10)
    assert expected_calibration_error(confidence, np.array([True] * 9 + [False])) == pytest.approx(0.0)
    assert expected_calibration_error(confidence, np.array([True] * 5 + [False] * 5)) == pytest.approx(0.4)


def test_the_recommended_threshold_is_the_widest_that_meets_the_target_and_never_splits_ties():
    confidence = np.array([0.99, 0.98, 0.97, 0.9, 0.9, 0.5])
    correct = np.array([True, True, True, True, False, False])
    t = recommend_threshold(confidence, correct, target=0.75)
    assert (t.threshold, t.val_coverage) == (0.9, 5 / 6)  # the two tied 0.9s go in together: 4/5 = 80%
    t = recommend_threshold(confidence, correct, target=0.99)
    assert (t.threshold, t.val_coverage, t.val_accuracy) == (0.97, 0.5, 1.0)
    assert recommend_threshold(confidence, np.zeros(6, bool), target=0.5).val_coverage == 0.0


def small_run(data, out, **changes):
    return fast_config(data, out, **{"epochs": 2, "whiten_bias_epochs": 1, **changes})


def mislabelled_copy(fixture, root):
    """The fixture with its test split's class folders renamed in a cycle: every test label is wrong."""
    shutil.copytree(fixture / "train", root / "train")
    classes = sorted(p.name for p in (fixture / "test").iterdir())
    for i, name in enumerate(classes):
        shutil.copytree(fixture / "test" / name, root / "test" / classes[(i + 1) % len(classes)])
    return root


def test_a_run_fits_one_temperature_per_tta_level_on_validation_only(cifar_fixture, tmp_path):
    honest = train(small_run(cifar_fixture, tmp_path / "honest")).metrics
    wrong = train(small_run(mislabelled_copy(cifar_fixture, tmp_path / "data"), tmp_path / "wrong")).metrics
    assert set(honest[KEY]) == {"0", "1", "2"}
    for level in ("0", "1", "2"):
        assert wrong[KEY][level]["temperature"] == honest[KEY][level]["temperature"]  # test labels play no part
        assert wrong[KEY][level]["test_after"]["accuracy"] != honest[KEY][level]["test_after"]["accuracy"]
    ckpt = load_checkpoint(tmp_path / "honest" / "best.pt")
    assert ckpt[KEY] == json.loads((tmp_path / "honest" / "metrics.json").read_text())[KEY]
    assert (tmp_path / "honest" / "calibration.png").stat().st_size > 10_000


def test_fit_temperature_adds_the_fit_to_an_older_run_and_never_writes_over_it(cifar_fixture, tmp_path):
    train(small_run(cifar_fixture, tmp_path / "run", tta=1))
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    fitted = ckpt.pop(KEY)
    torch.save(ckpt, tmp_path / "run" / "best.pt")  # as a run from before temperature scaling left it
    before = (tmp_path / "run" / "best.pt").read_bytes()
    runner = CliRunner()
    args = ["fit-temperature", str(tmp_path / "run" / "best.pt"), "--data", str(cifar_fixture), "--device", "cpu"]
    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2 and "never writes over its input" in refused.output
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "fitted")])
    assert result.exit_code == 0, result.output
    assert "temperature" in result.output and (tmp_path / "run" / "best.pt").read_bytes() == before
    refit = load_checkpoint(tmp_path / "fitted" / "best.pt")[KEY]
    for level in ("0", "1"):  # evaluated in fp32 here, in fp32 when trained: the same logits, the same fit
        assert refit[level]["temperature"] == pytest.approx(fitted[level]["temperature"], rel=1e-4)
    assert KEY in json.loads((tmp_path / "fitted" / "metrics.json").read_text())
