#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""shmx-inspect against a live segment (text and JSON), a dead writer's segment and corrupt ones.

Usage: test_inspect.py SHMX_INSPECT SERVER_TEST CLIENT_TEST   (TAP on stdout)
"""
import json
import os
import signal
import struct
import sys
import time

import shmxtest as t

INSPECT, SERVER, CLIENT = sys.argv[1:4]


def inspect(*args, timeout=15):
    return t.run([INSPECT, *args], timeout=timeout)


def inspect_json(name):
    code, out = inspect("--json", name)
    try:
        return code, json.loads(out.strip().splitlines()[-1]), out
    except (ValueError, IndexError):
        return code, None, out


def test_usage():
    code, out = inspect("--help")
    t.check(code == 0 and "usage: shmx-inspect" in out, "--help prints the usage and exits 0", out)
    code, out = inspect("--bogus")
    t.check(code == 2 and "unknown option '--bogus'" in out, "an unknown option is named and exits 2", out)
    code, out = inspect("a", "b")
    t.check(code == 2 and "one segment at a time" in out, "two segment names are refused with exit 2", out)


def test_missing_segment():
    name = t.segment("missing")
    code, out = inspect(name)
    t.check(code == 1 and "no segment" in out.lower() and name in out, "a missing segment: exit 1, named, in words", out)
    code, doc, out = inspect_json(name)
    t.check(code == 1 and doc is not None and doc.get("error") == "not-found",
            "a missing segment in JSON: error 'not-found'", out)


def test_live_dead_and_listing():
    name = t.segment("live")
    server = t.Proc([SERVER, name, "--fps", "50"], name="server_test")
    if not t.check(server.wait_output("created", 10), "server_test creates the segment", server.describe()):
        return
    client = t.Proc([CLIENT, name, "--name", "inspected-reader", "--print-every", "1000"], name="client_test")
    if not t.check(client.wait_output("connected to", 10), "client_test connects", client.describe()):
        return
    time.sleep(0.5)  # a few frames and a heartbeat

    code, doc, out = inspect_json(name)
    if not t.check(code == 0 and doc is not None, "--json on a live segment exits 0 with one JSON document", out):
        return
    t.check(doc["segment"] == name and doc["layout_version"] == 1, "JSON: segment name and layout version 1", out)
    t.check(doc["writer_pid"] == server.pid and doc["writer_alive"] is True and doc["stale"] is False,
            "JSON: the writer's pid, alive, not stale", out)
    t.check([s["name"] for s in doc["streams"]] == ["tick", "sim_time"] and
            [s["type"] for s in doc["streams"]] == ["u64", "f64"] and
            all(s["layout"] for s in doc["streams"]),
            "JSON: both streams with their types and layouts, in order", out)
    t.check(20.0 <= doc["fps"] <= 80.0, f"JSON: measured frame rate near the writer's 50/s (got {doc['fps']})", out)
    t.check(doc["latest_frame_id"] > 0 and doc["latest_frame_age_ms"] < 1000,
            "JSON: a latest frame younger than a second", out)
    readers = doc["readers"]
    t.check(len(readers) == 1, "JSON: exactly one reader (inspecting registers none)", out)
    if readers:
        r = readers[0]
        t.check(r["name"] == "inspected-reader" and r["pid"] == client.pid and r["alive"] and not r["stale"],
                "JSON: the reader's name, pid, alive, not stale", out)
        t.check(r["frames_received"] > 0 and r["frames_behind"] <= 5 and r["heartbeat_age_ms"] < 2000,
                "JSON: the reader's progress: frames received, few behind, a recent heartbeat", out)
        t.check(r["control_ring_capacity"] >= 256 and 0 <= r["control_ring_used"] <= r["control_ring_capacity"],
                "JSON: the reader's control-ring fill within its capacity", out)

    code, out = inspect(name)
    t.check(code == 0 and f"segment {name}  layout version 1" in out and "writer pid %d alive" % server.pid in out,
            "text: header line with layout version, the writer alive", out)
    t.check("[0] tick" in out and "[1] sim_time" in out and "type: u64" in out and "layout: one little-endian" in out,
            "text: every stream with type and layout", out)
    t.check("inspected-reader  pid %d" % client.pid in out and "control ring" in out and "behind" in out,
            "text: the reader with pid, frames behind and control ring", out)

    code, out = inspect()
    line = next((l for l in out.splitlines() if l.startswith(name + " ")), "")
    t.check(code == 0 and f"{server.pid} alive" in line and "tick,sim_time" in line,
            "list: the segment with its writer alive and its streams", out)
    code, out = inspect("--json")
    try:
        listed = {d["segment"]: d for d in json.loads(out)}
    except ValueError:
        listed = {}
    t.check(name in listed and listed[name].get("writer_alive") is True, "list --json: the live segment", out)

    # Inspecting disturbed nothing: the reader is still the only one, still receiving.
    before = doc["readers"][0]["frames_received"] if doc["readers"] else 0
    time.sleep(0.3)
    code, doc2, out = inspect_json(name)
    t.check(code == 0 and len(doc2["readers"]) == 1 and doc2["readers"][0]["frames_received"] > before,
            "the reader kept receiving while being inspected", out)

    # --watch refreshes until SIGINT and stops at once.
    watch = t.Proc([INSPECT, "--watch", "0.2", name], name="inspect-watch")
    time.sleep(1.5)
    started = time.monotonic()
    code = watch.stop(signal.SIGINT, timeout=5)
    refreshes = watch.output().count(f"segment {name}  layout version")
    t.check(code == 0 and refreshes >= 2 and time.monotonic() - started < 2,
            f"--watch refreshed {refreshes} times and ended promptly on Ctrl-C", watch.describe())

    # The writer dies without closing: the segment is shown as stale, in words.
    server.kill(signal.SIGKILL)
    server.wait(5)
    code, out = inspect(name)
    t.check(code == 0 and f"writer pid {server.pid} GONE" in out and "stale" in out,
            "text: a dead writer's segment is shown as GONE / stale", out)
    code, doc, out = inspect_json(name)
    t.check(code == 0 and doc and doc["writer_alive"] is False and doc["stale"] is True,
            "JSON: writer_alive false, stale true", out)
    code, out = inspect()
    line = next((l for l in out.splitlines() if l.startswith(name + " ")), "")
    t.check(f"{server.pid} gone" in line and "stale" in out, "list: the dead writer's segment marked gone / stale",
            out)
    client.stop()


def write_segment_file(name, data):
    with open(f"/dev/shm/shmx.{name}", "wb") as f:
        f.write(data)


def test_corrupt_segments():
    name = t.segment("garbage")
    write_segment_file(name, os.urandom(64 * 1024))
    code, out = inspect(name)
    t.check(code == 1 and "corrupt" in out and "not a shmx segment" in out, "random bytes: exit 1, 'corrupt', why",
            out)
    code, doc, out = inspect_json(name)
    t.check(code == 1 and doc and doc["error"] == "not-shmx", "random bytes in JSON: error 'not-shmx'", out)

    empty = t.segment("empty")
    write_segment_file(empty, b"")
    code, out = inspect(empty)
    t.check(code == 1 and empty in out and "Traceback" not in out and len(out.strip()) > 0,
            "an empty file: exit 1 with a message naming it", out)

    # A real segment with one field broken: start a writer, copy its bytes, corrupt the slot count.
    live = t.segment("source")
    server = t.Proc([SERVER, live, "--fps", "100"], name="server_test")
    if not t.check(server.wait_output("created", 10), "server_test creates the source segment", server.describe()):
        return
    time.sleep(0.2)
    with open(f"/dev/shm/shmx.{live}", "rb") as f:
        image = bytearray(f.read())
    server.stop(signal.SIGINT)
    broken = t.segment("broken")
    struct.pack_into("<I", image, 72, 100000)  # GlobalHeader.slot_count (docs/layout.md section 3)
    write_segment_file(broken, bytes(image))
    code, out = inspect(broken)
    t.check(code == 1 and "corrupt" in out.lower() and "slot" in out.lower(),
            "a header with an impossible slot count: exit 1, 'corrupt', names the field", out)

    code, out = inspect()
    lines = {l.split()[0]: l for l in out.splitlines() if l.strip()}
    t.check(code == 0 and "corrupt" in lines.get(name, "") and "corrupt" in lines.get(broken, ""),
            "list: corrupt segments are listed with the word 'corrupt' and the rest still shown", out)


if __name__ == "__main__":
    sys.exit(t.main([test_usage, test_missing_segment, test_live_dead_and_listing, test_corrupt_segments]))
