// SPDX-License-Identifier: MIT
// Helpers shared by the unit and multi-process suites: unique segment names, cleanup, bounded polls.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace shmx_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// "test-<pid>-<counter>-<tag>": unique per process and call, so suites can run in parallel.
std::string unique_segment_name(const std::string& tag);
// "test-<pid>-": the prefix of every name unique_segment_name() hands out in this process.
std::string segment_prefix();
// This process's id (getpid, GetCurrentProcessId).
uint32_t current_pid();

// The OS side of a segment, seen without the library: test_support_posix.cpp looks at /dev/shm, and
// test_support_win32.cpp at the name record "Local\shmx.<name>" (docs/layout.md, "Windows").
// Whether the name refers to a segment.
bool segment_exists(const std::string& name);
// chmod bits of the segment file, or -1 if it does not exist (or on Windows, which has no modes).
int segment_mode(const std::string& name);
// What the name refers to now (the file's inode on Linux, the object's id on Windows), or 0.
uint64_t segment_identity(const std::string& name);
// Removes the name behind the library's back (shm_unlink; on Windows, clears the name record).
void remove_segment(const std::string& name);
// Segments named with this process's prefix still present.
std::vector<std::string> leftover_segments();

// Unlinks the segment at scope exit, whatever the test did (a failed test must not leave it behind).
class SegmentCleanup {
 public:
  explicit SegmentCleanup(std::string name) : name_(std::move(name)) {}
  ~SegmentCleanup();
  SegmentCleanup(const SegmentCleanup&) = delete;
  SegmentCleanup& operator=(const SegmentCleanup&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Fails the run if anything named with this process's prefix is left behind, then removes it.
class NoLeftoverSegments : public ::testing::Environment {
 public:
  void TearDown() override;
};

// A segment made behind the library's back, whose writer lock this process holds so that it looks
// alive: the name refers to an object of `bytes` (none at all for 0 bytes on Windows, where a
// mapping cannot be empty: the state of a writer between create and resize). For foreign and corrupt
// segment tests. On Linux a /dev/shm file with an OFD lock on byte 0; on Windows the name record, a
// data section and the writer's lock mutex (docs/layout.md, "Windows").
class ForeignSegment {
 public:
  ForeignSegment(const std::string& name, const std::vector<uint8_t>& bytes);
  ~ForeignSegment();
  ForeignSegment(const ForeignSegment&) = delete;
  ForeignSegment& operator=(const ForeignSegment&) = delete;

 private:
  SegmentCleanup cleanup_;
  intptr_t handles_[3] = {-1, -1, -1};  // a descriptor on Linux; HANDLEs on Windows
};

// Runs a callable at scope exit: joins helper threads when an ASSERT leaves a test early.
template <typename F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  F f_;
};

// Polls `predicate` until it is true or `timeout` expires; returns its last value.
template <typename Predicate>
bool poll_until(Predicate predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(2)) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (predicate()) return true;
    if (Clock::now() >= deadline) return predicate();
    std::this_thread::sleep_for(step);
  }
}

inline double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Frame payloads used across the suites: the bytes are a function of the frame id and the offset, so a
// torn or misplaced frame is detected byte by byte.
void fill_pattern(uint8_t* data, size_t size, uint64_t frame_id);
// Returns the offset of the first wrong byte, or size if all are right.
size_t check_pattern(const uint8_t* data, size_t size, uint64_t frame_id);

}  // namespace shmx_test
