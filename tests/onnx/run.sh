#!/usr/bin/env bash
# ONNX export parity check (`make onnx-check`, .ci/run): exports both shipped models, and a
# resnet18 trained for one epoch on 256 faces here (residual branches, global pooling), with
# `emotune export`, checks each file with the ONNX checker and compares ONNX Runtime's
# probabilities with emotune's on the first 256 PublicTest faces of FER-2013 (check_onnx.py).
#   tests/onnx/run.sh BUILD_DIR
# Needs PyPI (pip) the first time: onnx, onnxruntime and numpy go into a venv cached in
# ${EMOTUNE_ONNX_VENV:-~/.cache/emotune/onnx-venv}; later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-nocuda}
for b in "$build/bin/emotune" "$build/bin/onnx_reference_dump"; do
  [ -x "$b" ] || { echo "onnx-check: $b not built (cmake --build $build)"; exit 1; }
done
shared=../shared
[ -f "$shared/data/fer2013/fer2013-trainval.u8.xz" ] || { echo "onnx-check: no $shared/data/fer2013"; exit 1; }

venv=${EMOTUNE_ONNX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/emotune/onnx-venv}
# Versions pinned so that a rerun tests the same thing; onnx 1.17 checks opset <= 22, ORT 1.20 runs it.
reqs="onnx==1.17.0 onnxruntime==1.20.1 numpy==1.26.4"
if [ ! -f "$venv/.ok" ] || [ "$(cat "$venv/.ok")" != "$reqs" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "onnx-check: python3 -m venv failed (scripts/install-deps.sh --onnx)"; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check $reqs
  echo "$reqs" > "$venv/.ok"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# No resnet18 is shipped: a short run gives one with trained BatchNorm statistics and a temperature.
"$build/bin/emotune" train --config configs/vgg.json --arch resnet18 --epochs 1 --limit-train 256 \
  --limit-val 64 --out "$work" --name resnet18 > "$work/resnet18.log" 2>&1 \
  || { cat "$work/resnet18.log"; echo "onnx-check: the resnet18 run failed"; exit 1; }
"$build/bin/onnx_reference_dump" "$shared/data/fer2013/fer2013-trainval.u8.xz" PublicTest 256 \
  models/paper.safetensors "$work/paper.ref" models/vgg.safetensors "$work/vgg.ref" \
  "$work/resnet18/model.safetensors" "$work/resnet18.ref"
for m in paper vgg resnet18; do
  model="models/$m.safetensors"
  [ "$m" = resnet18 ] && model="$work/resnet18/model.safetensors"
  "$build/bin/emotune" export --model "$model" --format onnx --out "$work/$m.onnx"
  "$venv/bin/python" tests/onnx/check_onnx.py "$work/$m.onnx" "$work/$m.ref"
done
echo "onnx-check: paper, vgg and resnet18 OK"
