#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The examples run for a few seconds each, in separate processes, and frames flow.

Usage: test_examples.py EXAMPLES_DIR   (TAP on stdout; the GStreamer apps need GST_PLUGIN_PATH set to
the plugin and are skipped when they were not built)
"""
import os
import re
import signal
import sys
import time

import shmxtest as t

EXAMPLES = sys.argv[1]
SERVER = os.path.join(EXAMPLES, "server_test")
CLIENT = os.path.join(EXAMPLES, "client_test")
PUBLISHER = os.path.join(EXAMPLES, "appsrc_publisher")
CONSUMER = os.path.join(EXAMPLES, "appsink_consumer")


def number(pattern, text):
    m = re.findall(pattern, text)
    return int(m[-1]) if m else -1


def test_server_and_client():
    name = t.segment("lib")
    # The reader first: it waits for the writer.
    client = t.Proc([CLIENT, "--segment", name, "--name", "example-reader", "--duration", "4", "--print-every", "10",
                     "--stale", "2"], name="client_test")
    time.sleep(0.3)
    server = t.Proc([SERVER, "--segment", name, "--fps", "50", "--duration", "1.5"], name="server_test")
    code = server.wait(10)
    t.check(code == 0, "server_test publishes for 1.5 s and exits 0", server.describe())
    t.check("reader connected: example-reader" in server.output(), "server_test logs the reader by name",
            server.describe())
    # The writer comes back with a new session; the reader follows without being restarted.
    server2 = t.Proc([SERVER, "--segment", name, "--fps", "50"], name="server_test-2")
    code = client.wait(15)
    out = client.output()
    received = number(r"(\d+) frames received", out)
    t.check(code == 0 and received >= 100,
            f"client_test received frames from both writer sessions ({received}, expected >= 100 at 50/s)",
            client.describe())
    t.check("reconnected to" in out, "client_test followed the writer's restart to the new session", client.describe())
    t.check(re.search(r"tick=\d+ sim_time=[0-9.]+s", out) is not None, "client_test decoded both streams",
            client.describe())
    t.check(server2.stop(signal.SIGINT) == 0 and not t.segment_exists(name),
            "server_test stops on Ctrl-C and removes its segment", server2.describe())


def test_gstreamer_apps():
    if not (os.path.exists(PUBLISHER) and os.path.exists(CONSUMER)):
        t.skip("appsrc_publisher and appsink_consumer", "not built (no GStreamer app library)")
        return
    name = t.segment("apps")
    publisher = t.Proc([PUBLISHER, name, "--frames", "150"], name="appsrc_publisher")
    if not t.check(publisher.wait_output("pushed", 10) or t.segment_exists(name), "appsrc_publisher starts publishing",
                   publisher.describe()):
        return
    consumer = t.Proc([CONSUMER, name, "--frames", "40"], name="appsink_consumer")
    code = consumer.wait(20)
    out = consumer.output()
    t.check(code == 0 and number(r"received (\d+) frames", out) == 40, "appsink_consumer received 40 frames",
            consumer.describe())
    t.check(re.search(r"^caps: video/x-raw, .*width=\(int\)\d+", out, re.M) is not None,
            "appsink_consumer got the writer's video caps without being told", consumer.describe())
    latencies = [int(v) for v in re.findall(r"publish->receive (\d+) us", out)]
    t.check(len(latencies) == 40 and all(0 <= v < 5_000_000 for v in latencies),
            "appsink_consumer printed a publish->receive latency for every frame", consumer.describe())
    t.check(len(re.findall(r"capture->receive [0-9.]+ ms", out)) >= 30,
            "appsink_consumer printed capture->receive latencies", consumer.describe())
    code = publisher.wait(20)
    t.check(code == 0 and "stopping after 150 frames" in publisher.output(), "appsrc_publisher pushed 150 frames",
            publisher.describe())
    t.check(not t.segment_exists(name), "the segment is gone once the publisher stopped")


if __name__ == "__main__":
    sys.exit(t.main([test_server_and_client, test_gstreamer_apps]))
