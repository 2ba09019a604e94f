// SPDX-License-Identifier: MIT
// map.cpp: Map, a named segment mapped into this process, on top of the platform layer.
#include "platform.h"

#include <chrono>
#include <cstdio>
#include <thread>

namespace shmx {
namespace {

constexpr int kCreateAttempts = 8;
// Writers reclaiming a dead writer's object serialise on this lock byte (past every reader byte),
// and only probe byte 0: taking byte 0 of a dead object would make it look alive to readers.
constexpr uint64_t kReclaimByte = 1 + kMaxReaders;

platform::ShmHandle handle_of(intptr_t handle, uint64_t identity) { return platform::ShmHandle{handle, identity}; }

// The pid a live writer wrote in its header, for the error message (0 if unreadable).
uint32_t writer_pid_of(const platform::ShmHandle& h) {
  auto size = platform::object_size(h);
  if (!size || *size < sizeof(GlobalHeader)) return 0;
  auto data = platform::map(h, sizeof(GlobalHeader));
  if (!data) return 0;
  uint32_t pid = 0;
  std::memcpy(&pid, *data + offsetof(GlobalHeader, writer_pid), sizeof pid);
  platform::unmap(*data, sizeof(GlobalHeader));
  return pid;
}

}  // namespace

Map::~Map() { close(); }

Map::Map(Map&& o) noexcept { *this = std::move(o); }

Map& Map::operator=(Map&& o) noexcept {
  if (this != &o) {
    close();
    name_ = std::move(o.name_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    handle_ = std::exchange(o.handle_, -1);
    identity_ = std::exchange(o.identity_, 0);
    creator_ = std::exchange(o.creator_, false);
  }
  return *this;
}

Result<Map> Map::create(const std::string& name, uint64_t size, uint32_t permissions) {
  if (Status s = validate_segment_name(name); !s) return s;
  if (permissions > 0777 || (permissions & 0600) != 0600)
  {
    char octal[16];
    std::snprintf(octal, sizeof octal, "%04o", permissions);
    return Status(Errc::InvalidArgument, std::string("permissions ") + octal +
                                             " must be at most 0777 and include owner read-write (0600)");
  }
  for (int attempt = 0; attempt < kCreateAttempts; ++attempt) {
    bool exists = false;
    auto created = platform::create_exclusive(name, permissions, exists);
    if (created) {
      platform::ShmHandle h = *created;
      // Between our create and our lock, another writer may have taken the object for a dead one's,
      // unlinked it and created its own: then ours is nameless and we start again.
      if (!platform::try_lock(h, 0) || platform::identity_of(name) != h.identity) {
        platform::close_handle(h);
        continue;
      }
      Map map;
      map.name_ = name;
      map.handle_ = h.handle;
      map.identity_ = h.identity;
      map.creator_ = true;
      if (Status s = platform::resize(h, size); !s) {
        map.unlink();
        return Status(s.code(), "segment '" + name + "': " + s.message());
      }
      auto data = platform::map(h, size);
      if (!data) {
        map.unlink();
        return Status(data.code(), "segment '" + name + "': " + data.status().message());
      }
      map.data_ = *data;
      map.size_ = size;
      return map;
    }
    if (!exists) return created.status();

    // The name is taken: by a live writer (refuse) or by one that died (reclaim).
    auto old = platform::open_existing(name);
    if (!old) {
      if (old.code() == Errc::NotFound) continue;  // unlinked meanwhile
      return Status(old.code(), "segment '" + name + "' exists and cannot be checked: " + old.status().message());
    }
    platform::ShmHandle h = *old;
    if (platform::is_locked_by_other(h, 0)) {
      const uint32_t pid = writer_pid_of(h);
      platform::close_handle(h);
      return Status(Errc::LiveWriter, "segment '" + name + "' already has a live writer" +
                                          (pid ? " (pid " + std::to_string(pid) + ")" : std::string()) +
                                          "; a second writer is refused");
    }
    // Its writer is gone. Holding the reclaim lock, remove the name if it still names this object;
    // if another writer is reclaiming it right now, let it finish and look again.
    if (platform::try_lock(h, kReclaimByte)) {
      platform::unlink_if(name, h.identity);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    platform::close_handle(h);
  }
  return Status(Errc::SystemError, "could not create segment '" + name + "' after " +
                                       std::to_string(kCreateAttempts) + " attempts (name contended)");
}

Result<Map> Map::open(const std::string& name) {
  if (Status s = validate_segment_name(name); !s) return s;
  auto opened = platform::open_existing(name);
  if (!opened) return opened.status();
  Map map;
  map.name_ = name;
  map.handle_ = opened->handle;
  map.identity_ = opened->identity;
  auto size = platform::object_size(*opened);
  if (!size) return size.status();
  if (*size < sizeof(GlobalHeader)) {
    // A writer between create and resize, or one that died there: the next writer reclaims it.
    if (map.writer_alive()) return Status(Errc::NotReady, "segment '" + name + "' is being created by its writer");
    return Status(Errc::WriterGone, "segment '" + name + "' is " + std::to_string(*size) +
                                        " bytes, left unfinished by a writer that died");
  }
  auto data = platform::map(*opened, *size);
  if (!data) return Status(data.code(), "segment '" + name + "': " + data.status().message());
  map.data_ = *data;
  map.size_ = *size;
  return map;
}

Status Map::restrict_writes_below(uint64_t offset) {
  if (offset % kPageSize != 0 || offset > size_)
    return Status(Errc::InvalidArgument, "read-only boundary " + std::to_string(offset) + " is not a page inside the map");
  return platform::protect_read_only(data_, offset);
}

bool Map::writer_alive() const {
  return handle_ >= 0 && platform::is_locked_by_other(handle_of(handle_, identity_), 0);
}

Status Map::lock_reader(uint32_t index) {
  if (!platform::try_lock(handle_of(handle_, identity_), 1 + uint64_t{index}))
    return Status(Errc::SystemError, "the liveness lock of reader slot " + std::to_string(index) + " is taken");
  return Status::ok();
}

void Map::unlock_reader(uint32_t index) { platform::unlock(handle_of(handle_, identity_), 1 + uint64_t{index}); }

bool Map::reader_alive(uint32_t index) const {
  return platform::is_locked_by_other(handle_of(handle_, identity_), 1 + uint64_t{index});
}

bool Map::replaced() const { return platform::identity_of(name_) != identity_; }

void Map::unlink() {
  if (creator_ && !name_.empty()) platform::unlink_if(name_, identity_);
}

void Map::close() {
  platform::unmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  platform::ShmHandle h = handle_of(handle_, identity_);
  platform::close_handle(h);
  handle_ = -1;
}

std::vector<std::string> list_segments() { return platform::list_names(); }

}  // namespace shmx
