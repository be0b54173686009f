"""MODEL_CARD.md, written from the files a run and its exports left behind; no number is typed by hand. This file
writes what the run is (summary, data, results, training, limits, how to reproduce it); `card_measured.py` what was
measured after it."""

from __future__ import annotations

import json
from pathlib import Path

from cifar_export.card_measured import (
    bench_section,
    confidence_section,
    distill_section,
    folder_section,
    load,
    ood_section,
    parity_section,
    pct,
    table,
)
from cifar_export.errors import ExportError
from cifar_export.formats import FORMATS, file_name
from cifar_train import RunRecord, Timing, UserError, atomic_write, get_spec, recipe_and_flags

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _minutes(timing: Timing) -> list[str]:
    """Where the training minutes went (runs recorded before this was measured have no line)."""
    if timing.train_data_seconds is None or timing.epoch_eval_seconds is None or timing.final_eval_seconds is None:
        return []
    data, epochs = timing.train_data_seconds, timing.epochs_seconds
    return [
        f"Where the minutes went: forward/backward/optimizer {(epochs - data) / 60:.1f} min, waiting for augmented "
        f"batches {data / 60:.1f} min, per-epoch validation {timing.epoch_eval_seconds / 60:.1f} min, final "
        f"test and validation passes (every TTA level) {timing.final_eval_seconds / 60:.1f} min.",
        "",
    ]


def _dataset_lines(described: dict) -> list[str]:
    """The data's description as the run recorded it (cifar_train.dataset), for runs that recorded one."""
    if not described:
        return []
    counts = described["train_counts"]
    low, high = min(counts, key=counts.get), max(counts, key=counts.get)
    sizes = ", ".join(f"{size} ({n})" for size, n in list(described["sizes"].items())[:4])
    modes = ", ".join(f"{mode} ({n})" for mode, n in described["modes"].items())
    h, w = described["input_size"]
    return [
        f"Files: {sizes}{' and more' if len(described['sizes']) > 4 else ''}; modes {modes}; each brought to "
        f"{h}×{w} RGB, normalised with mean {described['mean']} and std {described['std']} "
        f"({described['statistics']}). Training images per class: {counts[low]} (`{low}`) to {counts[high]} "
        f"(`{high}`)."
        + (
            f" {described['unreadable']} file(s) could not be read and were left out."
            if described.get("unreadable")
            else ""
        ),
        "",
    ]


def _summary(record: RunRecord, dataset: str, classes: list[str]) -> list[str]:
    arch, tta, size = record.arch, record.tta, record.config["image_size"]
    recipe_name, flags = recipe_and_flags(record.config)
    onnx_name = file_name(arch, FORMATS["onnx"], tta)
    return [
        f"# Model card: `{arch}` on {dataset}",
        "",
        f"`{arch}` trained by `cifar-train {' '.join([recipe_name, *flags])}`, best epoch {record.best_epoch} of "
        f"{record.epochs} selected on the {record.selected_on} split. Input: float32 NCHW {size}×{size} RGB, "
        f"normalised with mean/std from the file's metadata; output: {len(classes)} logits for {', '.join(classes)}."
        + (
            f" Test-time augmentation level {tta} (mirror and one-pixel shifts: six views averaged) is part "
            f"of the exported graph `{onnx_name}`, so every runtime computes the reported figure."
            if tta == 2
            else f" Test-time augmentation level {tta} (mirror) is part of the exported graph `{onnx_name}`."
            if tta == 1
            else ""
        ),
        "",
    ]


def _data_section(record: RunRecord, described: dict, cifar: bool, classes: list[str]) -> list[str]:
    data = record.data
    return [
        "## Data",
        "",
        f"`{data.source}`: {data.train} training, {data.val} validation (held out of the {data.train + data.val} "
        f"training images, stratified, split seed {record.config['split_seed']}), {data.test} test images"
        + (
            ". That copy of CIFAR-10 (Krizhevsky 2009) is baseline JPEG at quality 75, so its pixels differ slightly "
            "from the lossless originals on which published figures are measured."
            if cifar
            else f"; classes {', '.join(classes)}."
        ),
        "",
        *_dataset_lines(described),
    ]


def _results_section(record: RunRecord, cifar: bool) -> list[str]:
    test = record.test
    reference = get_spec(record.arch).reference if cifar else None
    per_class = [
        [
            name,
            f"{v['accuracy']:.2%}",
            f"{v['precision']:.3f}",
            f"{v['recall']:.3f}",
            f"{v['f1']:.3f}",
            str(v["support"]),
        ]
        for name, v in test["per_class"].items()
    ]
    return [
        "## Results",
        "",
        *table(
            ["", "validation", "test", *(["reference (lossless data)", "reference on this JPEG copy"] * cifar)],
            [
                [
                    "accuracy",
                    pct(record.val_acc),
                    f"**{pct(record.test_acc)}**",
                    *(
                        [
                            f"{reference.test_acc}% ({reference.source})" if reference else "–",
                            (reference.note or "–") if reference else "–",
                        ]
                        * cifar
                    ),
                ],
                [
                    "loss",
                    f"{record.val_loss:.4f}" if record.val_loss else "–",
                    f"{record.test_loss:.4f}",
                    *[""] * 2 * cifar,
                ],
            ],
        ),
        "",
        record.selection_note + ".",
        "",
        f"Macro precision {test['macro_precision']:.3f}, recall {test['macro_recall']:.3f}, F1 {test['macro_f1']:.3f}"
        " on test.",
        "",
        *table(["class", "accuracy", "precision", "recall", "F1", "support"], per_class),
        "",
        "![test confusion matrix](confusion.png)",
        "",
        "![learning curves](curves.png)",
        "",
    ]


