// SPDX-License-Identifier: MIT
// bench_common.h: what every role of shmx-bench shares: the frame stamp, clocks, CPU and memory probes,
// latency summaries and the key=value lines the roles report with.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {

// The first bytes of every benchmark frame. The publisher writes it just before handing the frame
// to the transport; the receiver reads it as soon as the frame is in its hands. Only these bytes
// are written per frame (see docs/benchmarks.md: the benchmark measures the transport, not the
// cost of producing a frame).
struct FrameStamp {
  uint64_t publish_ns;  // CLOCK_MONOTONIC when the publisher handed the frame over
  uint64_t sequence;    // 1, 2, 3... per publisher run
  uint32_t phase;       // Phase
  uint32_t magic;       // kStampMagic: tells a benchmark frame from anything else
  int32_t cpu = -1;     // the CPU the publisher ran on when it stamped the frame (-1: unknown)
  uint32_t reserved = 0;
};
static_assert(sizeof(FrameStamp) == 32, "FrameStamp is 32 bytes");

inline constexpr uint32_t kStampMagic = 0x58424d53;  // "SMBX"

// What a frame belongs to. Receivers only measure kPhaseMeasure frames; the first kPhaseEnd frame
// closes their measurement window.
enum Phase : uint32_t {
  kPhaseWarmup = 0,
  kPhaseMeasure = 1,
  kPhaseEnd = 2,
};

// CLOCK_MONOTONIC in nanoseconds (the clock both sides of a latency measurement read).
uint64_t now_ns();
// CPU time of the whole process (all threads, user + system) in nanoseconds.
uint64_t process_cpu_ns();
// Resident set size of this process in KiB (from /proc/self/statm), 0 if unknown.
uint64_t resident_kib();
// Sleeps until the absolute CLOCK_MONOTONIC time `deadline_ns`.
void sleep_until_ns(uint64_t deadline_ns);

// Samples resident_kib() once a second from a thread of its own while started.
class RssSampler {
 public:
  RssSampler() = default;
  ~RssSampler() { stop(); }
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;

  void start();
  void stop();  // takes a last sample; idempotent
  // "kib,kib,..." in sampling order ("-" when none).
  std::string samples_text() const;

 private:
  void loop();
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool running_ = false;           // protected by mutex_
  std::vector<uint64_t> samples_;  // protected by mutex_
  std::thread thread_;
};

// Percentiles of a set of samples (nanoseconds), nearest-rank.
struct Summary {
  size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
Summary summarize(std::vector<uint64_t> samples);
double median(std::vector<double> values);

// A result line: "KEYWORD k=v k=v ...". Values contain no spaces, except `reason`, which is always
// last and runs to the end of the line (free text).
struct Line {
  std::string keyword;
  std::map<std::string, std::string> fields;

  bool has(const std::string& key) const { return fields.count(key) != 0; }
  std::string get(const std::string& key, const std::string& fallback = "") const;
  double number(const std::string& key, double fallback = 0) const;
};
Line parse_line(const std::string& text);
std::string format_line(const Line& line);
// Replaces the characters a line field cannot hold (spaces, '=') so that free text fits in a value.
std::string field_text(const std::string& text);
// "reason=<text>" for the end of a line (newlines flattened).
std::string reason_field(const std::string& text);

// Formats a number with `digits` significant digits at most, without an exponent for ordinary values.
std::string format_number(double value, int decimals);

}  // namespace bench
