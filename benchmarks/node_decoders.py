"""The README's Node recipe against `cifar-infer` on the same JPEGs, with two decoders: which one gives its answers.

    npm install --prefix /tmp/node --ignore-scripts onnxruntime-node sharp jpeg-js   # once (the CPU binaries)
    python -m benchmarks.node_decoders MODEL.raw.onnx FOLDER --node-modules /tmp/node/node_modules

Prints, per decoder, how many top-1 labels agree with `cifar-infer --model MODEL.raw.onnx --precision fp32` and the
largest probability difference. --ignore-scripts: onnxruntime-node's install script fetches GPU extras from NuGet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from cifar_runtime import Classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--node-modules", type=Path, required=True)
    args = parser.parse_args()
    paths = sorted(str(p) for p in args.folder.rglob("*.jpg"))
    done = subprocess.run(
        ["node", str(Path(__file__).with_suffix(".mjs")), str(args.model)],
        input="\n".join(paths) + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(args.node_modules)},
    )
    if done.returncode != 0:
        raise SystemExit(f"node failed: {done.stderr.strip()[-500:]}")
    node = {row["path"]: row for row in map(json.loads, done.stdout.splitlines())}
    clf = Classifier(args.model, device="cpu", precision="fp32")
    classes = clf.classes
    runtime = {}
    for path, p in zip(paths, clf.predict(paths, top_k=len(classes)), strict=True):
        runtime[path] = np.array([dict((s.label, s.confidence) for s in p.top_k)[c] for c in classes])
    for decoder in ("sharp", "jpegjs"):
        probs = {path: np.array(node[path][decoder]) for path in paths}
        agree = sum(probs[p].argmax() == runtime[p].argmax() for p in paths)
        drift = max(float(np.abs(probs[p] - runtime[p]).max()) for p in paths)
        right = sum(classes[probs[p].argmax()] == Path(p).parent.name for p in paths)
        print(
            f"{decoder:<7} labels agree with cifar-infer on {agree}/{len(paths)} files; largest probability "
            f"difference {drift:.2g}; accuracy {100 * right / len(paths):.1f}%"
        )
    right = sum(classes[runtime[p].argmax()] == Path(p).parent.name for p in paths)
    print(f"cifar-infer accuracy on the same files {100 * right / len(paths):.1f}%")


if __name__ == "__main__":
    sys.exit(main())