def _training_section(record: RunRecord) -> list[str]:
    timing, env = record.timing, record.environment
    recipe = [[k, f"`{v}`"] for k, v in record.config.items() if k not in ("out", "data", "resume")]
    return [
        "## Training",
        "",
        f"{record.epochs} epochs in {timing.epochs_seconds / 60:.0f} min on {env.device}"
        + (f" ({env.cpu})" if env.cpu else "")
        + f", {env.cpu_threads} threads, torch {env.torch}"
        + (f": {timing.mean_epoch_seconds:.0f} s per epoch" if timing.mean_epoch_seconds else "")
        + (f", {timing.mean_images_per_s:.0f} images/s with the data pipeline" if timing.mean_images_per_s else "")
        + (f", {timing.mean_step_images_per_s:.0f} images/s model-only" if timing.mean_step_images_per_s else "")
        + " (per-epoch figures in history.csv).",
        "",
        *_minutes(timing),
        *table(["recipe field", "value"], recipe),
        "",
    ]


def _limits_section(run: Path, record: RunRecord, classes: list[str]) -> list[str]:
    size = record.config["image_size"]
    return [
        "## Known limits",
        "",
        f"- Trained and evaluated on {size}×{size} images of {len(classes)} classes. Any other image is resized to "
        f'{size}×{size} and still gets one of these labels: there is no "none of these" answer. Calibrated '
        "confidence means right as often as it says on images like the test set; an image of none of the classes "
        "can still get a high one" + (" (above)." if (run / "ood.json").is_file() else "."),
        "- Timings are from the machine named under Training; other machines differ.",
        "",
    ]


def _reproduce_section(run: Path, record: RunRecord) -> list[str]:
    recipe_name, flags = recipe_and_flags(record.config)
    source, arch = record.data.source, record.arch
    train = " ".join(["cifar-train", recipe_name, *flags, "--data", source, "--seed", str(record.seed)])
    train += f" --out runs/{recipe_name}"
    return [
        "## Reproduce",
        "",
        "```bash",
        "pip install ./runtime ./train ./export",
        f"{train}   # --resume after a stop",
        f"mkdir -p {run} && cp runs/{recipe_name}/{{best.pt,metrics.json,history.csv,*.png}} {run}/",
        f"bash benchmarks/ship.sh {run} {source}   # every exported file, its checks and this card",
        f"python -m benchmarks.engines {run}/best.pt --data {source} --limit 0 --out runs/bench/{arch}",
        f"cp runs/bench/{arch}/bench.json {run}/ && cifar-export card {run}",
        "```",
        "",
    ]


def write_card(run: Path, bench_file: Path | None = None, out: Path | None = None) -> Path:
    """Write <run>/MODEL_CARD.md from metrics.json, *.parity.json, bench.json, folder_check*.json and ood.json."""
    try:
        record = RunRecord.read(run / "metrics.json")
    except UserError as e:
        raise ExportError(str(e)) from e
    out = out or run / "MODEL_CARD.md"
    bench_file = bench_file or run / "bench.json"
    inputs = [run / "metrics.json", bench_file, *run.glob("*.json")]
    if out.exists() and any(out.resolve() == p.resolve() for p in inputs if p.exists()):
        raise ExportError(f"--out {out} is one of the card's inputs: writing there would destroy it; give another file")
    classes = list(record.test["classes"])
    described = record.dataset or {}
    cifar = described.get("name", "CIFAR-10" if tuple(classes) == CIFAR10 else "") == "CIFAR-10"
    dataset = described.get("name") or ("CIFAR-10" if cifar else f"{len(classes)}-class image folder")
    checks = [json.loads(p.read_text()) for p in sorted(run.glob("folder_check*.json")) if ".predictions" not in p.name]
    lines = [
        *_summary(record, dataset, classes),
        *_data_section(record, described, cifar, classes),
        *_results_section(record, cifar),
        *_training_section(record),
        *confidence_section(record.temperature_scaling, record.tta),
        *parity_section(run),
        *bench_section(load(bench_file)),
        *folder_section(checks),
        *ood_section(load(run / "ood.json")),
        *distill_section(load(run / "ensemble.json")),
        *_limits_section(run, record, classes),
        *_reproduce_section(run, record),
    ]
    atomic_write(out, lambda tmp: tmp.write_text("\n".join(lines)))
    return out
