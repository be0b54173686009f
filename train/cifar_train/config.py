"""One frozen config per run, and the registry of named recipes. Every field is a CLI flag.

The seed recipes (`cnn`, `resnet18`) keep the published values and stay the defaults of their commands. Recipes
are data: a registered Recipe names its config and, per choice, where it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def opt(default: Any, help: str) -> Any:
    """A config field whose help text travels with it: the CLI makes a flag of every field."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    arch: str = opt("cnn", "Architecture: a registered model (`cifar-train recipes` lists them).")
    # optimisation
    epochs: int = opt(30, "Passes over the train split.")
    batch_size: int = opt(64, "Images per optimizer step and process (global batch under torchrun: x world size).")
    micro_batch: int = opt(0, "Run each step in chunks of this many images, gradients accumulated (0: whole batch).")
    optimizer: str = opt("adam", "adam | sgd (Nesterov momentum).")
    lr: float = opt(1e-3, "Learning rate. adam: as is; sgd: decoupled, per 1024 images (airbench's units).")
    momentum: float = opt(0.85, "sgd: Nesterov momentum.")
    weight_decay: float = opt(0.0, "adam: L2 coefficient; sgd: decoupled, per 1024 images.")
    bn_bias_lr_scale: float = opt(1.0, "Learning-rate multiplier for BatchNorm parameters (weight decay unscaled).")
    backbone_lr_scale: float = opt(
        1.0,
        "Learning-rate multiplier for everything but the classifier head (differential learning rates for transfer).",
    )
    schedule: str = opt(
        "step",
        "step: StepLR per epoch | triangle: linear warm-up to a peak, then linear decay | "
        "onecycle: linear warm-up to a peak, then cosine decay to 0.",
    )
    step_size: int = opt(10, "step schedule: period in epochs (0: constant lr).")
    gamma: float = opt(0.5, "step schedule: decay factor.")
    warmup_from: float = opt(0.2, "triangle/onecycle: lr factor at the first step.")
    peak_at: float = opt(0.23, "triangle/onecycle: fraction of all steps where the factor reaches 1.")
    decay_to: float = opt(0.07, "triangle: lr factor at the last step.")
    label_smoothing: float = opt(0.0, "Label smoothing of the training loss.")
    lookahead: bool = opt(False, "Average the weights (EMA) and copy the average back every few steps.")
    lookahead_start: int = opt(3, "Epochs before the lookahead starts.")
    lookahead_every: int = opt(5, "Steps between lookahead updates.")
    teachers: str = opt(
        "",
        "Distillation: comma-separated cifar-train checkpoints whose predictions on the train "
        "images (each with its own TTA views, ensemble-averaged) become soft targets.",
    )
    distill_weight: float = opt(
        0.0, "Distillation: share of the loss on the teachers' soft targets; the rest is cross-entropy on the labels."
    )
    distill_temperature: float = opt(1.0, "Distillation: softmax temperature of teachers and student in that loss.")
    # initialisation
    whiten_init: bool = opt(False, "First conv whitens 2x2 patches of 5,000 train images; its weight is frozen.")
    whiten_bias_epochs: int = opt(3, "Epochs the whitening conv's bias trains before it is frozen too.")
    dirac_init: bool = opt(False, "3x3 convs start as the identity on their first in_channels filters.")
    freeze_bn_scale: bool = opt(False, "BatchNorm scales fixed at 1 (only the biases train).")
    # data
    data: str = opt(
        "", "ImageFolder root with train/<class>/* and test/<class>/* (or val/), or a torchvision CIFAR-10 root."
    )
    download: bool = opt(False, "Download CIFAR-10 into --data through torchvision (needs internet).")
    image_size: int = opt(
        32,
        "Network input side in pixels; images of another size (or of mixed sizes) are resized "
        "to it, as the runtime resizes them.",
    )
    augment: str = opt("seed", "seed: the architecture's per-sample transforms | batch: whole-batch flip/translate.")
    flip: str = opt("random", "batch augment: random | alternate (each image mirrored every other epoch) | none.")
    translate: int = opt(0, "batch augment: random shift of up to this many pixels, reflect padding.")
    cutout: int = opt(0, "Side in pixels of a square zeroed at a random place in each image (0: off).")
    rotation: float = opt(0.0, "seed augment: random rotation of up to this many degrees (0: off).")
    val_size: int = opt(5000, "Train images held out (stratified) to select the best epoch; 0 selects on test.")
    split_seed: int = opt(0, "Seed of the validation split (it does not move with --seed).")
    workers: int = opt(0, "DataLoader worker processes for seed augmentation (0: in the main process).")
    # evaluation
    tta: int = opt(0, "Test-time augmentation: 0 none, 1 mirror, 2 mirror + 1-pixel translations.")
    # model
    pretrained: bool = opt(False, "Start from pretrained (ImageNet) weights; --no-pretrained: random init.")
    unfreeze: str = opt("", "Comma-separated parameter-name prefixes to train as well (e.g. layer3 for ResNets).")
    weights: str = opt("", "Local weights file to start from instead of torchvision's download cache.")
    # run
    out: str = opt("runs/cnn", "Run folder: best.pt, last.pt, history.csv, metrics.json, plots.")
    seed: int = opt(0, "Seed for weights, shuffling and augmentation.")
    deterministic: bool = opt(False, "Only deterministic kernels (slower on GPU).")
    device: str = opt("auto", "auto | cpu | cuda | cuda:N (auto: CUDA when present).")
    amp: bool = opt(True, "float16 mixed precision on CUDA.")
    cpu_amp: bool = opt(
        False,
        "bfloat16 mixed precision on CPU: about 2x faster training where the CPU computes "
        "bf16 natively (AVX512-BF16, AMX), slower where it does not; distillation teachers predict in it too; "
        "off: fp32.",
    )
    channels_last: bool = opt(False, "channels_last memory format (faster convs on recent CPUs and GPUs).")
    tensorboard: bool = opt(False, "Also write TensorBoard event files to --out/tensorboard (needs tensorboard).")


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    config: TrainConfig
    sources: dict[str, str] = field(default_factory=dict)  # config field (or group) -> where the choice comes from


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


