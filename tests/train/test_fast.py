"""The fast recipe's parts, each checked on its own, and a whole fast run (resumed mid-lookahead) on the fixture."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import torch
from recipes_for_tests import fast_config
from rich.console import Console

import cifar_train.run as run_module
from cifar_train import RECIPES, create_model, load_checkpoint
from cifar_train import TestTimeAugmentation as TTA
from cifar_train.augment import BatchAugmentLoader, cutout, translate
from cifar_train.config import recipe_and_flags
from cifar_train.optim import Lookahead, build_optimizer, lr_factor, prepare_model
from cifar_train.run import train


def test_alternating_flip_mirrors_each_image_on_every_other_epoch():
    images = torch.arange(4 * 3 * 4 * 4, dtype=torch.uint8).view(4, 3, 4, 4)
    labels = torch.arange(4)

    def epoch(e):  # images in label order, as the loader produced them
        x, y = next(iter(BatchAugmentLoader(images, labels, (0, 0, 0), (1, 1, 1), 4, e, 0, flip="alternate")))
        return x[torch.argsort(y)]

    plain = images.float() / 255
    for e in (1, 2, 3):
        a, b = epoch(e), epoch(e + 1)
        for i in range(4):
            flipped = [torch.equal(v[i], plain[i].flip(-1)) for v in (a, b)]
            assert sorted(flipped) == [False, True]  # mirrored in exactly one of two consecutive epochs


def test_translate_shifts_by_whole_pixels_with_reflected_borders():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    out = translate(x, torch.tensor([[1, 0], [0, -2]]), 2)
    assert torch.equal(out[0, 0, :-1], x[0, 0, 1:])  # image 0 moved up one row...
    assert torch.equal(out[0, 0, -1], x[0, 0, -2])  # ...its last row is the reflection of the border
    assert torch.equal(out[1, 0, :, 2:], x[1, 0, :, :3])  # image 1 moved right two columns


@pytest.mark.parametrize("size", [3, 4])
def test_cutout_zeroes_one_size_by_size_square_per_image_clipped_at_the_border(size):
    out = cutout(torch.ones(300, 3, 10, 10), size, torch.Generator().manual_seed(0))
    zero = out == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # the same square in every channel
    rows, cols = zero[:, 0].any(2).sum(1), zero[:, 0].any(1).sum(1)
    assert torch.equal(zero[:, 0].sum((1, 2)), rows * cols)  # one rectangle...
    assert rows.max() == cols.max() == size and rows.min() >= 1  # ...size wide unless the border clips it
    assert (rows * cols == size * size).float().mean() > 0.3


def test_triangle_schedule_warms_up_peaks_and_decays():
    cfg = RECIPES["fast"].config
    steps = 10
    factors = [lr_factor(cfg, s, steps) for s in range(cfg.epochs * steps)]
    peak = int(cfg.peak_at * cfg.epochs * steps)
    assert factors[0] == pytest.approx(cfg.warmup_from) and factors[peak] == pytest.approx(1.0)
    assert max(factors) == pytest.approx(1.0) and factors[-1] == pytest.approx(cfg.decay_to, abs=0.01)
    assert all(a <= b for a, b in zip(factors[:peak], factors[1 : peak + 1], strict=True))


def test_recipe_inits_whiten_freeze_and_group_the_optimizer(cifar_fixture):
    cfg = RECIPES["fast"].config
    model = create_model("airbench94")
    images = torch.randn(64, 3, 32, 32)
    prepare_model(model, cfg, images)
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    white = patches @ model.whiten.weight[:12].reshape(12, 12).T  # the first 12 filters: whitened coordinates
    cov = white.T @ white / len(white)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)  # whitening: identity covariance on its own data
    assert not model.whiten.weight.requires_grad
    assert all(not m.weight.requires_grad for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    conv = model.group2.conv1.weight  # (256, 64, 3, 3): dirac on the first 64 filters
    assert torch.equal(conv[:64, :, 1, 1], torch.eye(64)) and conv[:64].abs().sum() == 64
    groups = build_optimizer(model, cfg).param_groups
    assert groups[1]["lr"] == pytest.approx(groups[0]["lr"] * cfg.bn_bias_lr_scale)
    assert groups[1]["lr"] * groups[1]["weight_decay"] == pytest.approx(groups[0]["lr"] * groups[0]["weight_decay"])


def test_lookahead_pulls_the_weights_toward_their_average():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    la = Lookahead(model, every=1, total_steps=1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    la.blend(model, 0.75)
    assert torch.allclose(model.weight, torch.full((1, 2), 0.25)) and torch.allclose(la.average["weight"], model.weight)


def test_tta_level_2_averages_six_views_and_level_0_is_the_model():
    model = create_model("airbench94").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(TTA(model, 0)(x), model(x))
        mirrored = 0.5 * (model(x) + model(x.flip(3)))
        assert torch.allclose(TTA(model, 1)(x), mirrored, atol=1e-5)
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        shifts = [padded[:, :, :-2, :-2], padded[:, :, 2:, 2:]]
        expected = 0.5 * mirrored + 0.25 * sum(0.5 * (model(s) + model(s.flip(3))) for s in shifts)
        assert torch.allclose(TTA(model, 2)(x), expected, atol=1e-5)


class Crash(Exception):
    pass


def test_fast_run_resumed_mid_lookahead_reaches_the_same_weights(cifar_fixture, tmp_path, monkeypatch):
    unbroken = train(fast_config(cifar_fixture, tmp_path / "a"))
    real_save = run_module.save_checkpoint

    def save_then_crash(path, ckpt):
        real_save(path, ckpt)
        if path.name == "last.pt" and ckpt["epoch"] == 2:
            raise Crash  # after epoch 2: the lookahead average and whitening-bias freeze are both in play

    monkeypatch.setattr(run_module, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        train(fast_config(cifar_fixture, tmp_path / "b"))
    monkeypatch.setattr(run_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["lookahead"] is not None
    resumed = train(fast_config(cifar_fixture, tmp_path / "b"), resume=True)
    a, b = unbroken.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = resumed.metrics
    assert set(metrics["test_acc_by_tta"]) == set(metrics["val_acc_by_tta"]) == {"0", "1", "2"}
    assert metrics["tta"] == 2 and metrics["val_acc"] == metrics["val_acc_by_tta"]["2"]
    assert load_checkpoint(tmp_path / "b" / "best.pt")["metrics"]["test_acc_by_tta"] == metrics["test_acc_by_tta"]
    assert metrics["test_acc"] == metrics["test_acc_by_tta"]["2"]
    assert metrics["timing"]["final_eval_seconds"] > 0


def test_the_fast_recipe_runs_on_the_seed_cnn(cifar_fixture, tmp_path):
    metrics = train(replace(fast_config(cifar_fixture, tmp_path), arch="cnn", whiten_init=False, epochs=2)).metrics
    assert metrics["arch"] == "cnn" and 0 <= metrics["test_acc"] <= 1


def test_the_wide_recipe_trains_airbench95s_wider_net(cifar_fixture, tmp_path):
    cfg = RECIPES["fast-wide"].config
    assert (cfg.arch, cfg.lr) == ("airbench95", 10.0) and cfg.tta == RECIPES["fast"].config.tta
    result = train(fast_config(cifar_fixture, tmp_path, "fast-wide", epochs=2))
    widths = [g.conv2.out_channels for g in (result.model.group1, result.model.group2, result.model.group3)]
    assert widths == [128, 384, 384] and result.metrics["arch"] == "airbench95"
    assert load_checkpoint(tmp_path / "best.pt")["config"]["lr"] == 10.0


def test_the_long_recipe_is_fast_wide_with_airbench96s_augmentation_and_schedule(cifar_fixture, tmp_path):
    wide, long = RECIPES["fast-wide"].config, RECIPES["fast-wide-long"].config
    assert (long.arch, long.lr, long.tta) == (wide.arch, wide.lr, wide.tta)
    assert (long.epochs, long.translate, long.cutout, long.decay_to) == (40, 4, 13, 0.0)
    assert lr_factor(long, 399, 10) < 0.01 and lr_factor(long, 40, 10) == pytest.approx(1.0)
    result = train(fast_config(cifar_fixture, tmp_path, "fast-wide-long", epochs=2))
    assert load_checkpoint(tmp_path / "best.pt")["config"]["cutout"] == 13 and 0 <= result.metrics["test_acc"] <= 1


def test_unfreeze_and_backbone_lr_scale_make_differential_learning_rates():
    cfg = replace(RECIPES["resnet18"].config, unfreeze="layer3", backbone_lr_scale=0.1, pretrained=False)
    model = create_model("resnet18")
    prepare_model(model, cfg, None)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}
    groups = build_optimizer(model, cfg, head="fc").param_groups
    sizes = sorted((g["lr"], sum(p.numel() for p in g["params"])) for g in groups)
    backbone = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and not n.startswith("fc."))
    assert sizes == [(pytest.approx(cfg.lr * 0.1), backbone), (cfg.lr, 5130)]  # fc: 512 * 10 + 10
    with pytest.raises(Exception, match="layer9"):
        prepare_model(create_model("resnet18"), replace(cfg, unfreeze="layer9"), None)


def test_onecycle_warms_up_then_anneals_to_zero():
    cfg = replace(RECIPES["cnn"].config, schedule="onecycle", epochs=2, peak_at=0.25, warmup_from=0.1)
    factors = [lr_factor(cfg, s, 10) for s in range(20)]
    assert factors[0] == pytest.approx(0.1) and factors[5] == pytest.approx(1.0)
    assert factors[-1] < 0.02 and all(a >= b for a, b in zip(factors[5:], factors[6:], strict=False))


def test_tensorboard_logs_every_epoch_offline(cifar_fixture, tmp_path):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra: pip install './train[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(
        replace(
            RECIPES["cnn"].config,
            data=str(cifar_fixture),
            out=str(tmp_path),
            val_size=50,
            epochs=2,
            device="cpu",
            tensorboard=True,
        )
    )
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/acc")] == [1, 2]
    assert {"train/loss", "lr"} <= set(events.Tags()["scalars"])


@pytest.mark.parametrize("cpu_amp, dtype", [(False, torch.float32), (True, torch.bfloat16)])
def test_cpu_amp_trains_in_bfloat16_and_keeps_float32_weights(cifar_fixture, tmp_path, monkeypatch, cpu_amp, dtype):
    seen: list[torch.dtype] = []
    real_build = run_module.build_model

    def build_and_watch(cfg, num_classes):
        model = real_build(cfg, num_classes)
        model.head.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
        return model

    monkeypatch.setattr(run_module, "build_model", build_and_watch)
    monkeypatch.setattr(run_module, "native_bf16", lambda: False)  # as on a CPU that emulates bfloat16
    console = Console(file=io.StringIO(), width=200)
    result = train(fast_config(cifar_fixture, tmp_path, epochs=1, cpu_amp=cpu_amp), console=console)
    assert seen and set(seen) == {dtype}  # every training and evaluation batch
    assert ("without native bfloat16" in console.file.getvalue()) is cpu_amp
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    assert load_checkpoint(tmp_path / "best.pt")["config"]["cpu_amp"] is cpu_amp
    assert ("--cpu-amp" in recipe_and_flags(result.metrics["config"])[1]) is cpu_amp  # compare tells the runs apart
