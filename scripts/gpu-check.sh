#!/usr/bin/env bash
# Everything issue 4 needs from a GPU machine, in one call, from the repository root:
#   scripts/gpu-check.sh BUILD_DIR OUT_DIR
# BUILD_DIR is a CUDA build made beforehand (cmake -DEMOTUNE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90,
# targets test_*_cuda and bench_cuda_conv2d). Steps, each logged to OUT_DIR/<step>.log:
#   1. ctest -L cuda                    the CUDA parity tests (full shape table, batch 2, 8 and 16)
#  1b. the step test, seeds $EMOTUNE_GPU_CHECK_STEP_SEEDS (default 11-16), EMOTUNE_CONV_TUNE=1
#      and 0; the conv2d batch-8 case with EMOTUNE_CONV_TUNE=0 (estimated 1-2 minutes, not yet
#      timed on a GPU: raise EMOTUNE_GPU_CHECK_SECONDS if the sanitizers are cut short)
#   2. bench_cuda_conv2d                ours vs cuDNN, JSON to OUT_DIR/conv2d_cuda.json, with
#                                       NVIDIA_TF32_OVERRIDE=0 (no TF32 anywhere)
#   3. scripts/bench_cuda_table.py      the markdown table -> OUT_DIR/conv2d_cuda.md
#   4. compute-sanitizer memcheck       on each test_*_cuda executable, EMOTUNE_SANITIZE_QUICK=1
#   5. compute-sanitizer racecheck      likewise (sanitizers slow kernels 10-100x: smaller batches)
# The benchmark runs before the sanitizers so that a step cut short by its time limit loses the
# least important results. Each step has a time limit; the whole script stayed under 8 minutes on
# an H100 before step 1b was added. A summary (one line per step, PASS/FAIL) goes to OUT_DIR/summary.txt; the exit status
# is 0 only when every step passed.
# Environment: EMOTUNE_COMMIT (recorded in the benchmark context; default: git rev-parse),
# EMOTUNE_EXTRA_LIB_PATH (prepended to LD_LIBRARY_PATH, for carried shared libraries).
set -u -o pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR OUT_DIR" >&2
  exit 2
fi
BUILD=$(cd "$1" && pwd) || { echo "no build folder $1" >&2; exit 2; }
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
status=0

note() { echo "$*" | tee -a "$SUMMARY"; }

# Shared libraries: carried ones first, then cuDNN / cuBLAS from the Python wheels if the
# system has none (the GPU image ships them inside nvidia-* packages).
if [ -n "${EMOTUNE_EXTRA_LIB_PATH:-}" ]; then
  export LD_LIBRARY_PATH="$EMOTUNE_EXTRA_LIB_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if command -v python3 >/dev/null; then
  wheel_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for d in glob.glob(os.path.join(base, "nvidia", "*", "lib")):
        dirs.append(d)
print(":".join(dirs))
PY
)
  [ -n "$wheel_libs" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$wheel_libs"
fi

export EMOTUNE_COMMIT="${EMOTUNE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
# Executables only: no '.' in the file name (the folder itself may hold dots, e.g. .device-carry).
TESTS=$(find "$BUILD/tests" -maxdepth 1 -type f -name 'test_*_cuda' ! -name '*.*' 2>/dev/null | sort)
BENCH="$BUILD/bin/bench_cuda_conv2d"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $EMOTUNE_COMMIT"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  for exe in $TESTS "$BENCH"; do
    missing=$(ldd "$exe" 2>/dev/null | grep "not found")
    [ -n "$missing" ] && echo "MISSING LIBRARIES for $exe:" && echo "$missing"
  done
} 2>&1 | tee "$OUT/environment.log"

# step NAME LIMIT_SECONDS COMMAND...: runs with a time limit, logs, records PASS/FAIL.
DEADLINE=${EMOTUNE_GPU_CHECK_SECONDS:-470}  # the whole script, in seconds
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 15 ]; then
    note "$name: NOT RUN (time budget of $DEADLINE s spent)"
    status=1
    return
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  local t0=$SECONDS
  echo "=== $name: $*" | tee "$OUT/$name.log"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  local verdict=PASS
  [ "$rc" -ne 0 ] && verdict="FAIL (exit $rc$([ "$rc" -eq 124 ] && echo ', time limit'))" && status=1
  note "$name: $verdict in $((SECONDS - t0)) s"
}

# 1. the tests. CTest files hold the absolute paths of the machine that configured the build;
# when the build folder has moved (copied to the GPU machine), run the executables directly.
built_in=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
if [ "$built_in" = "$BUILD" ]; then
  step ctest 180 ctest --test-dir "$BUILD" -L cuda --output-on-failure --timeout 170
else
  note "ctest: build configured in '$built_in', now at '$BUILD': running the test executables directly"
  for exe in $TESTS; do
    step "test-$(basename "$exe")" 120 "$exe"
  done
fi

# 1b. the whole-step test over several image seeds, with the conv tuner on and off (issue: the
# vgg step failed at batch 8; the layer-wise rule of tests/step_compare.h is immune to ReLU/pool
# flips, so a failure names the layer), then the conv2d batch-8 parity case with the tuner off
# (automatic = the heuristic tile; with the tuner on it ran in step 1).
STEP_SEEDS=${EMOTUNE_GPU_CHECK_STEP_SEEDS:-11,12,13,14,15,16}
STEP_TEST=$(ls "$BUILD/tests/test_train_step_cuda" 2>/dev/null | head -1)
CONV_TEST=$(ls "$BUILD/tests/test_conv2d_cuda" 2>/dev/null | head -1)
if [ -n "$STEP_TEST" ]; then
  for tune in 1 0; do
    step "train-step-tune$tune" 150 env EMOTUNE_CONV_TUNE=$tune EMOTUNE_STEP_SEEDS="$STEP_SEEDS" "$STEP_TEST"
  done
else
  note "train-step: FAIL (no step test executable in $BUILD/tests)"
  status=1
fi
if [ -n "$CONV_TEST" ]; then
  step conv2d-batch8-tune0 90 env EMOTUNE_CONV_TUNE=0 "$CONV_TEST" --test-case="*train step's batch*"
fi

# 2-3. the benchmark and its table
if [ -x "$BENCH" ]; then
  NVIDIA_TF32_OVERRIDE=0 step bench 240 "$BENCH" --benchmark_out="$OUT/conv2d_cuda.json" \
    --benchmark_out_format=json --benchmark_counters_tabular=true
  step table 20 python3 "$ROOT/scripts/bench_cuda_table.py" "$OUT/conv2d_cuda.json" --out "$OUT/conv2d_cuda.md"
else
  note "bench: FAIL (no $BENCH)"
  status=1
fi

# 4-5. sanitizers, quick mode
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
  /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$SANITIZER" ]; then
  for tool in memcheck racecheck; do
    for exe in $TESTS; do
      EMOTUNE_SANITIZE_QUICK=1 step "$tool-$(basename "$exe")" 60 \
        "$SANITIZER" --tool "$tool" --error-exitcode 99 --print-limit 50 "$exe"
    done
  done
else
  note "sanitizers: FAIL (compute-sanitizer not on PATH)"
  status=1
fi

note "total: $SECONDS s, overall $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