SEED = "the seed repository's published pipeline"
AIRBENCH = "KellerJordan/cifar10-airbench, airbench94.py (hyp block) and the airbench paper (Jordan 2024)"

register(
    Recipe(
        "cnn",
        "seed 1: the 5-conv CNN from scratch, Adam 1e-3, StepLR 10/0.5, 30 epochs (reported 89.11%)",
        TrainConfig(arch="cnn", epochs=30, batch_size=64, lr=1e-3, step_size=10, gamma=0.5),
        {"*": SEED},
    )
)
register(
    Recipe(
        "resnet18",
        "seed 2: ImageNet ResNet18, layer4 + fc fine-tuned at 224x224, Adam 1e-4, 10 epochs (reported 91.95%)",
        TrainConfig(
            arch="resnet18",
            epochs=10,
            batch_size=64,
            lr=1e-4,
            step_size=0,
            image_size=224,
            pretrained=True,
            out="runs/resnet18",
        ),
        {"*": SEED},
    )
)

FAST = TrainConfig(
    arch="airbench94",
    epochs=18,
    batch_size=1024,
    micro_batch=512,
    optimizer="sgd",
    lr=11.5,
    momentum=0.85,
    weight_decay=0.0153,
    bn_bias_lr_scale=64.0,
    schedule="triangle",
    warmup_from=0.2,
    peak_at=0.23,
    decay_to=0.07,
    label_smoothing=0.2,
    lookahead=True,
    lookahead_start=3,
    lookahead_every=5,
    whiten_init=True,
    whiten_bias_epochs=3,
    dirac_init=True,
    freeze_bn_scale=True,
    augment="batch",
    flip="alternate",
    translate=2,
    tta=2,
    channels_last=True,
    out="runs/fast",
)
register(
    Recipe(
        "fast",
        "airbench94's recipe on its net, 18 epochs with a validation split held out; TTA mirror + translate",
        FAST,
        {
            "arch, whiten_init, dirac_init, freeze_bn_scale": AIRBENCH,
            "optimizer, lr, momentum, weight_decay, bn_bias_lr_scale, batch_size": AIRBENCH + " (decoupled units)",
            "schedule, warmup_from, peak_at, decay_to": AIRBENCH + " (triangle schedule)",
            "label_smoothing, lookahead*": AIRBENCH,
            "augment, flip, translate": AIRBENCH + " (alternating flip: the paper's section 3.6)",
            "tta": AIRBENCH + " (tta_level 2)",
            "epochs": "18 instead of 9.9, chosen by time before any run (45 minutes on a 2-core CPU); it makes up "
            "for the 5,000 images held out for validation",
            "micro_batch, channels_last": "CPU speed only (BatchNorm statistics per 512-image chunk)",
        },
    )
)
register(
    Recipe(
        "fast-cnn",
        "the fast recipe on the seed CNN's architecture (no whitening layer, a quarter of the learning rate)",
        TrainConfig(
            **{**FAST.__dict__, "arch": "cnn", "whiten_init": False, "lr": FAST.lr / 4, "out": "runs/fast-cnn"}
        ),
        {
            "*": "recipe `fast`, whitening off (the seed CNN has no whitening layer)",
            "lr": "11.5 / 4: at 11.5 the seed CNN diverges; chosen on validation by short probes "
            "(artifacts/fast/NOTES.md)",
        },
    )
)

