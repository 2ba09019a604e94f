#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""docs/tutorial.md, run as written: one writer, three consumers, a late one, a writer restart, a
consumer killed with SIGKILL, shmx-inspect all along, and the recording checked at the end.

The commands are read from the tutorial (each follows a `<!-- tutorial:NAME -->` marker), so the
document and the test cannot drift apart. Substitutions: the segment cam0 gets a name unique to the
run, `build/` becomes the build directory, `autovideosink` becomes `fakesink` (no display in CI) and
cam0.mp4 a temporary file.

Usage: test_tutorial.py TUTORIAL_MD BUILDDIR   (TAP on stdout; GST_PLUGIN_PATH must point at the plugin)
"""
import json
import os
import re
import shlex
import signal
import sys
import tempfile
import time

import shmxtest as t

TUTORIAL, BUILD = sys.argv[1], sys.argv[2]
SEGMENT = t.segment("cam0")
RECORDING = os.path.join(tempfile.mkdtemp(prefix="shmx-tutorial-"), "cam0.mp4")


def tutorial_commands():
    text = open(TUTORIAL, encoding="utf-8").read()
    commands = {}
    for name, body in re.findall(r"<!-- tutorial:([a-z]+) -->\s*```sh\n(.*?)```", text, re.S):
        command = t.sh_command(body)
        command = re.sub(r"\bsegment=cam0\b", f"segment={SEGMENT}", command)
        command = re.sub(r"(shmx-inspect(?: --json)?|appsink_consumer) cam0\b", rf"\1 {SEGMENT}", command)
        command = command.replace("location=cam0.mp4", f"location={RECORDING}")
        command = command.replace("autovideosink", "fakesink")
        args = shlex.split(command)
        if args[0].startswith("build/"):
            args[0] = os.path.join(BUILD, args[0][len("build/"):])
        commands[name] = args
    return commands


def readers(inspect_args):
    code, out = t.run(inspect_args, timeout=15)
    try:
        return {r["name"]: r for r in json.loads(out)["readers"]} if code == 0 else None
    except (ValueError, KeyError):
        return None


def frames_printed(proc):
    return len(re.findall(r"^frame \d+:", proc.output(), re.M))


def test_tutorial():
    c = tutorial_commands()
    wanted = ["writer", "viewer", "recorder", "app", "list", "show", "json", "late", "check"]
    if not t.check(all(k in c for k in wanted), "the tutorial has every step's command", f"found {sorted(c)}"):
        return
    writer = t.Proc(c["writer"], name="writer")
    if not t.check(t.wait_until(lambda: t.segment_exists(SEGMENT), 10), "section 2: the writer creates the segment",
                   writer.describe()):
        return
    viewer = t.Proc(c["viewer"], name="viewer")
    recorder = t.Proc(c["recorder"], name="recorder")
    app = t.Proc(c["app"], name="appsink_consumer")
    t.check(t.wait_until(lambda: frames_printed(app) >= 30, 15), "section 3: the application prints frames",
            app.describe())
    out = app.output()
    t.check("caps: video/x-raw, format=(string)I420, width=(int)640, height=(int)480" in out and
            re.search(r"publish->receive \d+ us capture->receive [0-9.]+ ms", out) is not None,
            "section 3: with the writer's caps and both latencies", app.describe())

    code, out = t.run(c["list"])
    line = next((l for l in out.splitlines() if l.startswith(SEGMENT + " ")), "")
    t.check(code == 0 and re.search(rf"{writer.pid} alive\s+stream0\s+3\s", line) is not None,
            "section 4: shmx-inspect lists the segment with its writer and three readers", out)
    code, out = t.run(c["show"])
    t.check(code == 0 and all(f"] {n}  pid" in out for n in ("viewer", "recorder", "appsink_consumer")) and
            "format=(string)I420" in out, "section 4: shmx-inspect cam0 shows the caps and the three readers", out)
    found = readers(c["json"])
    t.check(found is not None and set(found) == {"viewer", "recorder", "appsink_consumer"} and
            all(r["frames_behind"] <= 3 for r in found.values()),
            "section 4: --json lists the three readers, none behind", str(found))

    late = t.Proc(c["late"], name="late")
    started = time.monotonic()
    code = late.wait(10)
    out = late.output()
    t.check(code == 0 and "shmxsrc0.GstPad:src: caps = video/x-raw, format=(string)I420" in out and
            "Got EOS" in out and time.monotonic() - started < 5,
            "section 5: a late consumer gets the caps and the latest frame at once", late.describe())

    # Section 6: Ctrl-C at the writer; the consumers wait; the same command again; they go on.
    before = frames_printed(app)
    t.check(writer.stop(signal.SIGINT) == 0 and not t.segment_exists(SEGMENT),
            "section 6: Ctrl-C stops the writer and removes the segment", writer.describe())
    time.sleep(1.0)
    t.check(all(p.popen.poll() is None for p in (viewer, recorder, app)),
            "section 6: the three consumers keep running without a writer",
            "\n".join(p.describe() for p in (viewer, recorder, app)))
    writer2 = t.Proc(c["writer"], name="writer-2")
    t.check(t.wait_until(lambda: frames_printed(app) >= before + 30, 15),
            "section 6: after the restart the application's frames go on", app.describe())
    found = readers(c["json"]) or {}
    t.check(set(found) == {"viewer", "recorder", "appsink_consumer"},
            "section 6: all three consumers joined the new session by themselves", str(found))

    # Section 7: kill -9 the viewer; the writer reaps it; the others go on.
    viewer.kill(signal.SIGKILL)
    viewer.wait(5)
    reaped = t.wait_until(lambda: set(readers(c["json"]) or {"?"}) == {"recorder", "appsink_consumer"}, 5)
    t.check(reaped, "section 7: the killed viewer is reaped, the other two remain", str(readers(c["json"])))
    count = frames_printed(app)
    t.check(t.wait_until(lambda: frames_printed(app) >= count + 10, 10), "section 7: the application never noticed",
            app.describe())

    # Section 8: Ctrl-C the recorder (-e: EOS finishes the file), the file decodes, the rest stops.
    t.check(recorder.stop(signal.SIGINT, timeout=15) == 0 and os.path.getsize(RECORDING) > 10000,
            "section 8: Ctrl-C finishes the recording", recorder.describe())
    code, out = t.run(c["check"], timeout=60)
    t.check(code == 0 and "Got EOS" in out, "section 8: the recording decodes to the end", out)
    t.check(app.stop(signal.SIGINT) == 0, "section 8: the application stops on Ctrl-C", app.describe())
    t.check(writer2.stop(signal.SIGINT) == 0, "section 8: the writer stops on Ctrl-C", writer2.describe())
    t.check(not t.segment_exists(SEGMENT), "section 8: nothing is left in /dev/shm")
    try:
        os.unlink(RECORDING)
        os.rmdir(os.path.dirname(RECORDING))
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(t.main([test_tutorial]))
