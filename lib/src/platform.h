// SPDX-License-Identifier: MIT
// platform.h: the small OS interface under Map and the wait/wake primitives. One implementation per OS:
// platform_posix.cpp (Linux) and platform_win32.cpp (Windows); meson picks the one for the host.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "shmx_common.h"

namespace shmx::platform {

// An open shared-memory object. `handle` is a file descriptor on POSIX and a pointer to the open
// object's state on Windows; -1 when closed.
struct ShmHandle {
  intptr_t handle = -1;
  uint64_t identity = 0;  // inode on POSIX, random id on Windows: whether a name still refers to this object
};

// The OS object name for a segment name ("cam0" -> "/shmx.cam0", or "Local\shmx.cam0" on Windows).
std::string os_name(const std::string& segment);

// Creates the object exclusively with exactly `permissions`. When the name is taken, sets `exists`
// and returns an error; other failures carry the OS reason.
Result<ShmHandle> create_exclusive(const std::string& segment, uint32_t permissions, bool& exists);
Result<ShmHandle> open_existing(const std::string& segment);
void close_handle(ShmHandle& handle);
Status resize(const ShmHandle& handle, uint64_t size);
Result<uint64_t> object_size(const ShmHandle& handle);
// Identity of whatever the name refers to now; 0 if nothing.
uint64_t identity_of(const std::string& segment);
// Removes the name if it still refers to the object `identity` (mappings stay valid).
void unlink_if(const std::string& segment, uint64_t identity);
std::vector<std::string> list_names();

Result<uint8_t*> map(const ShmHandle& handle, uint64_t size);
void unmap(uint8_t* data, uint64_t size);
Status protect_read_only(uint8_t* data, uint64_t size);

// Exclusive, process-lifetime locks on single bytes of the object, owned by this open of it and
// released by the kernel when the process dies (even on kill -9).
bool try_lock(const ShmHandle& handle, uint64_t byte);
void unlock(const ShmHandle& handle, uint64_t byte);
// Whether another open of the object holds a lock on `byte`.
bool is_locked_by_other(const ShmHandle& handle, uint64_t byte);

uint64_t realtime_ns();
uint64_t random64();
uint32_t process_id();

}  // namespace shmx::platform