register(
    Recipe(
        "fast-wide",
        "airbench95's net and learning rate with the fast recipe, 24 epochs; TTA mirror + translate",
        TrainConfig(**{**FAST.__dict__, "arch": "airbench95", "lr": 10.0, "epochs": 24, "out": "runs/fast-wide"}),
        {
            "*": "recipe `fast`",
            "arch, lr": "KellerJordan/cifar10-airbench, airbench95.py (hyp block: widths 128/384/384, lr 10.0)",
            "epochs": "24 instead of airbench95's 15, chosen by time before any run (as `fast`'s 18 against "
            "airbench94's 9.9): it fits the 3-hour budget on this 2-core CPU",
        },
    )
)

AIRBENCH96 = "KellerJordan/cifar10-airbench, airbench96.py (hyp block and its 06/13/24 update note)"
register(
    Recipe(
        "fast-wide-long",
        "fast-wide for 40 epochs with airbench96's stronger augmentation (translate 4, CutOut) and "
        "schedule (short warm-up, decay to 0, weight decay 0.012)",
        TrainConfig(
            **{
                **RECIPES["fast-wide"].config.__dict__,
                "epochs": 40,
                "translate": 4,
                "cutout": 13,
                "peak_at": 0.1,
                "decay_to": 0.0,
                "weight_decay": 0.012,
                "out": "runs/fast-wide-long",
            }
        ),
        {
            "*": "recipe `fast-wide` (airbench95's net and learning rate)",
            "epochs": "40, airbench96's first published length; chosen by time before any run: 40 epochs of this net "
            "take about 2.5 hours on this 2-core CPU, inside the 3-hour budget",
            "translate": AIRBENCH96 + " (4 instead of 2)",
            "cutout": AIRBENCH96 + " (12-pixel squares kept inside the image, 144 pixels; ours are clipped at the "
            "border, and 13 gives the nearest mean area, about 137)",
            "peak_at, decay_to, weight_decay": AIRBENCH96 + " (warm-up over the first 10% of steps, linear decay to 0, "
            "weight decay 0.012 instead of 0.0153)",
        },
    )
)

HINTON = "Hinton, Vinyals and Dean 2015, Distilling the Knowledge in a Neural Network"
DISTILL_SOURCES = {
    "teachers": "no default: the shipped student learnt from fast-wide-long seed 0, fast-wide and fast (their "
    "best.pt, each with its six TTA views); soft targets computed once on the clean train images",
    "distill_weight, distill_temperature": HINTON + " (soft targets at a temperature, mixed with the labels); "
    "0.8 and 1.0 chosen before any run: the teachers were trained with label "
    "smoothing, whose outputs are already soft, so no further softening",
}
register(
    Recipe(
        "distill",
        "fast-wide-long's net and recipe, learning from an ensemble of teachers (--teachers) as well as "
        "the labels: the ensemble's six-view accuracy in one view",
        TrainConfig(**{**RECIPES["fast-wide-long"].config.__dict__, "distill_weight": 0.8, "out": "runs/distill"}),
        {"*": "recipe `fast-wide-long`", **DISTILL_SOURCES},
    )
)
register(
    Recipe(
        "distill-small",
        "airbench94's net (`fast`'s cost per image) with the distill recipe: 40 epochs of "
        "fast-wide-long's augmentation and schedule, learning from --teachers",
        TrainConfig(
            **{**RECIPES["distill"].config.__dict__, "arch": "airbench94", "lr": FAST.lr, "out": "runs/distill-small"}
        ),
        {"*": "recipe `distill`", "arch, lr": AIRBENCH + " (the net and learning rate of `fast`)", **DISTILL_SOURCES},
    )
)


CHOICES = {
    "optimizer": ("adam", "sgd"),
    "schedule": ("step", "triangle", "onecycle"),
    "augment": ("seed", "batch"),
    "flip": ("random", "alternate", "none"),
}


def flag(name: str) -> str:
    """The command-line flag of a config field: lr -> --lr, label_smoothing -> --label-smoothing."""
    return "--" + name.replace("_", "-")


