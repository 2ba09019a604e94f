#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# asan.sh: every test suite (unit, multiproc, stress, gst) built and run under AddressSanitizer + UBSan.
# Ends with one line "STAGE asan: N passed, N failed, N skipped"; exits non-zero on any failure.
#
# Usage: scripts/stages/asan.sh [BUILDDIR]   (default: build-asan, configured if needed)
# Build: gcc, -Db_sanitize=address,undefined -Db_lundef=false, benchmarks and examples off (not tests).
# Sanitizer settings (see docs/reliability.md):
#   UBSan: any report is fatal (halt_on_error=1), so undefined behaviour fails the test that hit it.
#   ASan: leak detection on for the library suites. For the gst suite leak detection is off: GLib and
#     GStreamer keep one-off allocations (type system, registry, thread pools) alive until exit, and
#     a suppression broad enough to hide them (libglib/libgobject/libgstreamer frames) would also hide
#     every element allocation, which all pass through g_object_new; gst-check's own leak checks
#     (refcounts, the leaks tracer where the tests use it) cover the element there. Memory errors
#     (overflow, use-after-free) stay fatal in every suite.
#   GST_REGISTRY_FORK=no: the plugin is scanned in the (instrumented) test process, not by
#     gst-plugin-scanner, which is not built with ASan and could not load an instrumented plugin.
# Counting: per test case by scripts/count_meson_tests.py, for each of the two meson test runs.
# Environment: SHMX_JOBS (build jobs, default 2), SHMX_TEST_JOBS (default 2),
# SHMX_TIMEOUT_MULTIPLIER (default 3: sanitized code is slower).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/common.sh

BUILD_DIR="${1:-build-asan}"
TEST_JOBS="${SHMX_TEST_JOBS:-2}"
MULTIPLIER="${SHMX_TIMEOUT_MULTIPLIER:-3}"
passed=0 failed=0 skipped=0

finish() {
  echo "STAGE asan: $passed passed, $failed failed, $skipped skipped"
  ((failed == 0))
  exit $?
}

shmx_heading "asan: build $BUILD_DIR"
if ! shmx_build "$BUILD_DIR" -Db_sanitize=address,undefined -Db_lundef=false -Dbenchmarks=false -Dexamples=false; then
  echo "asan: BUILD FAILED" >&2
  failed=1
  finish
fi

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export GST_REGISTRY_FORK=no

# run_suites LEAKS [meson test selection...]: one meson test run, counted into the totals.
run_suites() {
  local leaks=$1
  shift
  export ASAN_OPTIONS="detect_leaks=$leaks:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0"
  rm -f "$BUILD_DIR/meson-logs/testlog.json" "$BUILD_DIR/meson-logs/testlog.junit.xml"
  shmx_heading "asan: meson test $* (detect_leaks=$leaks)"
  meson test -C "$BUILD_DIR" --print-errorlogs --num-processes "$TEST_JOBS" --timeout-multiplier "$MULTIPLIER" "$@" \
    </dev/null
  echo "meson test exited with status $?"
  local counts p f s
  counts=$(python3 scripts/count_meson_tests.py "$BUILD_DIR") || counts="0 1 0"
  read -r p f s <<<"$counts"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  # Keep each run's full log (the next run rewrites testlog.txt): testlog-leaks1.txt, testlog-leaks0.txt.
  cp "$BUILD_DIR/meson-logs/testlog.txt" "$BUILD_DIR/meson-logs/testlog-leaks$leaks.txt" 2>/dev/null || true
}

suites=$(meson test -C "$BUILD_DIR" --list --no-rebuild 2>/dev/null </dev/null | sed -n 's/^shmx:\([a-z]*\) .*/\1/p' | sort -u)
echo "asan: suites in this build: $(echo $suites)"
run_suites 1 --no-suite gst --no-suite bench
if grep -qx gst <<<"$suites"; then
  run_suites 0 --suite gst
else
  echo "asan: no gst suite in this build (plugin not built): element tests skipped"
fi
finish
