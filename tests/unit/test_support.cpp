// SPDX-License-Identifier: MIT
// Helpers shared by the unit and multi-process suites (see test_support.h); the OS part is in
// test_support_posix.cpp / test_support_win32.cpp.
#include "test_support.h"

#include <atomic>
#include <cstring>

namespace shmx_test {

std::string segment_prefix() { return "test-" + std::to_string(current_pid()) + "-"; }

std::string unique_segment_name(const std::string& tag) {
  static std::atomic<unsigned> counter{0};
  return segment_prefix() + std::to_string(counter.fetch_add(1)) + "-" + tag;
}

SegmentCleanup::~SegmentCleanup() { remove_segment(name_); }

void NoLeftoverSegments::TearDown() {
  const std::vector<std::string> left = leftover_segments();
  for (const std::string& name : left) {
    ADD_FAILURE() << "segment left behind: " << name;
    remove_segment(name);
  }
}

namespace {
// Registered in every binary that links the support library.
[[maybe_unused]] ::testing::Environment* const leftover_check =
    ::testing::AddGlobalTestEnvironment(new NoLeftoverSegments);
}  // namespace

void fill_pattern(uint8_t* data, size_t size, uint64_t frame_id) {
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(frame_id * 131 + i * 7 + (i >> 8));
  if (size >= sizeof(frame_id)) std::memcpy(data, &frame_id, sizeof(frame_id));
}

size_t check_pattern(const uint8_t* data, size_t size, uint64_t frame_id) {
  size_t start = 0;
  if (size >= sizeof(frame_id)) {
    uint64_t stored = 0;
    std::memcpy(&stored, data, sizeof(stored));
    if (stored != frame_id) return 0;
    start = sizeof(frame_id);
  }
  for (size_t i = start; i < size; ++i) {
    if (data[i] != static_cast<uint8_t>(frame_id * 131 + i * 7 + (i >> 8))) return i;
  }
  return size;
}

}  // namespace shmx_test
