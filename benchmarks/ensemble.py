"""A distillation's teachers, alone and as the ensemble its student learnt from, beside its students: accuracy on
validation and test with and without the test-time views, and the cost per image, all measured in one run.

    python -m benchmarks.ensemble --teachers A.pt,B.pt,C.pt --students S.pt[,T.pt] --data ../shared/cifar10-jpeg \
        --out artifacts/distill-small/ensemble.json

The ensemble averages its members' softmax probabilities (at temperature 1, the targets `distill` learns from),
each member at the same TTA level. Every checkpoint must hold out the same validation split (one --val-size and
split seed), or the ensemble's validation figure would include images some member trained on. Cost: seconds per
test image in torch eager float32 on this machine's CPU (the ensemble: the sum of its members'), and each model's
ratio to the cheapest one-view student, so figures from machines of different speed compare. Test is scored
here for the record; nothing is selected on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from cifar_train.checkpoint import atomic_write, config_from_checkpoint, load_checkpoint, model_from_checkpoint
from cifar_train.data import build_datasets
from cifar_train.distributed import Dist
from cifar_train.finish import cpu_model
from cifar_train.loop import StepOptions, evaluate
from cifar_train.tta import TestTimeAugmentation

BATCH = 500


def score(path: Path, datasets, levels: list[int]) -> dict[str, dict]:
    """{level: {val_acc, test_acc, s_per_image, val_probs, test_probs}} of one checkpoint."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    args = (len(datasets.classes), BATCH, torch.device("cpu"), StepOptions(), Dist(), 0)
    out = {}
    for level in levels:
        tta = TestTimeAugmentation(model, level)
        val = evaluate(tta, datasets.val, *args, description=f"{path} val tta {level}")
        start = time.perf_counter()
        test = evaluate(tta, datasets.test, *args, description=f"{path} test tta {level}")
        seconds = time.perf_counter() - start
        out[str(level)] = {
            "val_acc": val.acc,
            "test_acc": test.acc,
            "s_per_image": seconds / len(datasets.test),
            "val_probs": val.logits.softmax(1),
            "test_probs": test.logits.softmax(1),
            "labels": (val.labels, test.labels),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", required=True, help="comma-separated checkpoints: the ensemble")
    parser.add_argument("--students", default="", help="comma-separated checkpoints scored beside it")
    parser.add_argument("--data", required=True, help="the ImageFolder root the checkpoints were trained on")
    parser.add_argument("--out", type=Path, required=True, help="the JSON report")
    args = parser.parse_args(argv)
    teachers = [Path(p) for p in args.teachers.split(",") if p]
    students = [Path(p) for p in args.students.split(",") if p]
    configs = {p: config_from_checkpoint(load_checkpoint(p), args.data) for p in teachers + students}
    splits = {(c.val_size, c.split_seed) for c in configs.values()}
    if len(splits) != 1:
        raise SystemExit(f"the checkpoints hold out different validation splits (--val-size, split seed): {splits}")
    datasets, _ = build_datasets(configs[teachers[0]], print)
    levels = sorted({0} | {c.tta for c in configs.values()})
    scored = {p: score(p, datasets, levels) for p in teachers + students}

    rows = []
    for p, role in [(p, "teacher") for p in dict.fromkeys(teachers)] + [(p, "student") for p in students]:
        for level, s in scored[p].items():
            rows.append({"model": str(p), "role": role, "tta": int(level)})
            rows[-1].update({k: s[k] for k in ("val_acc", "test_acc", "s_per_image")})
    for level in map(str, levels):
        val_labels, test_labels = scored[teachers[0]][level]["labels"]
        val = torch.stack([scored[p][level]["val_probs"] for p in teachers]).mean(0)
        test = torch.stack([scored[p][level]["test_probs"] for p in teachers]).mean(0)
        rows.append(
            {
                "model": "ensemble of the teachers",
                "role": "ensemble",
                "tta": int(level),
                "val_acc": float((val.argmax(1) == val_labels).float().mean()),
                "test_acc": float((test.argmax(1) == test_labels).float().mean()),
                "s_per_image": sum(scored[p][level]["s_per_image"] for p in teachers),
            }
        )
    unit = "student" if students else "teacher"
    base = min(r["s_per_image"] for r in rows if r["role"] == unit and r["tta"] == 0)
    for r in rows:
        r["cost"] = r["s_per_image"] / base
    report = {
        "command": " ".join(["python -m benchmarks.ensemble", *(argv if argv is not None else sys.argv[1:])]),
        "machine": cpu_model(),
        "cost_unit": f"the cheapest one-view {unit}",
        "rows": rows,
    }
    atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(report, indent=2) + "\n"))
    print(f"{'model':<48} {'role':<8} {'TTA':>3} {'val':>7} {'test':>7} {'ms/img':>7} {'cost':>6}")
    for r in rows:
        print(
            f"{r['model']:<48} {r['role']:<8} {r['tta']:>3} {r['val_acc']:>7.2%} {r['test_acc']:>7.2%} "
            f"{r['s_per_image'] * 1000:>7.3f} {r['cost']:>5.1f}x"
        )


if __name__ == "__main__":
    main()
