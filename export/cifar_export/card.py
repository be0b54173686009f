"""MODEL_CARD.md, written from the files a run and its exports left behind; no number is typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from cifar_export.errors import ExportError
from cifar_export.formats import FORMATS, file_name
from cifar_train import RunRecord, Timing, UserError, atomic_write, get_spec, recipe_and_flags


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _parity_section(run: Path) -> list[str]:
    lines = ["## Exported files and parity", ""]
    reports = sorted(run.glob("*.parity.json"))
    if not reports:
        return lines + ["No exported files yet: run `cifar-export all` on this folder's best.pt.", ""]
    for path in reports:
        summary = json.loads(path.read_text())
        r, name = summary["parity"], summary["model"]
        size = f", {(run / name).stat().st_size / 2**20:.1f} MB" if (run / name).is_file() else ""  # a record alone
        verdict = "passed" if r["passed"] else "FAILED"
        lines += [
            f"**{name}** ({r['precision']}{size}) against {r['reference']} on {r['rows'][0]['images']}"
            f" real images from `{r['images']}`: **{verdict}**",
            "",
        ]
        lines += _table(
            [
                "batch",
                "max abs logit diff",
                "max rel diff",
                "top-1 agreement",
                "max softmax diff",
                "top-1 acc (file / reference)",
            ],
            [
                [
                    str(b["batch_size"]),
                    f"{b['max_abs']:.2e}",
                    f"{b['max_rel']:.2e}",
                    f"{b['top1_agreement']:.2f}%",
                    f"{b['softmax_max_diff']:.2e}",
                    f"{b['accuracy']:.2f}% / {r['reference_accuracy']:.2f}%",
                ]
                for b in r["rows"]
            ],
        )
        if r["precision"] != "fp32":
            drop = r["reference_accuracy"] - min(b["accuracy"] for b in r["rows"])
            lines += ["", f"Accuracy delta against fp32: **{-drop:+.2f} points** (allowed: −{r['config']['max_drop']})"]
        lines.append("")
    return lines


def _bench_section(bench: dict | None) -> list[str]:
    lines = ["## Speed on this machine", ""]
    if bench is None:
        return lines + ["Not measured yet (`cifar-export bench`).", ""]
    cfg = bench["provenance"]["config"]
    rows = [
        [
            row["engine"],
            f"{row['file_mb']:.1f}",
            f"{r['latency_p50_ms']:.2f}",
            f"{r['latency_p99_ms']:.2f}",
            f"{r['throughput_ips']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['top1']:.2f}%",
        ]
        for row in bench["rows"]
        if (r := row["result"])
    ]
    lines += _table(
        [
            "engine",
            "file MB",
            "batch-1 p50 ms",
            "batch-1 p99 ms",
            f"batch-{cfg['throughput_batch']} img/s",
            "peak RSS MB",
            "top-1",
        ],
        rows,
    )
    ratios = ", ".join(f"{k.replace('_', ' ')} {v:.2f}×" for k, v in bench["ratios"].items())
    lines += ["", f"Each engine in its own process, top-1 on {bench['image_count']} test images. Ratios: {ratios}.", ""]
    return lines


def _command(command: str) -> str:
    """A recorded command as a reader types it: the program's name, not this machine's path to it."""
    program, _, rest = command.partition(" ")
    return f"{Path(program).name} {rest}"


def _folder_section(checks: list[dict]) -> list[str]:
    lines = ["## End to end through `cifar-infer`", ""]
    if not checks:
        return lines + ["Not measured yet (`python -m benchmarks.folder_check`).", ""]
    for check in checks:
        lines += [
            f"`{_command(check['command'])}`",
            "",
            f"{check['classified']} of {check['files']} files classified ({check['failed']} failed), accuracy "
            f"**{check['accuracy']:.2f}%**, {check['seconds']:.1f} s wall time = **{check['images_per_s']:.0f} "
            f"images/s** (process start to exit, batch {check['batch_size']}), peak RSS of the cifar-infer process "
            f"{check['peak_rss_mb']:.0f} MB."
            + (
                f" Mean confidence {check['mean_confidence']:.2f}%, expected calibration error **{check['ece']:.2f}%**."
                if "ece" in check
                else ""
            )
            + (
                f" At the recommended `--min-confidence {check['min_confidence']:.4f}`: {check['coverage']:.1f}% of "
                f"the files accepted, {check['accepted_accuracy']:.2f}% of them correct."
                if check.get("coverage") is not None and check.get("accepted_accuracy") is not None
                else ""
            ),
            "",
        ]
    return lines


def _confidence_section(fits: dict, tta: int) -> list[str]:
    """Temperature scaling as the run fitted it (cifar_train.temperature), per TTA level."""
    lines = ["## Confidence", ""]
    if not fits:
        return lines + [
            "No temperature was fitted (the run predates temperature scaling or held out no validation "
            "split): the exported files' probabilities are as trained, not calibrated.",
            "",
        ]
    lines += [
        "One temperature T per test-time augmentation level, fitted by minimising the NLL of the validation split's "
        "logits (Guo et al. 2017) and folded into every exported graph: the files' probabilities are "
        "softmax(logits / T). Test is scored before and after, never fitted on. ECE: expected calibration error, "
        "15 equal-width confidence bins.",
        "",
    ]
    rows = []
    for level, fit in sorted(fits.items()):
        for split in ("val", "test"):
            before, after = fit[f"{split}_before"], fit[f"{split}_after"]
            confidence = f"{before['mean_confidence']:.2%} → {after['mean_confidence']:.2%}"
            rows.append(
                [
                    level,
                    f"{fit['temperature']:.4f}",
                    split,
                    confidence,
                    f"{before['ece']:.2%} → **{after['ece']:.2%}**",
                    f"{before['nll']:.4f} → {after['nll']:.4f}",
                    f"{before['brier']:.4f} → {after['brier']:.4f}",
                ]
            )
    lines += _table(["TTA", "T", "split", "mean confidence", "ECE", "NLL", "Brier"], rows)
    own = fits.get(str(tta))
    if own:
        t = own["threshold"]
        kept = own["test_accepted_accuracy"]
        lines += [
            "",
            f"Recommended threshold (TTA level {tta}): accept when confidence ≥ **{t['threshold']:.4f}**, the lowest "
            f"at which the accepted validation images are at least {t['target_accuracy']:.0%} correct "
            f"({t['val_coverage']:.1%} of validation accepted). On test it accepts {own['test_coverage']:.1%}"
            + (f", {kept:.2%} of them correct." if kept is not None else "."),
            "",
            "![reliability diagram and risk-coverage curve](calibration.png)",
        ]
    return lines + [""]


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


def _ood_section(report: dict | None) -> list[str]:
    """What the default file said to images of no class it knows (benchmarks/ood.py)."""
    if report is None:
        return []
    rows = [
        [
            name,
            str(r["images"]),
            f"{r['accepted']:.1%}",
            f"{r['mean_confidence']:.3f}",
            f"{r['max_confidence']:.3f}",
            r["commonest_label"],
        ]
        for name, r in report["sets"].items()
    ]
    return [
        "## Images of no class it knows",
        "",
        f"`{report['command']}`: generated images and photos shipped in scikit-image and matplotlib that show none "
        "of the classes, through `cifar-infer --min-confidence recommended`; the share still accepted.",
        "",
        *_table(["images", "count", "accepted", "mean confidence", "max confidence", "commonest label"], rows),
        "",
    ]


def _distill_section(report: dict | None) -> list[str]:
    """What the teachers score alone and as the ensemble a distilled model learnt from, beside the students, and the
    cost per image of each (benchmarks/ensemble.py)."""
    if report is None:
        return []
    rows = [
        [
            f"`{r['model']}`",
            r["role"],
            "six views" if r["tta"] == 2 else "mirror" if r["tta"] == 1 else "one view",
            _pct(r["val_acc"]),
            _pct(r["test_acc"]),
            f"{1000 * r['s_per_image']:.2f}",
            f"{r['cost']:.1f}×",
        ]
        for r in report["rows"]
    ]
    return [
        "## Distillation: teachers and students",
        "",
        f"`{report['command']}` on {report['machine']}: the teachers alone and as the ensemble the student learnt "
        "from (the mean of their probabilities), beside the students. Cost: ms per test image in torch float32, "
        f"and its ratio to {report['cost_unit']}, all measured in that one run.",
        "",
        *_table(["model", "role", "views", "validation", "test", "ms per image", "cost"], rows),
        "",
    ]


CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_card(run: Path, bench_file: Path | None = None, out: Path | None = None) -> Path:
    """Write <run>/MODEL_CARD.md from metrics.json, *.parity.json, bench.json, folder_check*.json and ood.json."""
    try:
        record = RunRecord.read(run / "metrics.json")
    except UserError as e:
        raise ExportError(str(e)) from e
    arch, cfg, test, timing, env = record.arch, record.config, record.test, record.timing, record.environment
    classes = list(test["classes"])
    described = record.dataset or {}
    cifar = described.get("name", "CIFAR-10" if tuple(classes) == CIFAR10 else "") == "CIFAR-10"
    dataset = described.get("name") or ("CIFAR-10" if cifar else f"{len(classes)}-class image folder")
    reference = get_spec(arch).reference if cifar else None
    recipe_name, flags = recipe_and_flags(cfg)
    onnx_name = file_name(arch, FORMATS["onnx"], record.tta)
    bench = _load(bench_file or run / "bench.json")
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
    recipe = [[k, f"`{v}`"] for k, v in cfg.items() if k not in ("out", "data", "resume")]
    size = cfg["image_size"]
    data = record.data
    train_command = " ".join(
        [
            "cifar-train",
            recipe_name,
            *flags,
            "--data",
            data.source,
            "--seed",
            str(record.seed),
            "--out",
            f"runs/{recipe_name}",
        ]
    )
    lines = [
        f"# Model card: `{arch}` on {dataset}",
        "",
        f"`{arch}` trained by `cifar-train {' '.join([recipe_name, *flags])}`, best epoch {record.best_epoch} of "
        f"{record.epochs} selected on the {record.selected_on} split. Input: float32 NCHW {size}×{size} RGB, "
        f"normalised with mean/std from the file's metadata; output: {len(classes)} logits for {', '.join(classes)}."
        + (
            f" Test-time augmentation level {record.tta} (mirror and one-pixel shifts: six views averaged) is part "
            f"of the exported graph `{onnx_name}`, so every runtime computes the reported figure."
            if record.tta == 2
            else f" Test-time augmentation level {record.tta} (mirror) is part of the exported graph `{onnx_name}`."
            if record.tta == 1
            else ""
        ),
        "",
        "## Data",
        "",
        f"`{data.source}`: {data.train} training, {data.val} validation (held out of the {data.train + data.val} "
        f"training images, stratified, split seed {cfg['split_seed']}), {data.test} test images"
        + (
            ". That copy of CIFAR-10 (Krizhevsky 2009) is baseline JPEG at quality 75, so its pixels differ slightly "
            "from the lossless originals on which published figures are measured."
            if cifar
            else f"; classes {', '.join(classes)}."
        ),
        "",
        *_dataset_lines(described),
        "## Results",
        "",
        *_table(
            ["", "validation", "test", *(["reference (lossless data)", "reference on this JPEG copy"] * cifar)],
            [
                [
                    "accuracy",
                    _pct(record.val_acc),
                    f"**{_pct(record.test_acc)}**",
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
        *_table(["class", "accuracy", "precision", "recall", "F1", "support"], per_class),
        "",
        "![test confusion matrix](confusion.png)",
        "",
        "![learning curves](curves.png)",
        "",
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
        *_table(["recipe field", "value"], recipe),
        "",
        *_confidence_section(record.temperature_scaling, record.tta),
        *_parity_section(run),
        *_bench_section(bench),
        *_folder_section(
            [json.loads(p.read_text()) for p in sorted(run.glob("folder_check*.json")) if ".predictions." not in p.name]
        ),
        *_ood_section(_load(run / "ood.json")),
        *_distill_section(_load(run / "ensemble.json")),
        "## Known limits",
        "",
        f"- Trained and evaluated on {size}×{size} images of {len(classes)} classes. Any other image is resized to "
        f'{size}×{size} and still gets one of these labels: there is no "none of these" answer. Calibrated '
        "confidence means right as often as it says on images like the test set; an image of none of the classes "
        "can still get a high one" + (" (above)." if (run / "ood.json").is_file() else "."),
        "- Timings are from the machine named under Training; other machines differ.",
        "",
        "## Reproduce",
        "",
        "```bash",
        "pip install ./runtime ./train ./export",
        f"{train_command}   # --resume after a stop",
        f"mkdir -p {run} && cp runs/{recipe_name}/{{best.pt,metrics.json,history.csv,*.png}} {run}/",
        f"bash benchmarks/ship.sh {run} {data.source}   # every exported file, its checks and this card",
        f"python -m benchmarks.engines {run}/best.pt --data {data.source} --limit 0 --out runs/bench/{arch}",
        f"cp runs/bench/{arch}/bench.json {run}/ && cifar-export card {run}",
        "```",
        "",
    ]
    out = out or run / "MODEL_CARD.md"
    inputs = [run / "metrics.json", bench_file or run / "bench.json", *run.glob("*.json")]
    if out.exists() and any(out.resolve() == p.resolve() for p in inputs if p.exists()):
        raise ExportError(f"--out {out} is one of the card's inputs: writing there would destroy it; give another file")
    atomic_write(out, lambda tmp: tmp.write_text("\n".join(lines)))
    return out
