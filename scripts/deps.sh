# SPDX-License-Identifier: MIT
# deps.sh: the lists of Debian packages shmx needs (all stages; the Windows stage), and the function that
# installs the missing ones.
# Sourced by scripts/run.sh, scripts/test.sh and scripts/stages/windows.sh (not executed directly).

# Debian 12 (bookworm) package names. Add a package here, and only here.
SHMX_APT_PACKAGES=(
  build-essential g++ pkg-config meson ninja-build python3  # toolchain and build system
  libgtest-dev libgmock-dev                                  # unit and multi-process tests
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev       # the plugin, the apps (gstreamer-app-1.0)
  gstreamer1.0-tools                                         # gst-launch-1.0, gst-inspect-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good        # videotestsrc, videoconvert, rtp, udp...
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly         # shmsink/shmsrc (benchmarks), srt, x264enc
  clang libclang-rt-14-dev                                   # fuzzing (libFuzzer) and sanitizer runtimes
  procps                                                     # pgrep/ps for the demo and tests
)
# The Windows stage (scripts/stages/windows.sh) only: the mingw-w64 cross toolchain (-posix g++ has
# std::thread) and Wine to run its executables; GoogleTest is built from googletest's sources.
SHMX_WINDOWS_APT_PACKAGES=(
  g++-mingw-w64-x86-64-posix mingw-w64-x86-64-dev wine wine64 googletest
)

# shmx_missing_packages [PACKAGE...]: prints the packages (default: SHMX_APT_PACKAGES) that are not
# installed, one per line.
shmx_missing_packages() {
  local package
  (($#)) || set -- "${SHMX_APT_PACKAGES[@]}"
  for package in "$@"; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || echo "$package"
  done
}

# shmx_install_deps [PACKAGE...]: installs what is missing of the packages (default: SHMX_APT_PACKAGES);
# does nothing (and needs no network) when everything is there.
shmx_install_deps() {
  (($#)) || set -- "${SHMX_APT_PACKAGES[@]}"
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: not a Debian-like system; install by hand: $*" >&2
    return 0
  fi
  local missing
  mapfile -t missing < <(shmx_missing_packages "$@")
  if ((${#missing[@]} == 0)); then
    echo "deps: all $# packages already installed"
    return 0
  fi
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "deps: missing ${missing[*]} and not root (no sudo): install them and rerun" >&2
      return 1
    fi
  fi
  local log="${TMPDIR:-/tmp}/shmx-apt.log"
  echo "deps: installing ${missing[*]} (apt-get log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    </dev/null >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "deps: apt-get failed (full log: $log)" >&2
    return 1
  fi
  mapfile -t missing < <(shmx_missing_packages "$@")
  if ((${#missing[@]} != 0)); then
    echo "deps: still missing after apt-get install: ${missing[*]}" >&2
    return 1
  fi
  echo "deps: done"
}
