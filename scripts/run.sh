#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh: installs what is missing, builds, and runs a two-process shmx demo (GStreamer, or the plain examples).
#
# Environment: SHMX_DEMO_SECONDS (default 5) how long frames flow; SHMX_JOBS (default 2) build jobs;
# SHMX_MESON_OPTIONS extra `meson setup` options for build/ (e.g. -Dplugin=disabled).
# Exit status: 0 when frames flowed, both processes stopped cleanly and nothing was left in /dev/shm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
source scripts/common.sh

DEMO_SECONDS="${SHMX_DEMO_SECONDS:-5}"
BUILD_DIR=build
LOG_DIR="$BUILD_DIR/demo-logs"
SEGMENT="demo-$$"
PIDS=()

# If the script is interrupted, stop whatever it started (by pid) and remove its segment.
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# Reports whether the demo left /dev/shm/shmx.$SEGMENT behind; returns 1 if it did.
check_shm_clean() {
  if [[ -e /dev/shm/shmx.$SEGMENT ]]; then
    echo "  /dev/shm:         shmx.$SEGMENT LEFT BEHIND (a clean stop must remove it)"
    rm -f "/dev/shm/shmx.$SEGMENT"
    return 1
  fi
  echo "  /dev/shm:         clean (no shmx.$SEGMENT left)"
}

# Process 1: videotestsrc -> shmxsink. Process 2: shmxsrc -> fakesink, with no caps given on that side.
demo_gstreamer() {
  export GST_PLUGIN_PATH="$PWD/$BUILD_DIR/plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  export GST_REGISTRY="$PWD/$BUILD_DIR/gst-registry.bin"  # private registry: never a stale cached plugin
  local writer=(gst-launch-1.0 -e -v videotestsrc is-live=true
    '!' video/x-raw,format=I420,width=640,height=480,framerate=30/1 '!' shmxsink "segment=$SEGMENT")
  local reader=(gst-launch-1.0 -e -v shmxsrc "segment=$SEGMENT" '!' fakesink silent=false)

  echo "writer (process 1): ${writer[*]}"
  echo "reader (process 2): ${reader[*]}"
  echo "(GST_PLUGIN_PATH=$GST_PLUGIN_PATH; full logs in $LOG_DIR/)"
  "${writer[@]}" >"$LOG_DIR/writer.log" 2>&1 &
  local writer_pid=$!
  PIDS+=("$writer_pid")
  sleep 1
  "${reader[@]}" >"$LOG_DIR/reader.log" 2>&1 &
  local reader_pid=$!
  PIDS+=("$reader_pid")
  echo "frames flowing for ${DEMO_SECONDS}s..."
  sleep "$DEMO_SECONDS"

  # Ctrl-C on the writer (-e turns it into EOS): the EOS crosses to the reader, whose pipeline ends by itself.
  local ok=0 writer_status=0 reader_status=0 reader_stopped_by="EOS from the writer"
  shmx_stop "$writer_pid" writer 10 || writer_status=$?
  local i
  for ((i = 0; i < 50; ++i)); do
    kill -0 "$reader_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$reader_pid" 2>/dev/null; then
    reader_stopped_by="SIGINT (it did not end on the writer's EOS within 5s)"
    shmx_stop "$reader_pid" reader 10 || reader_status=$?
  else
    wait "$reader_pid" || reader_status=$?
  fi
  PIDS=()

  local caps writer_caps frames sample
  # The pad's type name is part of the line (GstPad, GstShmxSinkPad...): not matched literally.
  caps=$(grep -m1 -o 'shmxsrc0\.[A-Za-z]*:src: caps = .*' "$LOG_DIR/reader.log" | sed 's/^.*caps = //' || true)
  writer_caps=$(grep -m1 -o 'shmxsink0\.[A-Za-z]*:sink: caps = .*' "$LOG_DIR/writer.log" | sed 's/^.*caps = //' || true)
  frames=$(grep -c 'last-message = chain' "$LOG_DIR/reader.log" || true)

  echo
  echo "Reader output (3 of its per-frame lines):"
  grep -o 'chain .*' "$LOG_DIR/reader.log" | sed -n '1p;2p;$p' | sed 's/ 0x[0-9a-f]*$//; s/^/  /' || true
  if grep -q 'ERROR' "$LOG_DIR/writer.log" "$LOG_DIR/reader.log"; then
    echo "Errors reported:"
    grep -h -A2 'ERROR' "$LOG_DIR/writer.log" "$LOG_DIR/reader.log" | head -20 | sed 's/^/  /'
    ok=1
  fi

  shmx_heading "Summary"
  echo "  caps (writer in):  ${writer_caps:-?}"
  echo "  caps (reader out): ${caps:-none seen}"
  if [[ -n $caps && $caps == "$writer_caps" ]]; then
    echo "  caps carried:      yes, identical, with no caps given on the reader side"
  else
    echo "  caps carried:      NO (they differ or are missing)"
    ok=1
  fi
  echo "  frames received:   $frames in about ${DEMO_SECONDS}s (30 fps source)"
  ((frames > 0)) || ok=1
  echo "  writer stopped:    exit status $writer_status"
  echo "  reader stopped:    by $reader_stopped_by, exit status $reader_status"
  ((writer_status == 0 && reader_status == 0)) || ok=1
  check_shm_clean || ok=1
  return "$ok"
}

