#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh: installs what is missing, builds, runs every test stage and ends with one line "N passed, N failed".
#
# The run is a list of stages (STAGES below). Each stage is one function that builds what it needs,
# runs its tests and calls `stage_result NAME PASSED FAILED SKIPPED` once. A stage whose build fails
# reports one failed case, so a broken build never reads as "0 failed".
#
# Counting: meson stages are counted per test case by scripts/count_meson_tests.py, from meson's
# meson-logs/testlog.junit.xml (gtest cases, TAP subtests) and testlog.json (overall results,
# gst-check summaries); see that file. Afterwards, any new /dev/shm/shmx.* left behind by the run
# counts as one more failure.
#
# Environment: SHMX_JOBS (default 2) build jobs; SHMX_TEST_JOBS (default 2) parallel meson tests;
# SHMX_TIMEOUT_MULTIPLIER (default 1) for meson's per-test timeouts; SHMX_STAGES (space-separated)
# runs only the named stages, e.g. SHMX_STAGES="default".
# Exit status: non-zero if anything failed or if no test ran at all. The last line printed is the count.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
source scripts/common.sh

TEST_JOBS="${SHMX_TEST_JOBS:-2}"
TIMEOUT_MULTIPLIER="${SHMX_TIMEOUT_MULTIPLIER:-1}"
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
CASES_RUN=0  # passed + failed in test stages (the /dev/shm check is not a test of its own)
SUMMARY=()

# stage_result NAME PASSED FAILED SKIPPED: adds a stage's counts to the totals.
stage_result() {
  local name=$1 passed=$2 failed=$3 skipped=$4
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
  [[ $name == shm-clean ]] || CASES_RUN=$((CASES_RUN + passed + failed))
  SUMMARY+=("$(printf '%-12s %5d passed, %3d failed, %3d skipped' "$name" "$passed" "$failed" "$skipped")")
  echo "stage $name: $passed passed, $failed failed, $skipped skipped"
}

# run_meson_stage NAME BUILDDIR [meson setup options...] [-- meson test options...]
# Builds BUILDDIR with the options and runs `meson test` there; a stage is usually this one call.
run_meson_stage() {
  local name=$1 dir=$2
  shift 2
  local setup_options=() test_options=()
  while (($#)) && [[ $1 != -- ]]; do
    setup_options+=("$1")
    shift
  done
  (($#)) && shift
  test_options=("$@")

  shmx_heading "stage $name: build $dir"
  if ! shmx_build "$dir" "${setup_options[@]}"; then
    echo "stage $name: BUILD FAILED" >&2
    stage_result "$name" 0 1 0
    return
  fi
  shmx_heading "stage $name: meson test -C $dir"
  rm -f "$dir/meson-logs/testlog.json" "$dir/meson-logs/testlog.junit.xml"
  meson test -C "$dir" --print-errorlogs --num-processes "$TEST_JOBS" \
    --timeout-multiplier "$TIMEOUT_MULTIPLIER" "${test_options[@]}" </dev/null
  echo "meson test exited with status $?; per test:"
  local counts
  counts=$(python3 scripts/count_meson_tests.py "$dir") || counts="0 1 0"
  # shellcheck disable=SC2086  # three numbers
  stage_result "$name" $counts
}

# ---------------------------------------------------------------------------------------------
# Stages. To add one: write `stage_NAME() { ...; stage_result NAME P F S; }` and list it here.
# ---------------------------------------------------------------------------------------------

# All meson suites (unit, multiproc, gst, stress...) in the normal debugoptimized build.
stage_default() {
  run_meson_stage default build
}

# run_stage_script NAME SCRIPT [ARGS...]: runs a stage script under scripts/stages/ and takes its
# counts from its last line "STAGE NAME: N passed, N failed[, N skipped]" (a missing line is a failure).
run_stage_script() {
  local name=$1 script=$2
  shift 2
  local log line passed=0 failed=0 skipped=0
  log=$(mktemp)
  bash "$script" "$@" </dev/null 2>&1 | tee "$log"
  line=$(grep -E "^STAGE $name: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
  rm -f "$log"
  if [[ -z $line ]]; then
    echo "stage $name: no count line from $script" >&2
    stage_result "$name" 0 1 0
    return
  fi
  passed=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
  failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  [[ $line == *skipped* ]] && skipped=$(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$line")
  stage_result "$name" "$passed" "$failed" "$skipped"
}

# Every suite again under AddressSanitizer + UBSan (scripts/stages/asan.sh says how).
stage_asan() { run_stage_script asan scripts/stages/asan.sh; }
# The time-bounded multi-thread / multi-process stress programs under ThreadSanitizer.
stage_tsan() { run_stage_script tsan scripts/stages/tsan.sh; }
# libFuzzer over hostile segments for a bounded time (SHMX_FUZZ_SECONDS, default 60).
stage_fuzz() { run_stage_script fuzz scripts/stages/fuzz.sh; }
# The benchmark program in its quick mode: every transport delivers frames (figures are not judged).
stage_bench() { run_stage_script bench-smoke scripts/stages/bench-smoke.sh; }
# The library cross-built for Windows (mingw-w64); unit and multiproc suites and the examples under Wine.
stage_windows() { run_stage_script windows scripts/stages/windows.sh; }

# README's first command, scripts/run.sh, as a newcomer runs it (its build/ is the default stage's):
# the two-process demo must end with "demo OK".
stage_demo() {
  shmx_heading "stage demo: scripts/run.sh"
  local log status=0
  log=$(mktemp)
  SHMX_DEMO_SECONDS=3 bash scripts/run.sh </dev/null 2>&1 | tee "$log" || status=$?
  if ((status == 0)) && grep -q '^demo OK' "$log"; then
    stage_result demo 1 0 0
  else
    echo "stage demo: scripts/run.sh exited $status without 'demo OK'" >&2
    stage_result demo 0 1 0
  fi
  rm -f "$log"
}

STAGES=(default demo asan tsan fuzz bench windows)

# Fails the run if it left new shmx segments in /dev/shm (ones present before the run are ignored).
check_shm_leftovers() {
  local -a left=() before=("$@")
  local name old found
  while IFS= read -r name; do
    found=0
    for old in "${before[@]}"; do [[ $old == "$name" ]] && found=1; done
    ((found)) || left+=("$name")
  done < <(shmx_list_shm)
  if ((${#left[@]})); then
    echo "left in /dev/shm by this run: ${left[*]}" >&2
    stage_result shm-clean 0 1 0
  else
    stage_result shm-clean 1 0 0
  fi
}

main() {
  shmx_heading "dependencies"
  if ! shmx_install_deps; then
    echo "0 passed, 1 failed"
    return 1
  fi
  local -a shm_before=()
  mapfile -t shm_before < <(shmx_list_shm)

  local stage selected=" ${SHMX_STAGES:-${STAGES[*]}} "
  for stage in "${STAGES[@]}"; do
    [[ $selected == *" $stage "* ]] || continue
    "stage_$stage"
  done
  check_shm_leftovers "${shm_before[@]}"

  shmx_heading "summary"
  printf '  %s\n' "${SUMMARY[@]}"
  if ((CASES_RUN == 0)); then
    echo "no test ran" >&2
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
  fi
  local line="$TOTAL_PASSED passed, $TOTAL_FAILED failed"
  ((TOTAL_SKIPPED)) && line+=", $TOTAL_SKIPPED skipped"
  echo
  echo "$line"
  ((TOTAL_FAILED == 0))
}

main
