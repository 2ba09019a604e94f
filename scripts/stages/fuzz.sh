#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fuzz.sh: a time-bounded libFuzzer run of tests/fuzz/fuzz_segment (hostile segment bytes) from the seed corpus.
# Ends with one line "STAGE fuzz: N passed, N failed"; exits non-zero on a crash, a leak, a UBSan report
# or a timeout of one input.
#
# Usage: scripts/stages/fuzz.sh [BUILDDIR]   (default: build-fuzz; clang, -Dfuzz=true)
# The run: SHMX_FUZZ_SECONDS (default 60) seconds over a scratch copy of tests/fuzz/corpus (the
# checked-in seeds are never modified), -max_len 40000, 10 s per input at most. Cases: the seeds alone
# (-runs=0), then the timed run. libFuzzer's final statistics (executions, new units, coverage) go to
# BUILDDIR/fuzz-stats.txt and are printed before the STAGE line; a crashing input is kept in
# BUILDDIR/fuzz-artifacts/ (reproduce: BUILDDIR/tests/fuzz/fuzz_segment FILE).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/common.sh

BUILD_DIR="${1:-build-fuzz}"
SECONDS_BUDGET="${SHMX_FUZZ_SECONDS:-60}"
passed=0 failed=0

finish() {
  echo "STAGE fuzz: $passed passed, $failed failed"
  ((failed == 0))
  exit $?
}

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (scripts/deps.sh installs clang and libclang-rt-14-dev)" >&2
  failed=1
  finish
fi

shmx_heading "fuzz: build $BUILD_DIR (clang, libFuzzer + ASan + UBSan)"
want="-Dfuzz=true -Dplugin=disabled -Dexamples=false -Dbenchmarks=false"
have=""
[[ -f $BUILD_DIR/.shmx-setup-options ]] && have=$(<"$BUILD_DIR/.shmx-setup-options")
if [[ ! -f $BUILD_DIR/build.ninja || $have != "$want" ]]; then
  rm -rf "$BUILD_DIR"
  # shellcheck disable=SC2086  # the options are words
  CC=clang CXX=clang++ meson setup "$BUILD_DIR" $want || { failed=1; finish; }
  printf '%s' "$want" >"$BUILD_DIR/.shmx-setup-options"
fi
fuzzer="$BUILD_DIR/tests/fuzz/fuzz_segment"
if ! ninja -C "$BUILD_DIR" -j "$SHMX_JOBS" tests/fuzz/fuzz_segment; then
  echo "fuzz: BUILD FAILED" >&2
  failed=1
  finish
fi

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
artifacts="$BUILD_DIR/fuzz-artifacts"
work="$BUILD_DIR/fuzz-corpus-work"
mkdir -p "$artifacts"
rm -rf "$work"
cp -r tests/fuzz/corpus "$work"

# Removes what a crashed run of the target left in /dev/shm: its segments are named after its pid
# (shmx.fuzz-PID, shmx.fuzzsrv-PID); those of any other fuzz process that is no longer running go too.
cleanup_shm() {
  local pid=$1 path other
  rm -f "/dev/shm/shmx.fuzz-$pid" "/dev/shm/shmx.fuzzsrv-$pid"
  for path in /dev/shm/shmx.fuzz-* /dev/shm/shmx.fuzzsrv-*; do
    [[ -e $path ]] || continue
    other=${path##*-}
    [[ $other =~ ^[0-9]+$ ]] && ! kill -0 "$other" 2>/dev/null && rm -f "$path"
  done
  return 0
}

shmx_heading "fuzz: seeds alone"
"$fuzzer" -runs=0 -max_len=40000 tests/fuzz/corpus </dev/null &
pid=$!
if wait "$pid"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
cleanup_shm "$pid"

shmx_heading "fuzz: ${SECONDS_BUDGET}s run"
log="$BUILD_DIR/fuzz.log"
"$fuzzer" -max_total_time="$SECONDS_BUDGET" -max_len=40000 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$work" </dev/null >"$log" 2>&1 &
pid=$!
if wait "$pid"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "fuzz: the run failed; end of $log:" >&2
  tail -n 40 "$log" >&2
fi
cleanup_shm "$pid"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ) seconds: $SECONDS_BUDGET"
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1
  grep -E '^stat::' "$log"
} >"$BUILD_DIR/fuzz-stats.txt"
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
new_units=$(sed -n 's/^stat::new_units_added: *//p' "$log")
per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
coverage=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
echo "fuzz: ${executions:-0} executions in ${SECONDS_BUDGET}s (${per_second:-0}/s), ${new_units:-0} new inputs," \
  "coverage ${coverage:-?} edges; details in $BUILD_DIR/fuzz-stats.txt"
finish
