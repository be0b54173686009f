"""`cifar-train cnn|resnet18`: each flag is a TrainConfig field with the seed recipe's value as default.

Exit codes: 0 done; 2 a problem with the input (data, weights, checkpoint, flags), printed as one line;
130 interrupted (the last finished epoch is in last.pt: rerun with --resume).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cifar_train.config import RECIPES, TrainConfig
from cifar_train.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True, soft_wrap=True)

CNN, RESNET = RECIPES["cnn"], RECIPES["resnet18"]
Epochs = Annotated[int, typer.Option(min=1, help="Passes over the train split.")]
BatchSize = Annotated[int, typer.Option(min=1, help="Images per step and process.")]
Lr = Annotated[float, typer.Option(help="Adam learning rate.")]
StepSize = Annotated[int, typer.Option(min=0, help="StepLR period in epochs (0: constant lr).")]
Gamma = Annotated[float, typer.Option(help="StepLR decay factor.")]
Data = Annotated[Path, typer.Option(help="ImageFolder root with train/<class>/* and test/<class>/*, "
                                         "or a torchvision CIFAR-10 root.")]
Download = Annotated[bool, typer.Option(help="Download CIFAR-10 into --data through torchvision (internet).")]
Out = Annotated[Path, typer.Option(help="Run folder: best.pt, last.pt, history.csv, metrics.json, plots.")]
ValSize = Annotated[int, typer.Option(min=0, help="Train images held out (stratified) to select the best "
                                                  "epoch; 0 selects on test like the seed.")]
Seed = Annotated[int, typer.Option(help="Seed for weights, shuffling and augmentation.")]
Deterministic = Annotated[bool, typer.Option(help="Use only deterministic kernels (slower on GPU).")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N (auto: CUDA when present).")]
Resume = Annotated[bool, typer.Option(help="Continue from --out/last.pt (same flags).")]
Workers = Annotated[int, typer.Option(min=0, help="DataLoader worker processes (0: augment in the main one).")]
Amp = Annotated[bool, typer.Option(help="float16 mixed precision on CUDA (CPU always runs fp32).")]
ChannelsLast = Annotated[bool, typer.Option(help="channels_last memory format (helps on recent GPUs).")]


def run(cfg: TrainConfig, resume: bool) -> None:
    from cifar_train.run import train  # torch loads here, so --help stays fast

    try:
        train(cfg, resume=resume, console=console)
    except UserError as e:
        console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print(f"interrupted: rerun with --resume to continue from {cfg.out}/last.pt")
        raise typer.Exit(130) from None


@app.command()
def cnn(
    epochs: Epochs = CNN.epochs, batch_size: BatchSize = CNN.batch_size, lr: Lr = CNN.lr,
    step_size: StepSize = CNN.step_size, gamma: Gamma = CNN.gamma,
    data: Data = Path("data"), download: Download = False, out: Out = Path(CNN.out),
    val_size: ValSize = CNN.val_size, seed: Seed = CNN.seed, deterministic: Deterministic = False,
    device: Device = "auto", resume: Resume = False, workers: Workers = CNN.workers, amp: Amp = CNN.amp,
    channels_last: ChannelsLast = CNN.channels_last,
) -> None:
    """Seed 1: the 5-conv CNN from scratch (reported 89.11% test accuracy)."""
    run(replace(CNN, epochs=epochs, batch_size=batch_size, lr=lr, step_size=step_size, gamma=gamma, data=str(data),
                download=download, out=str(out), val_size=val_size, seed=seed, deterministic=deterministic,
                device=device, workers=workers, amp=amp, channels_last=channels_last), resume)


@app.command()
def resnet18(
    epochs: Epochs = RESNET.epochs, batch_size: BatchSize = RESNET.batch_size, lr: Lr = RESNET.lr,
    step_size: StepSize = RESNET.step_size, gamma: Gamma = RESNET.gamma,
    data: Data = Path("data"), download: Download = False, out: Out = Path(RESNET.out),
    val_size: ValSize = RESNET.val_size, seed: Seed = RESNET.seed, deterministic: Deterministic = False,
    device: Device = "auto", resume: Resume = False, workers: Workers = RESNET.workers, amp: Amp = RESNET.amp,
    channels_last: ChannelsLast = RESNET.channels_last,
    weights: Annotated[Path | None, typer.Option(help="Local state dict to start from (e.g. the ImageNet "
                                                      "resnet18 file) instead of torchvision's cache.")] = None,
    pretrained: Annotated[bool, typer.Option(help="Start from ImageNet weights; --no-pretrained: random "
                                                  "init (for tests).")] = True,
) -> None:
    """Seed 2: ImageNet ResNet18 at 224x224, only layer4 and fc trained (reported 91.95%)."""
    run(replace(RESNET, epochs=epochs, batch_size=batch_size, lr=lr, step_size=step_size, gamma=gamma,
                data=str(data), download=download, out=str(out), val_size=val_size, seed=seed,
                deterministic=deterministic, device=device, workers=workers, amp=amp, channels_last=channels_last,
                weights=str(weights) if weights else "", pretrained=pretrained), resume)


@app.command()
def bench(
    arch: Annotated[str, typer.Argument(help="cnn | resnet18")] = "cnn",
    data: Data = Path("data"), steps: Annotated[int, typer.Option(min=1, help="Batches to time.")] = 50,
    batch_size: BatchSize = 64, workers: Workers = 0, device: Device = "auto",
) -> None:
    """Training throughput: data pipeline alone, model-only train steps, and both together."""
    from cifar_train.bench import bench_training

    if arch not in RECIPES:
        console.print(f"[red]error:[/] unknown architecture {arch!r}: cnn or resnet18")
        raise typer.Exit(2)
    cfg = replace(RECIPES[arch], data=str(data), batch_size=batch_size, workers=workers, device=device, val_size=0)
    try:
        rows, info = bench_training(cfg, steps)
    except UserError as e:
        console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    print(f"{arch}, batch {batch_size}, {info['device']}, {info['threads']} threads; "
          f"{info['train_images']} train images decoded in {info['decode_seconds']:.1f}s")
    print(f"{'':<44}{'images/s':>10}{'s/epoch':>10}")
    for r in rows:
        print(f"{r.name:<44}{r.images_per_s:>10.0f}{r.seconds_per_epoch:>10.1f}")