# The plain-library examples: server_test publishes, client_test prints. The writer restarts half-way
# to show the reader reconnecting to the new session on its own.
demo_examples() {
  local server="$BUILD_DIR/examples/server_test" client="$BUILD_DIR/examples/client_test"
  local half
  half=$(((DEMO_SECONDS + 1) / 2))
  echo "writer (process 1): $server --segment $SEGMENT --fps 30   (restarted once after ${half}s)"
  echo "reader (process 2): $client --segment $SEGMENT --name demo-reader --duration $((DEMO_SECONDS + 2))"
  echo

  local ok=0 status=0
  "$client" --segment "$SEGMENT" --name demo-reader --duration $((DEMO_SECONDS + 2)) --print-every 30 \
    --stale 2 > >(tee "$LOG_DIR/client.log") 2>&1 &
  local client_pid=$!
  PIDS+=("$client_pid")
  sleep 0.5  # the reader starts first: it waits for the writer

  "$server" --segment "$SEGMENT" --fps 30 --duration "$half" > >(tee "$LOG_DIR/server1.log") 2>&1 &
  local server_pid=$!
  PIDS+=("$server_pid")
  shmx_wait_exit "$server_pid" "writer" $((half + 10)) || status=$?
  ((status == 0)) || ok=1
  sleep 0.5
  "$server" --segment "$SEGMENT" --fps 30 > >(tee "$LOG_DIR/server2.log") 2>&1 &
  server_pid=$!
  PIDS+=("$server_pid")

  status=0
  shmx_wait_exit "$client_pid" "reader" $((DEMO_SECONDS + 15)) || status=$?
  ((status == 0)) || ok=1
  local client_status=$status
  sleep 0.3  # let the writer log the reader's BYE before it stops
  status=0
  shmx_stop "$server_pid" "writer" 10 || status=$?
  ((status == 0)) || ok=1
  PIDS=()
  sleep 0.2  # let tee flush

  local received reconnects
  received=$(grep -o '[0-9]* frames received' "$LOG_DIR/client.log" | tail -1 | cut -d' ' -f1 || true)
  reconnects=$(grep -c 'reconnected to' "$LOG_DIR/client.log" || true)
  shmx_heading "Summary"
  echo "  frames received:  ${received:-0} in about $((DEMO_SECONDS + 2))s at 30 fps, across both writer sessions"
  echo "  reconnects:       $reconnects (the writer restarted once with a new session)"
  echo "  reader exit:      $client_status; writer stopped by SIGINT, exit $status"
  ((${received:-0} > 0)) || ok=1
  ((reconnects >= 1)) || ok=1
  check_shm_clean || ok=1
  return "$ok"
}

shmx_heading "[1/3] Dependencies (Debian packages)"
shmx_install_deps

shmx_heading "[2/3] Build ($BUILD_DIR/, meson + ninja -j$SHMX_JOBS)"
# shellcheck disable=SC2086  # a list of options
shmx_build "$BUILD_DIR" ${SHMX_MESON_OPTIONS:-}
mkdir -p "$LOG_DIR"

status=0
if [[ -f $BUILD_DIR/plugin/libgstshmx.so ]] &&
  GST_PLUGIN_PATH="$PWD/$BUILD_DIR/plugin" GST_REGISTRY="$PWD/$BUILD_DIR/gst-registry.bin" \
    gst-inspect-1.0 shmxsink >/dev/null 2>&1; then
  shmx_heading "[3/3] Demo: two gst-launch-1.0 processes sharing segment '$SEGMENT'"
  demo_gstreamer || status=$?
else
  shmx_heading "[3/3] Demo: two processes (examples/server_test and client_test) sharing segment '$SEGMENT'"
  echo "(the GStreamer plugin is not built yet: $BUILD_DIR/plugin/libgstshmx.so is missing or does not load)"
  demo_examples || status=$?
fi
echo
if ((status == 0)); then
  echo "demo OK"
else
  echo "demo FAILED (see $LOG_DIR/)"
fi
exit "$status"
