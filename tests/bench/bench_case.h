// SPDX-License-Identifier: MIT
// bench_case.h: one measurement (a transport, a frame size, a rate, N readers) run as separate
// processes, and the figures derived from what they reported.
#pragma once

#include <string>
#include <vector>

#include "bench_common.h"
#include "bench_transport.h"

namespace bench {

enum class Section { Latency, Repeat, Throughput, Scale, Memory };

struct CaseSpec {
  Section section = Section::Latency;
  const Transport* transport = nullptr;
  FrameFormat format;
  double rate = 0;  // frames/s; 0 = as fast as possible
  double warmup_s = 0.5;
  double duration_s = 5;
  int readers = 1;
  int repeat = 0;  // index among repeats of the same case
  bool sample_rss = false;
  std::vector<std::string> receive_modes;  // per reader, cycling ("hold" / "copy"); empty = the transport's
  std::string publisher = "appsrc";        // appsrc | pad

  std::string name() const;  // "shmx 4 KiB @1000/s x1"
};

enum class CaseStatus { Ok, NotApplicable, Failed };

struct ReaderFigures {
  std::string receive_mode;
  uint64_t received = 0;
  double frames_per_s = 0;  // received / (first measured frame .. end marker)
  double delivered = 0;     // received / sent
  double cpu_per_frame_ns = 0;
  Summary latency;  // counts only; percentiles in ns
  // Where frames arrived: on the CPU the publisher stamped them on, or another one (which had to be
  // woken); p50 of each group in ns, -1 when the group is empty.
  uint64_t same_cpu = 0;
  double same_cpu_p50_ns = -1, other_cpu_p50_ns = -1;
  std::vector<uint64_t> rss_kib;
};

struct CaseResult {
  CaseSpec spec;
  CaseStatus status = CaseStatus::Failed;
  std::string reason;  // for NotApplicable / Failed

  uint64_t sent = 0;
  double sent_per_s = 0;
  double writer_cpu_per_frame_ns = 0;
  std::vector<uint64_t> writer_rss_kib;
  std::vector<ReaderFigures> readers;

  bool ok() const { return status == CaseStatus::Ok; }
};

// Where a case's logs, sockets and segment names come from.
struct CaseContext {
  std::string work_dir;  // logs and socket paths
  bool keep_logs = false;
  bool verbose = false;
};

CaseResult run_case(const CaseSpec& spec, const CaseContext& context);

}  // namespace bench
