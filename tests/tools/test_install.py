#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`meson install` gives a usable library and plugin: run into a staging directory (DESTDIR), then a
program is compiled with `pkg-config --cflags --libs shmx` only, links, and exchanges a frame; the
installed plugin is found by gst-inspect-1.0 in GStreamer's plugin directory; shmx-inspect runs.

Usage: test_install.py BUILDDIR   (TAP on stdout)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import shmxtest as t

BUILD = sys.argv[1]

PROGRAM = r"""
#include <shmx_client.h>
#include <shmx_server.h>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  shmx::StreamInfo info;
  info.name = "value";
  info.type = "u32";
  auto server = shmx::Server::create(argv[1], shmx::ServerOptions{}, {info});
  if (!server) { std::printf("create: %s\n", server.status().to_string().c_str()); return 1; }
  shmx::Client client;
  if (shmx::Status s = client.open(argv[1], shmx::ClientOptions{}); !s) { std::printf("open: %s\n", s.to_string().c_str()); return 1; }
  const uint32_t value = 424242;
  auto id = server->publish({{0, &value, sizeof value}});
  if (!id) { std::printf("publish: %s\n", id.status().to_string().c_str()); return 1; }
  auto frame = client.read_latest();
  shmx::TlvView tlv;
  if (!frame || !frame->stream_data(0, tlv) || tlv.length != sizeof value) { std::printf("no frame\n"); return 1; }
  uint32_t got = 0;
  std::memcpy(&got, tlv.value, sizeof got);
  auto metadata = client.metadata();
  std::printf("read %u from stream '%s'\n", got, metadata ? metadata->streams.at(0).name.c_str() : "?");
  client.close();
  server->close();
  return got == value ? 0 : 1;
}
"""


def build_options():
    out = subprocess.run(["meson", "introspect", "--buildoptions", BUILD], capture_output=True, text=True, check=True)
    return {o["name"]: o["value"] for o in json.loads(out.stdout)}


def test_install():
    options = build_options()
    prefix, libdir = options["prefix"], options["libdir"]
    stage = tempfile.mkdtemp(prefix="shmx-install-")
    try:
        code, out = t.run(["meson", "install", "-C", BUILD, "--destdir", stage, "--no-rebuild"], timeout=120)
        if not t.check(code == 0, "meson install --destdir succeeds", out):
            return
        root = stage + prefix
        lib = os.path.join(root, libdir) if not os.path.isabs(libdir) else stage + libdir
        for path, what in [(os.path.join(root, "include/shmx/shmx_server.h"), "the public headers"),
                           (os.path.join(lib, "libshmx.so"), "the shared library"),
                           (os.path.join(lib, "pkgconfig/shmx.pc"), "the pkg-config file"),
                           (os.path.join(root, "bin/shmx-inspect"), "shmx-inspect")]:
            t.check(os.path.exists(path), f"installs {what} ({os.path.relpath(path, stage)})")

        env = {"PKG_CONFIG_PATH": os.path.join(lib, "pkgconfig"), "PKG_CONFIG_SYSROOT_DIR": stage}
        code, flags = t.run(["pkg-config", "--cflags", "--libs", "shmx"], env=env)
        t.check(code == 0 and "-lshmx" in flags and stage in flags, f"pkg-config --cflags --libs shmx: {flags.strip()}",
                flags)
        source = os.path.join(stage, "use_shmx.cpp")
        with open(source, "w", encoding="utf-8") as f:
            f.write(PROGRAM)
        program = os.path.join(stage, "use_shmx")
        cxx = os.environ.get("CXX", "c++")
        code, out = t.run([cxx, "-std=c++17", source, "-o", program, *flags.split()], timeout=120)
        if t.check(code == 0, "a program builds with only pkg-config's flags", out):
            code, out = t.run([program, t.segment("installed")], env={"LD_LIBRARY_PATH": lib})
            t.check(code == 0 and "read 424242 from stream 'value'" in out,
                    "it links against the installed library and exchanges a frame", out)

        code, out = t.run([os.path.join(root, "bin/shmx-inspect"), "--help"], env={"LD_LIBRARY_PATH": lib})
        t.check(code == 0 and "usage: shmx-inspect" in out, "the installed shmx-inspect runs", out)

        code, plugins_dir = t.run(["pkg-config", "--variable=pluginsdir", "gstreamer-1.0"])
        plugins_dir = plugins_dir.strip()
        if code != 0 or not plugins_dir:
            t.skip("the plugin installs into GStreamer's plugin directory", "GStreamer development files not found")
            return
        plugin = stage + os.path.join(plugins_dir, "libgstshmx.so")
        if not t.check(os.path.exists(plugin), f"the plugin installs into GStreamer's plugin directory ({plugins_dir})"):
            return
        # Only the staged plugin directory is searched (not the build tree, not the system's).
        gst_env = {"GST_PLUGIN_PATH_1_0": stage + plugins_dir, "GST_PLUGIN_PATH": "", "GST_PLUGIN_SYSTEM_PATH_1_0": "",
                   "GST_REGISTRY_1_0": os.path.join(stage, "registry.bin"), "LD_LIBRARY_PATH": lib}
        code, out = t.run(["gst-inspect-1.0", "shmxsink"], env=gst_env, timeout=60)
        t.check(code == 0 and plugin in out and "segment" in out, "gst-inspect-1.0 finds the installed shmxsink", out)
        code, out = t.run(["gst-inspect-1.0", "shmxsrc"], env=gst_env, timeout=60)
        t.check(code == 0 and plugin in out, "gst-inspect-1.0 finds the installed shmxsrc", out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(t.main([test_install]))
