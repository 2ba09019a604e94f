#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The network-bridge recipes of examples/recipes.md (the section "Beyond one machine"), run over loopback.

The four commands (SRT sender and receiver, RTP sender and receiver) are read from the recipe file
itself, so the documentation and the test cannot drift apart. Host names become 127.0.0.1; the ports
and the segment names cam0 / cam0-remote become ones unique to this run. A local writer publishes
cam0; a reader of cam0-remote must get decoded video frames through the bridge.

Usage: test_network.py RECIPES_MD   (TAP on stdout; needs GST_PLUGIN_PATH pointing at the plugin)
"""
import re
import shlex
import signal
import socket
import sys

import shmxtest as t

RECIPES = sys.argv[1]


def recipe_commands():
    """The gst-launch commands of the network section, in order, continuation lines joined, comments dropped."""
    text = open(RECIPES, encoding="utf-8").read()
    section = re.search(r"^## [0-9.]* *Beyond one machine.*?(?=^## |\Z)", text, re.S | re.M)
    if not section:
        return []
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section.group(0), re.S):
        command = t.sh_command(block)
        if command:
            commands.append(command)
    return commands


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def localize(command, cam, remote, srt_port, rtp_port):
    command = command.replace("sender.example", "127.0.0.1").replace("receiver.example", "127.0.0.1")
    command = command.replace("segment=cam0-remote", f"segment={remote}")
    command = re.sub(r"segment=cam0\b", f"segment={cam}", command)
    command = command.replace(":7001", f":{srt_port}").replace("port=5000", f"port={rtp_port}")
    return shlex.split(command)


def bridge(label, sender_cmd, receiver_cmd, receiver_first):
    cam, remote = t.segment(f"{label}-cam"), t.segment(f"{label}-remote")
    srt_port, rtp_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    writer = t.Proc(["gst-launch-1.0", "-e", "videotestsrc", "is-live=true", "!",
                     "video/x-raw,width=320,height=240,framerate=30/1", "!", "shmxsink", f"segment={cam}"],
                    name=f"{label}-writer")
    if not t.check(t.wait_until(lambda: t.segment_exists(cam), 10), f"{label}: the local writer publishes",
                   writer.describe()):
        return
    sender_args = localize(sender_cmd, cam, remote, srt_port, rtp_port)
    receiver_args = localize(receiver_cmd, cam, remote, srt_port, rtp_port)
    first, second = (receiver_args, sender_args) if receiver_first else (sender_args, receiver_args)
    procs = [t.Proc(first, name=f"{label}-1")]
    t.wait_until(lambda: False, 0.5)
    procs.append(t.Proc(second, name=f"{label}-2"))
    receiver = procs[0] if receiver_first else procs[1]
    got_remote = t.wait_until(lambda: t.segment_exists(remote), 20)
    if not t.check(got_remote, f"{label}: the far side republishes as a local segment",
                   "\n".join(p.describe() for p in procs)):
        return
    reader = t.Proc(["gst-launch-1.0", "-v", "shmxsrc", f"segment={remote}", "num-buffers=30", "!", "fakesink"],
                    name=f"{label}-reader")
    code = reader.wait(30)
    out = reader.output()
    t.check(code == 0 and "Got EOS" in out, f"{label}: a reader of the far side got 30 frames and EOS",
            reader.describe() + "\n" + receiver.describe())
    t.check(re.search(r"shmxsrc0\.GstPad:src: caps = video/x-raw, .*width=\(int\)320, height=\(int\)240", out)
            is not None, f"{label}: the frames are decoded 320x240 video, caps carried by the segment", out)
    for p in procs + [writer]:
        code = p.stop(signal.SIGINT, timeout=10)
        t.check(code == 0, f"{label}: {p.name} ends cleanly on Ctrl-C (EOS)", p.describe())
    t.check(not t.segment_exists(cam) and not t.segment_exists(remote), f"{label}: no segment left behind")


def test_srt_and_rtp():
    commands = recipe_commands()
    if not t.check(len(commands) == 4 and all(c.startswith("gst-launch-1.0") for c in commands),
                   "recipes.md's network section has the four bridge commands", "\n".join(commands)):
        return
    srt_sender, srt_receiver, rtp_sender, rtp_receiver = commands
    t.check("srtsink" in srt_sender and "srtsrc" in srt_receiver and "udpsink" in rtp_sender and
            "udpsrc" in rtp_receiver, "the commands are SRT sender/receiver then RTP sender/receiver",
            "\n".join(commands))
    bridge("srt", srt_sender, srt_receiver, receiver_first=False)  # the SRT listener is the sender
    bridge("rtp", rtp_sender, rtp_receiver, receiver_first=True)   # udpsrc first: no packet is lost


if __name__ == "__main__":
    sys.exit(t.main([test_srt_and_rtp]))
