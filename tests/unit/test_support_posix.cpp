// SPDX-License-Identifier: MIT
// test_support.h, the Linux side: a segment is the file /dev/shm/shmx.<name>.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "test_support.h"

namespace shmx_test {
namespace {

std::string segment_path(const std::string& name) { return "/dev/shm/shmx." + name; }

}  // namespace

uint32_t current_pid() { return static_cast<uint32_t>(getpid()); }

bool segment_exists(const std::string& name) {
  struct stat st {};
  return stat(segment_path(name).c_str(), &st) == 0;
}

int segment_mode(const std::string& name) {
  struct stat st {};
  if (stat(segment_path(name).c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

uint64_t segment_identity(const std::string& name) {
  struct stat st {};
  if (stat(segment_path(name).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

void remove_segment(const std::string& name) { shm_unlink(("/shmx." + name).c_str()); }

std::vector<std::string> leftover_segments() {
  std::vector<std::string> found;
  const std::string prefix = "shmx." + segment_prefix();
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return found;
  while (dirent* entry = readdir(dir)) {
    if (std::strncmp(entry->d_name, prefix.c_str(), prefix.size()) == 0)
      found.emplace_back(entry->d_name + 5);
  }
  closedir(dir);
  return found;
}

ForeignSegment::ForeignSegment(const std::string& name, const std::vector<uint8_t>& bytes) : cleanup_(name) {
  const int fd = shm_open(("/shmx." + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (fd < 0) return;
  handles_[0] = fd;
  EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes.size())), 0);
  if (!bytes.empty()) {
    EXPECT_EQ(pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 1;
  EXPECT_EQ(fcntl(fd, F_OFD_SETLK, &lock), 0) << std::strerror(errno);
}

ForeignSegment::~ForeignSegment() {
  if (handles_[0] >= 0) ::close(static_cast<int>(handles_[0]));
}

}  // namespace shmx_test
