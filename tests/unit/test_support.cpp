// SPDX-License-Identifier: MIT
// Helpers shared by the unit and multi-process suites (see test_support.h).
#include "test_support.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace shmx_test {

std::string segment_prefix() { return "test-" + std::to_string(getpid()) + "-"; }

std::string unique_segment_name(const std::string& tag) {
  static std::atomic<unsigned> counter{0};
  return segment_prefix() + std::to_string(counter.fetch_add(1)) + "-" + tag;
}

std::string segment_path(const std::string& name) { return "/dev/shm/shmx." + name; }

bool segment_exists(const std::string& name) {
  struct stat st {};
  return stat(segment_path(name).c_str(), &st) == 0;
}

int segment_mode(const std::string& name) {
  struct stat st {};
  if (stat(segment_path(name).c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

uint64_t segment_inode(const std::string& name) {
  struct stat st {};
  if (stat(segment_path(name).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

std::vector<std::string> leftover_segments() {
  std::vector<std::string> found;
  const std::string prefix = "shmx." + segment_prefix();
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return found;
  while (dirent* entry = readdir(dir)) {
    if (std::strncmp(entry->d_name, prefix.c_str(), prefix.size()) == 0) found.emplace_back(entry->d_name);
  }
  closedir(dir);
  return found;
}

SegmentCleanup::~SegmentCleanup() { shm_unlink(("/shmx." + name_).c_str()); }

void NoLeftoverSegments::TearDown() {
  const std::vector<std::string> left = leftover_segments();
  for (const std::string& entry : left) {
    ADD_FAILURE() << "segment left behind in /dev/shm: " << entry;
    shm_unlink(("/" + entry).c_str());
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