def validate_config(cfg: TrainConfig) -> None:
    """Refuse values no run can use, with one line that names the flag (before any data is decoded)."""
    from cifar_train.errors import UserError

    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise UserError(f"{flag(name)} {getattr(cfg, name)!r} is not one of {', '.join(allowed)}")
    checks = [
        ("lr", cfg.lr > 0, "must be > 0"),
        ("epochs", cfg.epochs >= 1, "must be >= 1"),
        ("batch_size", cfg.batch_size >= 1, "must be >= 1"),
        ("micro_batch", 0 <= cfg.micro_batch <= cfg.batch_size, "must be between 0 and --batch-size"),
        ("momentum", 0 <= cfg.momentum < 1, "must be in [0, 1)"),
        ("weight_decay", cfg.weight_decay >= 0, "must be >= 0"),
        ("bn_bias_lr_scale", cfg.bn_bias_lr_scale > 0, "must be > 0"),
        ("backbone_lr_scale", cfg.backbone_lr_scale >= 0, "must be >= 0"),
        ("gamma", cfg.gamma > 0, "must be > 0"),
        ("step_size", cfg.step_size >= 0, "must be >= 0"),
        ("warmup_from", 0 <= cfg.warmup_from <= 1, "must be in [0, 1]"),
        ("peak_at", 0 < cfg.peak_at <= 1, "must be in (0, 1]"),
        ("decay_to", 0 <= cfg.decay_to <= 1, "must be in [0, 1]"),
        ("label_smoothing", 0 <= cfg.label_smoothing < 1, "must be in [0, 1)"),
        ("lookahead_every", cfg.lookahead_every >= 1, "must be >= 1"),
        ("translate", 0 <= cfg.translate < cfg.image_size // 2, "must be >= 0 and under half the image"),
        ("cutout", 0 <= cfg.cutout <= cfg.image_size, "must be between 0 and the image size"),
        ("rotation", 0 <= cfg.rotation <= 180, "must be in [0, 180] degrees"),
        ("tta", cfg.tta in (0, 1, 2), "must be 0, 1 or 2"),
        ("image_size", cfg.image_size >= 8, "must be >= 8"),
        ("val_size", cfg.val_size >= 0, "must be >= 0"),
        ("workers", cfg.workers >= 0, "must be >= 0"),
        ("distill_weight", 0 <= cfg.distill_weight <= 1, "must be in [0, 1]"),
        ("distill_temperature", cfg.distill_temperature > 0, "must be > 0"),
    ]
    for name, ok, rule in checks:
        if not ok:
            raise UserError(f"{flag(name)} {getattr(cfg, name)} {rule}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device):
        raise UserError(f"--device {cfg.device!r} is not one of auto, cpu, cuda, cuda:N")
    if cfg.augment == "seed" and (cfg.translate or cfg.flip == "alternate"):
        raise UserError("--translate and --flip alternate belong to --augment batch")
    if cfg.augment == "batch" and cfg.rotation:
        raise UserError("--rotation works with --augment seed only")
    if bool(cfg.teachers) != (cfg.distill_weight > 0):
        raise UserError("distillation needs both --teachers CKPT[,CKPT...] and --distill-weight above 0")
    if cfg.teachers and cfg.augment != "batch":
        raise UserError("--teachers works with --augment batch only")
    if cfg.teachers:
        from cifar_train.distill import teacher_paths

        teacher_paths(cfg.teachers)
    from cifar_train.models import MODELS  # last: the registry imports torch, which takes seconds

    if cfg.arch not in MODELS:
        raise UserError(f"unknown architecture {cfg.arch!r}: one of {', '.join(sorted(MODELS))}")
    spec = MODELS[cfg.arch]
    spec.check_size(cfg.image_size)
    if (cfg.pretrained or cfg.weights) and spec.check_pretrained is not None:
        spec.check_pretrained(Path(cfg.weights) if cfg.weights else None)


# Fields that say where and how a run ran, not what it trains: recipes do not differ in them.
RUN_FIELDS = ("data", "download", "out", "device", "amp", "deterministic", "workers", "seed", "tensorboard")


def recipe_and_flags(config: dict[str, Any]) -> tuple[str, list[str]]:
    """A saved config (asdict(TrainConfig)) as the command that trains it: the nearest recipe, and the flags that
    turn it into this config (none when it is the recipe itself). Fields a config lacks count as the recipe's."""

    def setting(name: str, value: Any) -> str:  # a switch is --name / --no-name, anything else --name value
        if isinstance(value, bool):
            return flag(name) if value else "--no-" + flag(name)[2:]
        return f"{flag(name)} {value}"

    best: tuple[str, list[str]] | None = None
    for recipe in RECIPES.values():
        flags = [
            setting(k, config[k])
            for k, v in recipe.config.__dict__.items()
            if k not in RUN_FIELDS and config.get(k, v) != v
        ]
        if best is None or len(flags) < len(best[1]):
            best = (recipe.name, flags)
    assert best is not None  # the seed recipes are always registered
    return best


def recipe_of(config: dict[str, Any]) -> str | None:
    """The registered recipe a saved config was trained with, if it matches one exactly."""
    name, flags = recipe_and_flags(config)
    return None if flags else name
