"""The distill recipe: teachers predict the train images once (cached), the student learns from them and the labels."""

from __future__ import annotations

import json

import pytest
import torch
from recipes_for_tests import fast_config

import cifar_train.distill as distill_module
from cifar_train import load_checkpoint
from cifar_train.errors import UserError
from cifar_train.loop import StepOptions, step_loss
from cifar_train.run import train


def small_config(data, out, recipe="fast", **changes):
    return fast_config(data, out, recipe, **{"epochs": 2, "whiten_bias_epochs": 1, **changes})


def computed_again(*_args, **_kwargs):
    raise AssertionError("a cached teacher was computed again")


@pytest.fixture(scope="module")
def teacher(cifar_fixture, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(small_config(cifar_fixture, out, tta=1))
    return out / "best.pt"


def test_a_distilled_run_caches_its_teachers_and_resumes_without_recomputing_them(
    cifar_fixture, teacher, tmp_path, monkeypatch
):
    cfg = small_config(cifar_fixture, tmp_path, "distill-small", teachers=f"{teacher},{teacher}", epochs=1)
    first = train(cfg)
    cache = torch.load(tmp_path / distill_module.CACHE, weights_only=True)
    assert len(cache["logits"]) == 1  # the same checkpoint twice is one teacher to compute
    (logits,) = cache["logits"].values()
    assert logits.shape == (first.metrics["data"]["train"], 10)  # every train image, none of the held-out ones

    monkeypatch.setattr(distill_module, "_logits", computed_again)
    resumed = train(cfg, resume=True)  # nothing left to train, but the targets are read again: from the cache
    assert resumed.metrics["test_acc"] == first.metrics["test_acc"]
    assert load_checkpoint(tmp_path / "best.pt")["config"]["teachers"] == f"{teacher},{teacher}"


def test_teachers_predict_at_the_runs_precision_and_exact_targets_serve_every_run(teacher, tmp_path, monkeypatch):
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    classes = tuple(load_checkpoint(teacher)["classes"])
    cpu, cache = torch.device("cpu"), tmp_path / distill_module.CACHE

    def targets(amp):
        return distill_module.teacher_probabilities(str(teacher), 1.0, images, classes, cpu, cache, print, amp)

    low = targets(amp=True)
    (key,) = torch.load(cache, weights_only=True)["logits"]
    (stored,) = torch.load(cache, weights_only=True)["logits"].values()
    assert key.endswith(":torch.bfloat16") and stored.dtype == torch.bfloat16  # marked: a float32 run won't take it
    exact = targets(amp=False)
    assert len(torch.load(cache, weights_only=True)["logits"]) == 2
    assert 0 < (low - exact).abs().max() < 0.05  # computed apart: close, not equal

    monkeypatch.setattr(distill_module, "_logits", computed_again)
    cache.unlink()
    distill_module._write_cache(cache, distill_module._images_key(images), {key.split(":")[0]: exact.log()})
    assert torch.allclose(targets(amp=True), exact, atol=1e-6)  # float32 targets serve a bf16 run as they are


def test_the_distillation_loss_pulls_the_student_toward_the_teachers_not_only_the_labels():
    logits = torch.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
    label = torch.tensor([0])
    teachers = torch.tensor([[0.2, 0.8, 0.0]])  # the teachers disagree with the label
    only_labels = StepOptions(distill_weight=0.0)
    mostly_teachers = StepOptions(distill_weight=0.8)
    (g_labels,) = torch.autograd.grad(step_loss(logits, label, teachers, only_labels), logits)
    (g_mixed,) = torch.autograd.grad(step_loss(logits, label, teachers, mostly_teachers), logits)
    assert g_labels[0, 1] > 0 > g_mixed[0, 1]  # only the teachers push class 1 up
    assert step_loss(logits, label, None, mostly_teachers) == step_loss(logits, label, None, only_labels)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(teachers=""), "needs both --teachers"),
        (dict(teachers="nowhere.pt"), "nowhere.pt does not exist"),
        (dict(distill_weight=1.5), "--distill-weight 1.5 must be in [0, 1]"),
    ],
)
def test_distill_flags_are_refused_before_any_data_is_read(tmp_path, changes, message):
    cfg = small_config(tmp_path / "no-data", tmp_path / "run", "distill", **changes)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        train(cfg)


def test_the_ensemble_report_scores_teachers_alone_together_and_beside_students(
    cifar_fixture, teacher, tmp_path, capsys
):
    from benchmarks.ensemble import main as ensemble

    out = tmp_path / "ensemble.json"
    ensemble(
        ["--teachers", f"{teacher},{teacher}", "--students", str(teacher), "--data", str(cifar_fixture)]
        + ["--out", str(out)]
    )
    rows = json.loads(out.read_text())["rows"]
    by = {(r["role"], r["tta"]): r for r in rows}
    assert sorted({r["tta"] for r in rows}) == [0, 1]  # without views and at the teacher's own level
    for level in (0, 1):
        alone, together = by["teacher", level], by["ensemble", level]
        assert together["test_acc"] == pytest.approx(alone["test_acc"])  # two equal members: the member itself
        assert together["val_acc"] == pytest.approx(alone["val_acc"])
        assert together["s_per_image"] > alone["s_per_image"]  # but it pays for both
    assert by["student", 0]["cost"] == 1.0 and by["student", 1]["cost"] > 1.0
    assert "ensemble of the teachers" in capsys.readouterr().out
