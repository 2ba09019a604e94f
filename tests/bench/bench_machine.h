// SPDX-License-Identifier: MIT
// bench_machine.h: the machine's own limits, measured in the same run as the transports: memcpy
// bandwidth and the cross-process futex wake-up latency.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bench_common.h"

namespace bench {

struct MemcpyResult {
  size_t bytes = 0;         // size of one copy
  int runs = 0;             // copies timed
  double median_ns = 0;     // time of one copy (median of the runs)
  double gbytes_per_s = 0;  // bytes / median time (1 GB = 1e9 bytes)
};

// Copies `bytes` between two pre-faulted buffers `runs` times; the median time gives the bandwidth.
MemcpyResult measure_memcpy(size_t bytes, int runs);

// Where the two processes of the futex ping-pong run.
enum class FutexPlacement {
  Free,       // wherever the scheduler puts them
  OneCpu,     // both pinned to CPU 0: the woken process runs on the waker's CPU
  OtherCpus,  // pinned to CPUs 0 and 1: every wake-up reaches a CPU that has gone idle
};

struct FutexResult {
  uint64_t gap_ns = 0;  // pause of the waking process before each wake-up
  FutexPlacement placement = FutexPlacement::Free;
  bool measured = false;  // false: the placement needs more CPUs than the machine has
  Summary wake;           // wake-up latency: FUTEX_WAKE in one process -> running in the other
};

// Two processes (fork) over a MAP_SHARED|MAP_ANONYMOUS page: the parent sleeps `gap_ns`, stamps the
// time, bumps a word and FUTEX_WAKEs; the child, blocked in FUTEX_WAIT, stamps its wake-up and
// answers the same way (ping-pong), `rounds` times, placed as `placement` says. Call before any
// thread exists (fork).
FutexResult measure_futex_wakeup(uint64_t gap_ns, int rounds,
                                 FutexPlacement placement = FutexPlacement::Free);

}  // namespace bench
