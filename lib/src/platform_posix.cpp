// SPDX-License-Identifier: MIT
// platform_posix.cpp: shm_open/mmap segments, OFD byte locks, futex wake-ups and clocks for Linux.
#include "platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

namespace shmx::platform {
namespace {

constexpr const char* kPrefix = "shmx.";

Status errno_status(const std::string& what, int err) {
  Errc code = Errc::SystemError;
  if (err == EACCES || err == EPERM) code = Errc::PermissionDenied;
  if (err == ENOENT) code = Errc::NotFound;
  return Status(code, what + ": " + std::strerror(err));
}

int fd_of(const ShmHandle& handle) { return static_cast<int>(handle.handle); }

uint64_t inode_of_fd(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

struct flock byte_lock(short type, uint64_t byte) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(byte);
  fl.l_len = 1;
  fl.l_pid = 0;  // required for OFD locks
  return fl;
}

}  // namespace

std::string os_name(const std::string& segment) { return "/" + std::string(kPrefix) + segment; }

Result<ShmHandle> create_exclusive(const std::string& segment, uint32_t permissions, bool& exists) {
  exists = false;
  const std::string name = os_name(segment);
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, permissions & 0777);
  if (fd < 0) {
    if (errno == EEXIST) {
      exists = true;
      return Status(Errc::LiveWriter, "segment '" + segment + "' exists");
    }
    return errno_status("cannot create segment '" + segment + "' (" + name + ")", errno);
  }
  // The umask must neither widen nor narrow what the caller asked for.
  if (fchmod(fd, permissions & 0777) != 0) {
    int err = errno;
    ::close(fd);
    shm_unlink(name.c_str());
    return errno_status("cannot set permissions of segment '" + segment + "'", err);
  }
  return ShmHandle{fd, inode_of_fd(fd)};
}

Result<ShmHandle> open_existing(const std::string& segment) {
  const std::string name = os_name(segment);
  int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == ENOENT) return Status(Errc::NotFound, "no segment '" + segment + "' (" + name + ")");
    return errno_status("cannot open segment '" + segment + "' (" + name + ")", errno);
  }
  return ShmHandle{fd, inode_of_fd(fd)};
}

void close_handle(ShmHandle& handle) {
  if (handle.handle >= 0) ::close(fd_of(handle));
  handle.handle = -1;
}

Status resize(const ShmHandle& handle, uint64_t size) {
  if (ftruncate(fd_of(handle), static_cast<off_t>(size)) != 0)
    return errno_status("cannot size segment to " + std::to_string(size) + " bytes", errno);
  return Status::ok();
}

Result<uint64_t> object_size(const ShmHandle& handle) {
  struct stat st {};
  if (fstat(fd_of(handle), &st) != 0) return errno_status("cannot stat segment", errno);
  return static_cast<uint64_t>(st.st_size);
}

uint64_t identity_of(const std::string& segment) {
  struct stat st {};
  const std::string path = "/dev/shm" + os_name(segment);
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

void unlink_if(const std::string& segment, uint64_t identity) {
  if (identity_of(segment) == identity) shm_unlink(os_name(segment).c_str());
}

std::vector<std::string> list_names() {
  std::vector<std::string> names;
  DIR* dir = opendir("/dev/shm");
  if (!dir) return names;
  const size_t prefix_len = std::strlen(kPrefix);
  while (struct dirent* entry = readdir(dir)) {
    if (std::strncmp(entry->d_name, kPrefix, prefix_len) == 0) names.emplace_back(entry->d_name + prefix_len);
  }
  closedir(dir);
  return names;
}

Result<uint8_t*> map(const ShmHandle& handle, uint64_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_of(handle), 0);
  if (p == MAP_FAILED) return errno_status("cannot map " + std::to_string(size) + " bytes", errno);
  return static_cast<uint8_t*>(p);
}

void unmap(uint8_t* data, uint64_t size) {
  if (data) munmap(data, size);
}

Status protect_read_only(uint8_t* data, uint64_t size) {
  if (size == 0) return Status::ok();
  if (mprotect(data, size, PROT_READ) != 0) return errno_status("cannot protect mapping", errno);
  return Status::ok();
}

bool try_lock(const ShmHandle& handle, uint64_t byte) {
  struct flock fl = byte_lock(F_WRLCK, byte);
  return fcntl(fd_of(handle), F_OFD_SETLK, &fl) == 0;
}

void unlock(const ShmHandle& handle, uint64_t byte) {
  struct flock fl = byte_lock(F_UNLCK, byte);
  fcntl(fd_of(handle), F_OFD_SETLK, &fl);
}

bool is_locked_by_other(const ShmHandle& handle, uint64_t byte) {
  // A write-lock probe conflicts with any lock held through another open file description.
  struct flock fl = byte_lock(F_WRLCK, byte);
  if (fcntl(fd_of(handle), F_OFD_GETLK, &fl) != 0) return true;  // cannot tell: assume alive
  return fl.l_type != F_UNLCK;
}

uint64_t realtime_ns() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t random64() {
  uint64_t value = 0;
  while (value == 0) {
    if (getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value))
      value = realtime_ns() ^ (static_cast<uint64_t>(getpid()) << 32);
  }
  return value;
}

uint32_t process_id() { return static_cast<uint32_t>(getpid()); }

}  // namespace shmx::platform

namespace shmx {

uint64_t monotonic_ns() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool futex_wait(const std::atomic<uint32_t>* word, uint32_t expected, uint64_t timeout_ns) {
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(timeout_ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(timeout_ns % 1000000000ull);
  // Shared (not FUTEX_PRIVATE) so that a commit in another process wakes us.
  long rc = syscall(SYS_futex, reinterpret_cast<const uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
  return !(rc != 0 && errno == ETIMEDOUT);
}

void futex_wake_all(const std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<const uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

}  // namespace shmx
