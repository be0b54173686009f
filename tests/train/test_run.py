import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import cifar_train.run as run_module
from cifar_train.checkpoint import load_checkpoint, model_from_checkpoint
from cifar_train.cli import app
from cifar_train.config import RECIPES
from cifar_train.errors import UserError
from cifar_train.run import portable, train
from cifar_train.summary import load_run, table


def cnn_config(data: Path, out: Path, **changes):
    base = {"data": str(data), "out": str(out), "val_size": 50, "device": "cpu"}
    return replace(RECIPES["cnn"].config, **{**base, **changes})


def test_cnn_run_writes_every_output(cifar_fixture, tmp_path):
    result = train(cnn_config(cifar_fixture, tmp_path, epochs=2))
    for name in ("best.pt", "last.pt", "history.csv", "metrics.json", "curves.png", "confusion.png", "roc.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader((tmp_path / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_acc", "lr", "seconds", "data_seconds", "step_images_per_s"} <= rows[0].keys()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_acc"] == result.metrics["test_acc"]
    assert metrics["selected_on"] == "val" and metrics["data"] == {
        "source": portable(str(cifar_fixture)),
        "train": 150,
        "val": 50,
        "test": 300,
    }
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 300
    assert set(metrics["test_roc_auc"]) == set(metrics["test"]["classes"])
    assert all(0.0 <= auc <= 1.0 for auc in metrics["test_roc_auc"].values())
    assert set(metrics["test"]["per_class"]["cat"]) == {"accuracy", "precision", "recall", "f1", "support"}
    assert metrics["config"]["lr"] == 1e-3 and metrics["environment"]["torch"] == torch.__version__
    assert metrics["environment"]["cpu"] and metrics["environment"]["cpu_capability"]  # times depend on the CPU
    best = load_checkpoint(tmp_path / "best.pt")  # weights_only=True inside
    assert best["classes"][0] == "airplane" and best["input_size"] == [32, 32] and best["mean"] == [0.5] * 3
    assert best["metrics"]["test_acc"] == metrics["test_acc"]
    assert best["epoch"] == metrics["best_epoch"]
    # The best checkpoint rebuilds into a model that reproduces the reported test accuracy.
    model = model_from_checkpoint(best)
    from cifar_train.data import build_datasets

    data, _ = build_datasets(cnn_config(cifar_fixture, tmp_path))
    x = torch.stack([data.test[i][0] for i in range(len(data.test))])
    with torch.no_grad():
        acc = (model(x).argmax(1) == data.test.labels).float().mean().item()
    assert acc == pytest.approx(metrics["test_acc"], abs=1e-6)


def test_val_size_zero_selects_on_test_and_says_so(cifar_fixture, tmp_path):
    metrics = train(cnn_config(cifar_fixture, tmp_path, epochs=1, val_size=0)).metrics
    assert metrics["selected_on"] == "test" and metrics["val_acc"] is None
    assert "optimistic" in metrics["selection_note"]
    # compare shows no validation figure, and no temperature was fitted (none is ever fitted on test)
    assert table([load_run(tmp_path)]).splitlines()[-1].endswith("| – | 0 | – |")
    assert metrics["temperature_scaling"] == {}


class Crash(Exception):
    pass


