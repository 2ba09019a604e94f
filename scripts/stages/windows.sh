#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# windows.sh: the library cross-built for 64-bit Windows (mingw-w64) and its unit and multi-process
# suites run as Windows programs under Wine, plus the server_test/client_test pair exchanging frames in
# two Windows processes. Ends with one line "STAGE windows: N passed, N failed, N skipped".
#
# Usage: scripts/stages/windows.sh [BUILDDIR]   (default: build-windows, configured if needed)
# Packages: installs SHMX_WINDOWS_APT_PACKAGES (scripts/deps.sh) when missing.
# Build: meson with cross/x86_64-w64-mingw32.txt and -Dwerror=true (the cross build must be free of
#   warnings). The GStreamer plugin, stress, fuzz and bench suites are skipped by meson itself on a
#   Windows host; GoogleTest is built from /usr/src/googletest.
# Wine: a private prefix in BUILDDIR/wineprefix (created on first use, 5-10 s), one persistent
#   wineserver for the whole stage (each test then starts fast), stopped at the end. Wine's own
#   services are started before the tests with their output elsewhere, so that they do not hold
#   meson's output pipes open.
# Counting: per test case by scripts/count_meson_tests.py (gtest cases; skipped ones, e.g. the
#   chmod tests, count as skipped), plus one case for the server_test/client_test exchange.
# Environment: SHMX_JOBS (build jobs, default 2), SHMX_TEST_JOBS (default 2),
#   SHMX_TIMEOUT_MULTIPLIER (default 2: Wine starts processes slower than Linux).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/deps.sh
source scripts/common.sh

BUILD_DIR="${1:-build-windows}"
TEST_JOBS="${SHMX_TEST_JOBS:-2}"
MULTIPLIER="${SHMX_TIMEOUT_MULTIPLIER:-2}"
passed=0 failed=0 skipped=0

finish() {
  echo "STAGE windows: $passed passed, $failed failed, $skipped skipped"
  ((failed == 0))
  exit $?
}

shmx_heading "windows: packages"
if ! shmx_install_deps "${SHMX_WINDOWS_APT_PACKAGES[@]}"; then
  echo "windows: cannot install ${SHMX_WINDOWS_APT_PACKAGES[*]}" >&2
  failed=1
  finish
fi

shmx_heading "windows: cross build $BUILD_DIR"
if ! shmx_build "$BUILD_DIR" --cross-file cross/x86_64-w64-mingw32.txt -Dwerror=true; then
  echo "windows: BUILD FAILED" >&2
  failed=1
  finish
fi

shmx_heading "windows: Wine"
WINEPREFIX="$(realpath "$BUILD_DIR")/wineprefix"
export WINEPREFIX WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="  # no Mono/Gecko installer prompts
wine_log="$BUILD_DIR/meson-logs/wine-start.log"
stop_wine() { wineserver -k 2>/dev/null || true; }
trap stop_wine EXIT
start=$(date +%s)
wineserver -p
if ! timeout 120 wineboot -i </dev/null >"$wine_log" 2>&1 || ! timeout 60 wine cmd /c exit </dev/null >>"$wine_log" 2>&1; then
  tail -n 20 "$wine_log" >&2
  echo "windows: Wine does not start (log: $wine_log)" >&2
  failed=1
  finish
fi
echo "windows: Wine ready in $(($(date +%s) - start)) s (prefix $WINEPREFIX)"

shmx_heading "windows: meson test --suite unit --suite multiproc (under Wine)"
rm -f "$BUILD_DIR/meson-logs/testlog.json" "$BUILD_DIR/meson-logs/testlog.junit.xml"
# Per-test timeouts bound each test; the whole run is bounded too (a test cut off counts as failed).
timeout --kill-after=10 480 meson test -C "$BUILD_DIR" --print-errorlogs --num-processes "$TEST_JOBS" \
  --timeout-multiplier "$MULTIPLIER" --suite unit --suite multiproc </dev/null
echo "meson test exited with status $?"
counts=$(python3 scripts/count_meson_tests.py "$BUILD_DIR") || counts="0 1 0"
read -r p f s <<<"$counts"
passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))

# The examples as a user runs them: a writer and a reader, two Windows processes, one named mapping.
shmx_heading "windows: server_test.exe and client_test.exe"
segment="win-stage-$$"
server_log="$BUILD_DIR/meson-logs/server_test.log" client_log="$BUILD_DIR/meson-logs/client_test.log"
timeout 60 wine "$BUILD_DIR/examples/server_test.exe" --segment "$segment" --fps 100 --duration 4 \
  </dev/null >"$server_log" 2>&1 &
server_pid=$!
timeout 60 wine "$BUILD_DIR/examples/client_test.exe" --segment "$segment" --duration 2 --print-every 50 \
  </dev/null >"$client_log" 2>&1
client_status=$?
wait "$server_pid"
server_status=$?
frames=$(sed -n 's/.* \([0-9][0-9]*\) frames received.*/\1/p' "$client_log" | tail -n 1)
if ((server_status == 0 && client_status == 0)) && [[ -n $frames ]] && ((frames > 0)); then
  echo "windows: client_test.exe received $frames frames from server_test.exe"
  passed=$((passed + 1))
else
  echo "windows: server_test/client_test exchange FAILED (server exit $server_status, client exit" \
    "$client_status, frames '${frames:-none}')" >&2
  tail -n 20 "$server_log" "$client_log" >&2
  failed=$((failed + 1))
fi
finish
