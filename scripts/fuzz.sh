#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang + ASan + UBSan and runs each one.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 600 s, every target)
#   JOBS=2 scripts/fuzz.sh 600                          (targets run JOBS at a time)
#   MERGE=0 scripts/fuzz.sh 60 image                    (do not merge new inputs into fuzz/corpus)
#
# Each target starts from the committed corpus fuzz/corpus/<target>/ and works in
# build-fuzz/work/<target>/. A crash, leak, timeout or sanitizer report leaves its input in
# build-fuzz/findings/<target>/ and makes the script exit non-zero. Afterwards the inputs that
# reached new coverage are merged (minimised, libFuzzer -merge=1) back into fuzz/corpus/<target>/,
# and build-fuzz/fuzz-summary.tsv gets one line per target of this invocation: target, seconds,
# executions, exec/s, coverage edges, features, corpus size, findings; scripts/fuzz_report.py
# turns it into the table of docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-600}
shift || true
ALL_TARGETS=(fer2013_csv ferplus image safetensors mood_table video_tracking)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
JOBS=${JOBS:-$(nproc)}
MERGE=${MERGE:-1}
BUILD=build-fuzz

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 1; }
cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DEMOTUNE_CUDA=OFF -DEMOTUNE_FUZZ=ON -DEMOTUNE_BUILD_TESTS=OFF \
  -DEMOTUNE_BUILD_BENCH=OFF >/dev/null
cmake --build $BUILD -j "$(nproc)" --target "${TARGETS[@]/#/fuzz_}"

# Large enough for a few FER-2013 rows (one row is ~9 KB of text) and small real images.
declare -A MAX_LEN=([fer2013_csv]=65536 [ferplus]=16384 [image]=65536 [safetensors]=16384 [mood_table]=16384 [video_tracking]=4096)

run_one() {
  local t=$1 work=$BUILD/work/$1 findings=$BUILD/findings/$1 log=$BUILD/logs/$1.log
  mkdir -p "$work" "$findings" "$BUILD/logs"
  local start=$(date +%s) rc=0
  # ASAN_OPTIONS: leaks are findings too; the 2 GB RSS limit and 10 s timeout catch memory
  # blow-ups and hangs (a hostile header must not make a reader allocate or loop without bound).
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  "$BUILD/fuzz/fuzz_$t" "$work" "fuzz/corpus/$t" -max_total_time="$SECONDS_PER_TARGET" \
    -max_len="${MAX_LEN[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings/" >"$log" 2>&1 || rc=$?
  local secs=$(( $(date +%s) - start ))
  local execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  local rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  local last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  local cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  local ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  local corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  local found=$(find "$findings" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$found" >>$BUILD/fuzz-summary.tsv
  echo "fuzz.sh: $t: ${secs}s, ${execs:-?} executions (${rate:-?}/s), cov ${cov:-?}, findings $found (exit $rc)"
  if [ "$rc" -ne 0 ]; then echo "fuzz.sh: $t failed; the end of $log:" >&2; tail -30 "$log" >&2; fi
  return $rc
}

: >$BUILD/fuzz-summary.tsv
status=0
pids=()
for t in "${TARGETS[@]}"; do
  run_one "$t" & pids+=($!)
  if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done

if [ "$MERGE" = 1 ]; then
  for t in "${TARGETS[@]}"; do
    before=$(ls "fuzz/corpus/$t" | wc -l)
    "$BUILD/fuzz/fuzz_$t" -merge=1 -max_len="${MAX_LEN[$t]}" -artifact_prefix="$BUILD/findings/$t/" \
      "fuzz/corpus/$t" "$BUILD/work/$t" \
      >"$BUILD/logs/$t.merge.log" 2>&1 || { echo "fuzz.sh: merge of $t failed" >&2; status=1; }
    echo "fuzz.sh: $t corpus $before -> $(ls "fuzz/corpus/$t" | wc -l) files"
  done
fi
exit $status
