# SPDX-License-Identifier: MIT
"""shmxtest: TAP output and process handling for the tests that drive shmx's programs from outside.

Each test script prints TAP (meson runs it with protocol 'tap', so every check counts on its own),
starts programs as separate processes with logs captured, gives every segment a name unique to the
run, waits with deadlines only, and on exit (normal, failure or exception) kills what it started and
removes the segments it named from /dev/shm.
"""
import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

_PREFIX = f"t{os.getpid()}"
_processes = []
_results = {"count": 0, "failed": 0}


def sh_command(block):
    """One shell command from a ```sh block of the docs: comment lines dropped, backslash continuations joined."""
    lines = [l for l in block.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines)).strip()


def segment(name):
    """A segment name unique to this run (the cleanup removes every /dev/shm/shmx.<prefix>*)."""
    return f"{_PREFIX}-{name}"


def check(ok, description, detail=""):
    """Prints one TAP result; the detail (why it failed) goes into TAP comments."""
    _results["count"] += 1
    if not ok:
        _results["failed"] += 1
    print(f"{'ok' if ok else 'not ok'} {_results['count']} - {description}", flush=True)
    if not ok and detail:
        for line in str(detail).rstrip().splitlines()[-40:]:
            print(f"# {line}", flush=True)
    return ok


def skip(description, reason):
    _results["count"] += 1
    print(f"ok {_results['count']} - {description} # SKIP {reason}", flush=True)


def note(text):
    for line in str(text).splitlines():
        print(f"# {line}", flush=True)


class Proc:
    """A program started in its own process group with stdout+stderr captured to a file."""

    def __init__(self, args, env=None, name=None):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        self.log = tempfile.NamedTemporaryFile(prefix=f"shmx-{self.name}-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=full_env,
                                      start_new_session=True)
        _processes.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def output(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_output(self, text, timeout):
        """True once `text` appears in the output, False at the deadline or if the process ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.popen.poll() is not None:
                return text in self.output()
            time.sleep(0.05)
        return False

    def wait(self, timeout):
        """The exit code, or None if still running at the deadline (then it is killed)."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            return None

    def kill(self, sig=signal.SIGKILL):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGINT, timeout=10):
        """Sends `sig` and waits; SIGKILL after the timeout. Returns the exit code (None if it had to be killed)."""
        self.kill(sig)
        return self.wait(timeout)

    def describe(self):
        return f"$ {' '.join(self.args)}\n{self.output()}"


def run(args, timeout=30, env=None):
    """Runs a program to completion: (exit code or None on timeout, output)."""
    p = Proc(args, env=env)
    code = p.wait(timeout)
    return code, p.output()


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def segment_exists(name):
    return os.path.exists(f"/dev/shm/shmx.{name}")


def _cleanup():
    for p in _processes:
        p.kill(signal.SIGKILL)
    for p in _processes:
        try:
            p.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.unlink(p.log.name)
        except OSError:
            pass
    for entry in os.listdir("/dev/shm"):
        if entry.startswith(f"shmx.{_PREFIX}-"):
            try:
                os.unlink(os.path.join("/dev/shm", entry))
            except OSError:
                pass


def main(test_functions):
    """Runs each test function in order; an exception is one failed check. Ends with the TAP plan."""
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # meson's timeout: still clean up
    for fn in test_functions:
        note(f"--- {fn.__name__}")
        try:
            fn()
        except Exception:  # noqa: BLE001 - reported as a failed check with its traceback
            check(False, f"{fn.__name__} raised", traceback.format_exc())
    print(f"1..{_results['count']}", flush=True)
    _cleanup()
    return 1 if _results["failed"] else 0