def test_resume_after_a_crash_reaches_the_same_weights(cifar_fixture, tmp_path, monkeypatch):
    cfg = dict(epochs=3, step_size=1, gamma=0.5)  # a decaying lr also checks the scheduler's state
    unbroken = train(cnn_config(cifar_fixture, tmp_path / "a", **cfg)).model.state_dict()

    real_save = run_module.save_checkpoint

    def save_then_crash(path, ckpt):
        real_save(path, ckpt)
        if path.name == "last.pt" and ckpt["epoch"] == 1:
            raise Crash  # the process dies right after epoch 1 is on disk

    monkeypatch.setattr(run_module, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        train(cnn_config(cifar_fixture, tmp_path / "b", **cfg))
    monkeypatch.setattr(run_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    resumed = train(cnn_config(cifar_fixture, tmp_path / "b", **cfg), resume=True).model.state_dict()

    assert unbroken.keys() == resumed.keys()
    for k in unbroken:
        assert torch.equal(unbroken[k], resumed[k]), k
    history = list(csv.DictReader((tmp_path / "b" / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in history] == ["1", "2", "3"]


def test_resume_with_other_recipe_flags_is_refused(cifar_fixture, tmp_path):
    train(cnn_config(cifar_fixture, tmp_path, epochs=1))
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "cnn",
            "--data",
            str(cifar_fixture),
            "--out",
            str(tmp_path),
            "--val-size",
            "50",
            "--lr",
            "0.01",
            "--resume",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 2 and "lr=0.001" in r.output


def test_resnet18_pipeline_runs_at_224_and_trains_only_layer4_and_fc(tiny_data, tmp_path):
    cfg = replace(
        RECIPES["resnet18"].config,
        data=str(tiny_data),
        out=str(tmp_path),
        val_size=10,
        epochs=1,
        pretrained=False,
        batch_size=16,
        device="cpu",
    )
    torch.manual_seed(0)
    before = run_module.build_model(cfg, 10).state_dict()
    result = train(cfg)
    after = result.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(
        k.startswith(("layer4.", "fc."))
        for k in changed
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["input_size"] == [224, 224] and best["mean"] == [0.485, 0.456, 0.406]
    assert result.metrics["config"]["lr"] == 1e-4


def test_cli_bad_data_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "cifar_train", "cnn", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("cifar-train: error: no data at") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_cli_resnet18_without_imagenet_weights_explains(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    r = CliRunner().invoke(
        app, ["resnet18", "--data", str(tiny_data), "--out", str(tmp_path / "o"), "--val-size", "10", "--device", "cpu"]
    )
    assert r.exit_code == 2 and "ImageNet weights for resnet18 are not in the torch cache" in r.output
    assert "data:" not in r.output  # said before any image is decoded, as every other flag


def test_cli_help_lists_seed_defaults():
    r = CliRunner().invoke(app, ["cnn", "--help"])
    assert r.exit_code == 0
    for flag in ("--epochs", "--batch-size", "--lr", "--val-size", "--resume", "--deterministic", "--device"):
        assert flag in r.output


@pytest.mark.parametrize("precision", ["fp32", "bfloat16 autocast"])
def test_bench_reports_pipeline_and_model_only_throughput(cifar_fixture, precision):
    amp = ["--cpu-amp"] if precision != "fp32" else []
    r = CliRunner().invoke(app, ["bench", "cnn", "--data", str(cifar_fixture), "--steps", "2", "--device", "cpu", *amp])
    assert r.exit_code == 0, r.output
    assert f"cpu, {precision}," in r.output
    for row in ("data pipeline only", "model only (contiguous)", "model only (channels_last)", "+ data pipeline"):
        line = next(line for line in r.output.splitlines() if row in line)
        assert float(line.split()[-2]) > 0  # images/s


def test_an_existing_run_is_not_overwritten_without_asking(cifar_fixture, tmp_path):
    train(cnn_config(cifar_fixture, tmp_path, epochs=1))
    before = (tmp_path / "best.pt").read_bytes()
    r = CliRunner().invoke(
        app,
        [
            "cnn",
            "--data",
            str(cifar_fixture),
            "--out",
            str(tmp_path),
            "--val-size",
            "50",
            "--epochs",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 2 and "--resume" in r.output and "--overwrite" in r.output
    assert (tmp_path / "best.pt").read_bytes() == before
    r = CliRunner().invoke(
        app,
        [
            "cnn",
            "--data",
            str(cifar_fixture),
            "--out",
            str(tmp_path),
            "--val-size",
            "50",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--overwrite",
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--lr", "-1"], "--lr -1.0 must be > 0"),
        (["--device", "gpu"], "gpu"),
        (["--out", "FILE"], "is a file"),
        (["--out", "FILE/run"], "cannot write to"),
        (["--weights", "JUNK"], "cannot load weights file"),
        (["--micro-batch", "999"], "--micro-batch"),
        (["--optimizer", "rmsprop"], "--optimizer 'rmsprop'"),
    ],
)
def test_bad_flags_are_one_line_before_any_epoch(flags, says, cifar_fixture, tmp_path):
    (tmp_path / "FILE").write_text("not a folder")
    (tmp_path / "JUNK").write_bytes(b"not a state dict")
    flags = [str(tmp_path / f) if f in ("FILE", "FILE/run", "JUNK") else f for f in flags]
    command = "resnet18" if "--weights" in flags else "cnn"
    out = [] if "--out" in flags else ["--out", str(tmp_path / "out")]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cifar_train",
            command,
            "--data",
            str(cifar_fixture),
            "--device",
            "cpu",
            "--val-size",
            "50",
            *out,
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    error = r.stderr.strip().splitlines()[-1]  # a "data: ..." progress line may come first
    assert error.startswith("cifar-train: error: ") and says in error and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "last.pt").exists()


def test_resume_refuses_a_checkpoint_carrying_pickled_code(cifar_fixture, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    (tmp_path / "run").mkdir()
    torch.save({"model": {}, "config": Payload()}, tmp_path / "run" / "last.pt")
    r = CliRunner().invoke(
        app,
        [
            "cnn",
            "--data",
            str(cifar_fixture),
            "--out",
            str(tmp_path / "run"),
            "--resume",
            "--device",
            "cpu",
            "--val-size",
            "50",
        ],
    )
    assert r.exit_code == 2 and "cannot read checkpoint" in r.output
    assert not marker.exists()


def test_switches_show_no_value_placeholder_and_no_internal_names():
    r = CliRunner().invoke(app, ["fast", "--help"], terminal_width=200)
    assert not [line for line in r.output.splitlines() if "<bool>" in line and "--help" not in line]
    assert "TrainConfig" not in CliRunner().invoke(app, ["--help"]).output


def test_compare_groups_seeds_and_tables_each_run_against_the_first(cifar_fixture, tmp_path):
    runs = {"base-s0": {}, "base-s1": {"seed": 1}, "no-smooth": {"label_smoothing": 0.1, "lr": 2e-3}}
    acc = {
        name: train(cnn_config(cifar_fixture, tmp_path / name, epochs=1, **changes)).metrics["test_acc"]
        for name, changes in runs.items()
    }
    r = CliRunner().invoke(
        app, ["compare", *(str(tmp_path / n) for n in runs), "--out", str(tmp_path / "cmp"), "--table"]
    )
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    base = "cnn --epochs 1 --batch-size 16 --val-size 50"  # the batch fitted to 150 images is recorded as a flag
    other = "cnn --epochs 1 --batch-size 16 --lr 0.002 --label-smoothing 0.1 --val-size 50"
    assert lines[0].startswith(f"{base}: 2 run(s), test ") and " ± " in lines[0]  # seeds group, flags in order
    assert lines[1].startswith(f"{other}: 1 run(s)")
    rows = [line.split(" | ") for line in lines if line.startswith("| base") or line.startswith("| no-smooth")]
    assert [row[1] for row in rows] == [f"`{base}`", f"`{base}`", f"`{other}`"]
    assert rows[0][4] == "" and rows[2][3] == f"{100 * acc['no-smooth']:.2f}%"
    assert rows[2][4] == f"{100 * (acc['no-smooth'] - acc['base-s0']):+.2f}"  # points against the first run
    assert rows[2][5] == rows[2][3]  # no TTA in this recipe: the plain accuracy is the test accuracy
    assert " → " in rows[0][9] and "test ECE " in lines[0]  # each run fitted a temperature: ECE before and after
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert [g["recipe"] for g in summary] == [base, other]
    assert (tmp_path / "cmp" / "time_to_accuracy.png").stat().st_size > 0


def test_compare_pools_runs_that_differ_only_in_a_named_flag():
    # The committed records: `fast` in fp32 (seed 1) and `fast --cpu-amp` (seed 0), real finished runs.
    runs = [str(Path(__file__).parents[2] / "artifacts" / d) for d in ("fast", "ablation/bf16-fast-s0")]
    apart = CliRunner().invoke(app, ["compare", *runs])
    assert apart.exit_code == 0 and [line.split(":")[0] for line in apart.output.splitlines()] == [
        "fast",
        "fast --cpu-amp",
    ]
    pooled = CliRunner().invoke(app, ["compare", *runs, "--pool", "cpu-amp", "--table"])
    assert pooled.exit_code == 0, pooled.output
    accs = [100 * json.loads((Path(r) / "metrics.json").read_text())["test_acc"] for r in runs]
    assert pooled.output.startswith(f"fast (pooled over cpu-amp): 2 run(s), test {sum(accs) / 2:.2f} ± ")
    assert "| `fast --cpu-amp` |" in pooled.output  # each run's row still says how it was made
    one = [100 * json.loads((Path(r) / "metrics.json").read_text())["test_acc_by_tta"]["0"] for r in runs]
    assert f"(one view {sum(one) / 2:.2f} ± " in pooled.output.splitlines()[0]  # what a one-view file would score


def test_compare_refuses_an_unfinished_run_in_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    r = CliRunner().invoke(app, ["compare", str(tmp_path / "run")])
    assert r.exit_code == 2 and "has no metrics.json" in r.output and len(r.output.strip().splitlines()) == 1


def test_tensorboard_without_its_package_is_refused_before_any_data_is_read(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    cfg = cnn_config(tmp_path / "no-data-here", tmp_path / "run", tensorboard=True)
    with pytest.raises(UserError, match="--tensorboard needs the tensorboard package"):
        train(cfg)


def test_bench_with_a_batch_larger_than_the_data_is_one_line(cifar_fixture):
    r = CliRunner().invoke(
        app, ["bench", "fast", "--data", str(cifar_fixture), "--batch-size", "9999", "--steps", "2", "--device", "cpu"]
    )
    assert r.exit_code == 2 and "is larger than the" in r.output and "Traceback" not in r.output
