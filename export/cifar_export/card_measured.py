"""The model card's sections on what was measured after training: confidence, parity of every exported file, speed,
end-to-end checks through cifar-infer, images of no known class, distillation. Each reads the JSON record its
command wrote (named in the section) and returns markdown lines; a missing record is a line saying how to make it."""

from __future__ import annotations

import json
from pathlib import Path


def load(path: Path) -> dict | None:
    """A JSON record, or None where the command that writes it has not run."""
    return json.loads(path.read_text()) if path.is_file() else None


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals; – for no figure."""
    return "–" if x is None else f"{100 * x:.2f}%"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def parity_section(run: Path) -> list[str]:
    """Every exported file's parity report (cifar_export.parity) found in the run folder."""
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
        lines += table(
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


def bench_section(bench: dict | None) -> list[str]:
    """Latency, throughput and memory per engine (benchmarks/engines.py)."""
    lines = ["## Speed on this machine", ""]
    if bench is None:
        return lines + ["Not measured yet (`python -m benchmarks.engines RUN/best.pt`).", ""]
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
    lines += table(
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


def folder_section(checks: list[dict]) -> list[str]:
    """Each file end to end through cifar-infer on the test folder (benchmarks/folder_check.py)."""
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


def confidence_section(fits: dict, tta: int) -> list[str]:
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
    lines += table(["TTA", "T", "split", "mean confidence", "ECE", "NLL", "Brier"], rows)
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


def ood_section(report: dict | None) -> list[str]:
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
        *table(["images", "count", "accepted", "mean confidence", "max confidence", "commonest label"], rows),
        "",
    ]


def distill_section(report: dict | None) -> list[str]:
    """What the teachers score alone and as the ensemble a distilled model learnt from, beside the students, and the
    cost per image of each (benchmarks/ensemble.py)."""
    if report is None:
        return []
    rows = [
        [
            f"`{r['model']}`",
            r["role"],
            "six views" if r["tta"] == 2 else "mirror" if r["tta"] == 1 else "one view",
            pct(r["val_acc"]),
            pct(r["test_acc"]),
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
        *table(["model", "role", "views", "validation", "test", "ms per image", "cost"], rows),
        "",
    ]
