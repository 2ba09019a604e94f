# SPDX-License-Identifier: MIT
# common.sh: helpers shared by scripts/run.sh and scripts/test.sh (headings, configure-and-build, process control).
# Sourced, not executed. Expects the current directory to be the repository root.

SHMX_JOBS="${SHMX_JOBS:-2}"  # the machines have 2 cores

shmx_heading() {
  printf '\n==> %s\n' "$*"
}

# shmx_build BUILDDIR [meson setup options...]
# Configures BUILDDIR once (again only when the options differ from the last setup; ninja itself re-runs
# meson when a meson.build changed), then builds what is out of date.
shmx_build() {
  local dir=$1
  shift
  local want="$*" have=""
  [[ -f $dir/.shmx-setup-options ]] && have=$(<"$dir/.shmx-setup-options")
  if [[ -f $dir/build.ninja && $have == "$want" ]]; then
    echo "build: $dir already configured${want:+ ($want)}"
  elif [[ -f $dir/build.ninja ]]; then
    echo "build: reconfiguring $dir: ${want:-default options}"
    meson setup --reconfigure "$dir" "$@" || return 1
  else
    rm -rf "$dir"  # a half-configured directory from an interrupted setup
    echo "build: configuring $dir${want:+ ($want)}"
    meson setup "$dir" "$@" || return 1
  fi
  printf '%s' "$want" >"$dir/.shmx-setup-options"
  ninja -C "$dir" -j "$SHMX_JOBS"
}

# shmx_stop PID NAME [SECONDS]: SIGINT, then wait up to SECONDS (default 10); SIGKILL if still running.
# Returns the process's exit status, or 124 when it had to be killed.
shmx_stop() {
  local pid=$1 name=$2 seconds=${3:-10} i
  kill -INT "$pid" 2>/dev/null || true
  shmx_wait_exit "$pid" "$name" "$seconds"
}

# shmx_wait_exit PID NAME SECONDS: waits for PID (a child of this shell) to exit; SIGKILL after SECONDS.
shmx_wait_exit() {
  local pid=$1 name=$2 seconds=$3 i
  for ((i = 0; i < seconds * 10; ++i)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      local status=0
      wait "$pid" || status=$?
      return "$status"
    fi
    sleep 0.1
  done
  echo "warning: $name (pid $pid) did not stop within ${seconds}s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 124
}

# Lists the shmx segments currently in /dev/shm (names as the OS sees them: shmx.<segment>).
shmx_list_shm() {
  local path
  for path in /dev/shm/shmx.*; do
    [[ -e $path ]] && basename "$path"
  done
  return 0
}
