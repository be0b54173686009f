#!/usr/bin/env bash
# Rebuild a trained model's files from its checkpoint, measure them, and write its card: every figure the card and
# the README state about a shipped model comes from this script. The files are written beside the checkpoint
# (git ignores them: they are rebuilt, not committed); the records (*.json, the card) are committed.
#
#   bash benchmarks/ship.sh artifacts/fast-wide-long [DATA]     # from the repository root; ~1 h on 2 cores for airbench95
#   BUNDLE=1 bash benchmarks/ship.sh artifacts/fast-wide-long          # ... and copy the pair into the runtime
#   BUNDLE=small bash benchmarks/ship.sh artifacts/distill-small       # ... or its int8 file as `--model small`
#
# DATA: the real CIFAR-10 ImageFolder root (default ../shared/cifar10-jpeg). Steps, in order: ONNX without and with
# the TTA views and the raw-pixel variant, each parity-checked on all test images; their int8 siblings; every file
# end to end through cifar-infer (accuracy, ECE, img/s, peak RSS); what the default says to images that are no
# CIFAR class; the card.
set -euo pipefail
run=${1:?usage: ship.sh RUN_FOLDER [DATA]}
data=${2:-../shared/cifar10-jpeg}
arch=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['arch'])" "$run/metrics.json")
tta=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['config']['tta'])" "$run/metrics.json")
parity=(--data "$data" --limit 10000 --overwrite)

cifar-export onnx "$run/best.pt" --tta 0 "${parity[@]}"
cifar-export quantize "$run/$arch.onnx" --int8 "${parity[@]}"
cifar-export onnx "$run/best.pt" --raw --tta 0 "${parity[@]}"
cifar-export quantize "$run/$arch.raw.onnx" --int8 "${parity[@]}"
files=("$arch.onnx" "$arch.int8.onnx")
if [ "$tta" != 0 ]; then
  cifar-export onnx "$run/best.pt" --tta "$tta" "${parity[@]}"
  cifar-export quantize "$run/$arch.tta$tta.onnx" --int8 "${parity[@]}"
  files+=("$arch.tta$tta.onnx" "$arch.tta$tta.int8.onnx")
fi
for file in "${files[@]}"; do
  name=${file%.onnx}; name=${name#"$arch"}; name=${name#.}
  python -m benchmarks.folder_check "$run/$file" --data "$data" --batch-size 256 --overwrite \
    --out "$run/folder_check${name:+.$name}.json"
done
python "$(dirname "$0")/ood.py" --model "$run/$arch.int8.onnx" --out "$run/ood.json"
cifar-export card "$run"
models=runtime/cifar_runtime/models
if [ "${BUNDLE:-0}" = 1 ]; then
  bundled=$(python -c "from cifar_runtime.locate import BUNDLED_NAME; print(BUNDLED_NAME.removesuffix('.onnx'))")
  cp "$run/$arch.onnx" "$models/$bundled.onnx"
  cp "$run/$arch.int8.onnx" "$models/$bundled.int8.onnx"
  echo "bundled: $models/$bundled.onnx and its int8 sibling"
elif [ "${BUNDLE:-0}" = small ]; then
  small=$(python -c "from cifar_runtime.locate import SMALL_NAME; print(SMALL_NAME)")
  cp "$run/$arch.int8.onnx" "$models/$small"
  echo "bundled as --model small: $models/$small"
fi
