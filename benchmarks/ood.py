"""What a CIFAR-10 model says about images that are none of its classes, at its recommended --min-confidence.

Images, all made or shipped offline:
  faces    the 200 real 25x25 face photos of Labeled Faces in the Wild that scikit-image ships (lfw_subset.npy)
  photos   scikit-image's and matplotlib's sample photos that show no CIFAR-10 class (people, coffee, coins, ...)
  noise    uniform and Gaussian RGB noise
  flat     one colour per image
  text     words drawn in black or white on a plain background
  pattern  gradients, stripes and checkerboards
Each set goes through the real `cifar-infer -f jsonl --min-confidence recommended`; the report says how many of
each set it still accepts, and with what confidence.

    python benchmarks/ood.py [--model FILE] --out ood.json      (needs: pip install scikit-image)
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SEED = 0
PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "ihc",
    "moon",
    "page",
    "text",
    "clock_motion",
    "retina",
    "microaneurysms",
    "logo",
    "color",
)
WORDS = ("hello", "invoice", "total 42", "STOP", "model card", "2026", "calibration", "none of these", "ok", "abc")


def make_images(root: Path) -> dict[str, list[Path]]:
    """Write every set as PNG files under root/<set>/; returns the files of each set."""
    import skimage.data
    from matplotlib import cbook

    rng = np.random.default_rng(SEED)
    sets: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    data_dir = Path(skimage.data.__file__).parent
    sets["faces"] = [(face * 255).astype(np.uint8) for face in np.load(data_dir / "lfw_subset.npy")]
    for name in PHOTOS:
        path = next(data_dir.glob(f"{name}.*"))
        sets["photos"].append(np.asarray(Image.open(path).convert("RGB")))
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        sets["photos"].append(np.asarray(Image.open(cbook.get_sample_data(name)).convert("RGB")))
    for i in range(100):
        side = int(rng.integers(16, 128))
        noise = rng.integers(0, 256, (side, side, 3)) if i % 2 else rng.normal(128, 50, (side, side, 3))
        sets["noise"].append(np.clip(noise, 0, 255).astype(np.uint8))
    sets["flat"] = [np.full((32, 32, 3), rng.integers(0, 256, 3), np.uint8) for _ in range(50)]
    for i in range(50):
        background = (255, 255, 255) if i % 2 else (0, 0, 0)
        img = Image.new("RGB", (96, 48), background)
        ImageDraw.Draw(img).text((4, 16), WORDS[i % len(WORDS)], fill=tuple(255 - c for c in background))
        sets["text"].append(np.asarray(img))
    ramp = np.linspace(0, 255, 64)
    for i in range(50):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        kind = i % 3
        if kind == 0:  # a two-colour gradient
            t = ramp[None, :, None] / 255
            img = a * (1 - t) + b * t + np.zeros((64, 1, 1))
        elif kind == 1:  # stripes
            img = np.where((np.arange(64)[None, :, None] // int(rng.integers(2, 12))) % 2, a, b) + np.zeros((64, 1, 1))
        else:  # a checkerboard
            cell = int(rng.integers(2, 16))
            grid = (np.arange(64)[:, None] // cell + np.arange(64)[None, :] // cell) % 2
            img = np.where(grid[:, :, None], a, b)
        sets["pattern"].append(img.astype(np.uint8))
    files: dict[str, list[Path]] = {}
    for name, images in sets.items():
        (root / name).mkdir(parents=True)
        files[name] = []
        for i, pixels in enumerate(images):
            path = root / name / f"{i:04d}.png"
            Image.fromarray(pixels).save(path)
            files[name].append(path)
    return files


def measure(model: Path | None, root: Path) -> dict[str, object]:
    """cifar-infer on every set; per set: images, share accepted, mean and max confidence, commonest label."""
    output = root / "rows.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "cifar_runtime",
        str(root),
        "-f",
        "jsonl",
        "-o",
        str(output),
        "--min-confidence",
        "recommended",
    ] + (["--model", str(model)] if model else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cifar-infer failed ({done.returncode}): {done.stderr.strip()}")
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    # the command that reproduces it, not this run's temporary folder
    report: dict[str, object] = {
        "command": " ".join(["python benchmarks/ood.py", *(["--model", str(model)] if model else [])]),
        "sets": {},
    }
    for name in sorted({Path(r["path"]).parent.name for r in rows}):
        mine = [r for r in rows if Path(r["path"]).parent.name == name]
        confidence = np.array([r["confidence"] for r in mine])
        label, count = collections.Counter(r["label"] for r in mine).most_common(1)[0]
        report["sets"][name] = {  # type: ignore[index]
            "images": len(mine),
            "accepted": float(np.mean([not r["abstained"] for r in mine])),
            "mean_confidence": float(confidence.mean()),
            "max_confidence": float(confidence.max()),
            "commonest_label": f"{label} ({count} of {len(mine)})",
        }
    every = [r for r in rows]
    report["all"] = {"images": len(every), "accepted": float(np.mean([not r["abstained"] for r in every]))}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX model file (default: cifar-infer's bundled model)")
    parser.add_argument("--out", type=Path, required=True, help="JSON report")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cifar-ood-") as tmp:
        make_images(Path(tmp))
        report = measure(args.model, Path(tmp))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, row in report["sets"].items():  # type: ignore[union-attr]
        print(
            f"{name:<8} {row['images']:>4} images: {row['accepted']:6.1%} accepted, mean confidence "
            f"{row['mean_confidence']:.3f}, max {row['max_confidence']:.3f}; commonest label {row['commonest_label']}"
        )
    print(f"all      {report['all']['images']:>4} images: {report['all']['accepted']:6.1%} accepted")  # type: ignore[index]


if __name__ == "__main__":
    main()
