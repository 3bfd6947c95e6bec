#!/usr/bin/env bash
# The Keras oracle (docs/results.md, "The training step against Keras"): emotune's training step
# recomputed by TensorFlow/Keras from the same weights, batches and dropout masks.
#   tests/oracle/run.sh            venv (cached), build oracle_dump, dump, compare, negative controls;
#                                  fp32, and bf16 where the CPU has it
# Environment: ORACLE_VENV (default build/oracle-venv), ORACLE_BUILD (default build-nocuda, built
# with the CPU-only options when missing), ORACLE_DATA (default ../shared/data/fer2013/
# fer2013-trainval.u8.xz; synthetic faces when it is absent). Exit status 1 on any mismatch, or
# when a deliberately wrong convention is NOT caught.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${ORACLE_VENV:-build/oracle-venv}
BUILD=${ORACLE_BUILD:-build-nocuda}
DATA=${ORACLE_DATA:-../shared/data/fer2013/fer2013-trainval.u8.xz}
OUT=$BUILD/oracle
# TensorFlow 2.21 is the newest release with wheels for Python 3.11 (the Debian/CI Python here);
# Keras 3 comes with it.
PIP_PKGS="tensorflow-cpu==2.21.0 numpy"

if [ ! -f "$VENV/.oracle-ready" ] || [ "$(cat "$VENV/.oracle-ready")" != "$PIP_PKGS" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check $PIP_PKGS
  echo "$PIP_PKGS" > "$VENV/.oracle-ready"
fi
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DEMOTUNE_CUDA=OFF -DEMOTUNE_BUILD_BENCH=OFF
fi
cmake --build "$BUILD" --target oracle_dump -j "${JOBS:-2}"
mkdir -p "$OUT"
data_arg=()
if [ -f "$DATA" ]; then data_arg=(--data "$DATA"); else echo "oracle: $DATA not found, synthetic faces"; fi

status=0
check() {  # arch init precision [--negative-controls]
  local f="$OUT/$1-$2-$3.safetensors"
  "$BUILD/bin/oracle_dump" step --arch "$1" --init "$2" --precision "$3" "${data_arg[@]}" --out "$f"
  TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" tests/oracle/keras_oracle.py check "$f" "${@:4}" || status=1
}
check paper torch fp32 --negative-controls
check paper keras fp32
check vgg keras fp32
# bf16 (keras_oracle.py, run_check_bf16: each layer from emotune's own inputs, bounds derived from
# bfloat16's rounding) where this CPU runs bf16 products, as the engine decides it (kernels/runtime.h).
bf16_path=$("$BUILD/bin/oracle_dump" bf16-path)
if [ "$bf16_path" != none ]; then
  check paper keras bf16 --negative-controls
else
  echo "oracle: bf16 check SKIPPED: this CPU runs no bf16 products (neither avx512_bf16 nor AMX-BF16 usable)"
fi
exit $status
