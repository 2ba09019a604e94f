// SPDX-License-Identifier: MIT
// bench_roles.h: the two roles shmx-bench re-executes itself as (publisher, receiver), and the line
// protocol between them and the controller.
//
// Protocol (one process per role; the controller owns both ends of every pipe):
//   publisher -> controller (stdout): "READY endpoint=E" once it publishes warm-up frames;
//                                     "RESULT ..." after its measurement; "NA reason=R" or
//                                     "ERROR reason=R" instead when it cannot run.
//   controller -> publisher (stdin):  "GO" when every receiver is READY (warm-up at full mode, then
//                                     the measurement); "QUIT" or end of file to stop.
//   receiver -> controller (stdout):  "READY" at its first frame; "RESULT ..." once it saw the end of
//                                     the measurement (or was told to stop); "ERROR reason=R".
//   controller -> receiver (stdin):   "STOP" or end of file: report what was measured so far and exit.
#pragma once

#include <string>
#include <vector>

#include "bench_transport.h"

namespace bench {

struct RoleOptions {
  std::string role;       // "publish" or "receive"
  std::string transport;  // Transport::id
  std::string endpoint;   // segment name, socket path or TCP port
  FrameFormat format;
  double rate = 0;                   // frames/s; 0 = as fast as possible
  double warmup_s = 0.5;             // after GO, at the measured rate, before measuring
  double duration_s = 5;             // measurement
  std::string publisher = "appsrc";  // appsrc | pad: how the publisher feeds its pipeline
  std::string receive;               // hold | copy: shmxsrc receive mode; empty = the transport's
  std::string reader_name = "bench";
  bool sample_rss = false;  // sample the resident set once a second while measuring
};

// Parses "--key=value" / "--key value" arguments of a role. Returns false with `error` set.
bool parse_role_options(int argc, char** argv, RoleOptions& options, std::string& error);
// The arguments that make a child process run `options` (without the program name).
std::vector<std::string> role_arguments(const RoleOptions& options);

int run_publisher(const RoleOptions& options);
int run_receiver(const RoleOptions& options);

// Prints one protocol line on stdout and flushes it.
void emit(const std::string& line);

}  // namespace bench
