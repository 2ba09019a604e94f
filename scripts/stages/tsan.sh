#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tsan.sh: the stress suite (threads and processes) built and run under ThreadSanitizer, time-bounded.
# Ends with one line "STAGE tsan: N passed, N failed, N skipped"; exits non-zero on any failure.
#
# Usage: scripts/stages/tsan.sh [BUILDDIR]   (default: build-tsan, configured if needed)
# What runs (tests/stress, see docs/reliability.md): stress_threads for SHMX_TSAN_SECONDS (default 30)
# seconds: two committing threads, control and metadata updates, Copy and Hold readers, releases from
# another thread, interrupt()/clear_interrupt(), reopening readers, control senders, and two reader
# processes; then the crash loops (SHMX_TSAN_KILLS kills each, default 50), the 8-reader load test
# (10 s) and the corrupt-segment test (5 s), each process instrumented.
# Any TSan report fails the test that printed it (exitcode 66; children report to the controller
# through their exit status). No suppression file is used: docs/reliability.md says what the
# seqlock copies would need if TSan ever reported them, and why none is needed now.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/common.sh

BUILD_DIR="${1:-build-tsan}"
TEST_JOBS="${SHMX_TEST_JOBS:-2}"
passed=0 failed=0 skipped=0

finish() {
  echo "STAGE tsan: $passed passed, $failed failed, $skipped skipped"
  ((failed == 0))
  exit $?
}

shmx_heading "tsan: build $BUILD_DIR (stress programs only)"
want="-Db_sanitize=thread -Db_lundef=false -Dplugin=disabled -Dexamples=false -Dbenchmarks=false"
have=""
[[ -f $BUILD_DIR/.shmx-setup-options ]] && have=$(<"$BUILD_DIR/.shmx-setup-options")
if [[ ! -f $BUILD_DIR/build.ninja || $have != "$want" ]]; then
  rm -rf "$BUILD_DIR"
  # shellcheck disable=SC2086  # the options are words
  meson setup "$BUILD_DIR" $want || { failed=1; finish; }
  printf '%s' "$want" >"$BUILD_DIR/.shmx-setup-options"
fi
targets=(tests/stress/stress_threads tests/stress/crash_loop tests/stress/load tests/stress/corrupt_live)
if ! ninja -C "$BUILD_DIR" -j "$SHMX_JOBS" "${targets[@]}"; then
  echo "tsan: BUILD FAILED" >&2
  failed=1
  finish
fi

export TSAN_OPTIONS="halt_on_error=0:exitcode=66:second_deadlock_stack=1"
export SHMX_STRESS_SECONDS="${SHMX_TSAN_SECONDS:-30}"
export SHMX_CRASH_KILLS="${SHMX_TSAN_KILLS:-50}"
export SHMX_LOAD_SECONDS=10 SHMX_CORRUPT_SECONDS=5
rm -f "$BUILD_DIR/meson-logs/testlog.json" "$BUILD_DIR/meson-logs/testlog.junit.xml"
shmx_heading "tsan: meson test --suite stress (stress_threads ${SHMX_STRESS_SECONDS}s, ${SHMX_CRASH_KILLS} kills per crash loop)"
tests=(stress_threads load_one_writer_eight_readers corrupt_live_segment
  crash_loop_WriterKilledMidCommit crash_loop_WriterKilledMidMetadataUpdate
  crash_loop_ReaderKilledWhileHoldingSlots crash_loop_ReaderKilledMidControlMessage)
meson test -C "$BUILD_DIR" --no-rebuild --print-errorlogs --num-processes "$TEST_JOBS" --timeout-multiplier 4 \
  "${tests[@]}" </dev/null
echo "meson test exited with status $?"
counts=$(python3 scripts/count_meson_tests.py "$BUILD_DIR") || counts="0 1 0"
read -r passed failed skipped <<<"$counts"
grep -c "WARNING: ThreadSanitizer" "$BUILD_DIR/meson-logs/testlog.txt" 2>/dev/null |
  sed 's/^/tsan: ThreadSanitizer reports in the log: /'
finish
