// SPDX-License-Identifier: MIT
// platform_win32.cpp: named file mappings, abandoned-mutex liveness locks, semaphore wake-ups and clocks
// for Windows. docs/design.md ("Windows") explains the objects; docs/layout.md lists their names.
#include "platform.h"

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
// After windows.h, which they need:
#include <bcrypt.h>
#include <winternl.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

// Native calls that the SDK headers do not declare (ntdll exports them; Wine implements them).
extern "C" {
struct ShmxMutantBasicInformation {
  LONG current_count;  // 1: free (or abandoned), <= 0: owned
  BOOLEAN owned_by_caller;
  BOOLEAN abandoned;
};
struct ShmxObjectDirectoryInformation {
  UNICODE_STRING name;
  UNICODE_STRING type_name;
};
NTSTATUS NTAPI NtQueryMutant(HANDLE mutant, int information_class, PVOID information, ULONG length,
                             PULONG return_length);
NTSTATUS NTAPI NtOpenDirectoryObject(PHANDLE directory, ACCESS_MASK access, POBJECT_ATTRIBUTES attributes);
NTSTATUS NTAPI NtQueryDirectoryObject(HANDLE directory, PVOID buffer, ULONG length, BOOLEAN single_entry,
                                      BOOLEAN restart_scan, PULONG context, PULONG return_length);
}

namespace shmx::platform {
namespace {

// Object names. Segment names are [A-Za-z0-9._-], so no segment's record can take the name of another
// segment's data, lock or wake object: those carry a prefix with '-' right after "shmx".
constexpr const wchar_t* kRecordPrefix = L"Local\\shmx.";
constexpr uint64_t kRecordSize = 4096;
constexpr ACCESS_MASK kMutantQueryState = 0x0001;  // MUTANT_QUERY_STATE
constexpr ACCESS_MASK kDirectoryQuery = 0x0001;    // DIRECTORY_QUERY
constexpr uint32_t kWakeBuckets = 16;
// Tokens a wake semaphore can queue. Tokens nobody takes (a waiter that was counted but did not sleep,
// or a reader killed inside a wait, whose count stays) only cause spurious wake-ups; the cap bounds
// how many a waiter can meet in a row. A release that would pass it fails, with tokens enough queued.
constexpr LONG kWakeTokensMax = 4096;

// The name record, a one-page mapping named after the segment: which object the name refers to now
// (0: none). Claimed by compare-and-swap, so creating a segment is exclusive across processes.
struct NameRecord {
  std::atomic<uint64_t> identity;
};

// Per-object waiter counts, one page named after the object: for each bucket of words (by offset) and
// each parity of the value waited on, how many threads are inside futex_wait.
struct WakePage {
  std::atomic<uint32_t> waiters[kWakeBuckets][2];
};

std::wstring widen(const std::string& s) { return std::wstring(s.begin(), s.end()); }  // ASCII names only

std::wstring hex(uint64_t value) {
  wchar_t buffer[17];
  for (int i = 15; i >= 0; --i, value >>= 4) buffer[i] = L"0123456789abcdef"[value & 15];
  buffer[16] = 0;
  return buffer;
}

std::wstring record_name(const std::string& segment) { return kRecordPrefix + widen(segment); }
std::wstring data_name(uint64_t identity) { return L"Local\\shmx-data." + hex(identity); }
std::wstring lock_name(uint64_t identity, uint64_t byte) {
  return L"Local\\shmx-lock." + hex(identity) + L"." + std::to_wstring(byte);
}
std::wstring wake_name(uint64_t identity) { return L"Local\\shmx-wake." + hex(identity); }
std::wstring wake_semaphore_name(uint64_t identity, uint32_t bucket, uint32_t parity) {
  return wake_name(identity) + L"." + std::to_wstring(bucket) + L"." + std::to_wstring(parity);
}

std::string error_text(DWORD err) {
  char* text = nullptr;
  const DWORD n = FormatMessageA(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
      err, 0, reinterpret_cast<char*>(&text), 0, nullptr);
  std::string message = n && text ? std::string(text, n) : "error " + std::to_string(err);
  if (text) LocalFree(text);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r' || message.back() == '.'))
    message.pop_back();
  return message + " (Windows error " + std::to_string(err) + ")";
}

Status win_status(const std::string& what, DWORD err) {
  Errc code = Errc::SystemError;
  if (err == ERROR_ACCESS_DENIED) code = Errc::PermissionDenied;
  if (err == ERROR_FILE_NOT_FOUND) code = Errc::NotFound;
  return Status(code, what + ": " + error_text(err));
}

// A mapped view of a whole small named mapping, closed with its handle.
template <typename T>
struct SmallMapping {
  HANDLE mapping = nullptr;
  T* view = nullptr;
  SmallMapping() = default;
  SmallMapping(const SmallMapping&) = delete;
  SmallMapping& operator=(const SmallMapping&) = delete;
  ~SmallMapping() {
    if (view) UnmapViewOfFile(view);
    if (mapping) CloseHandle(mapping);
  }
  // Creates the mapping (zero-filled) or opens it if it exists. Returns the Windows error or 0.
  DWORD create(const std::wstring& name, uint64_t size) {
    mapping = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, 0, static_cast<DWORD>(size),
                                 name.c_str());
    if (!mapping) return GetLastError();
    return map_view();
  }
  DWORD open(const std::wstring& name) {
    mapping = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, name.c_str());
    if (!mapping) return GetLastError();
    return map_view();
  }

 private:
  DWORD map_view() {
    view = static_cast<T*>(MapViewOfFile(mapping, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0));
    return view ? 0 : GetLastError();
  }
};

// What ShmHandle::handle points to: one open of a segment's object.
struct Object {
  std::string segment;
  uint64_t identity = 0;
  SmallMapping<NameRecord> record;  // keeps the name record alive while the object is open
  HANDLE data = nullptr;            // the segment's bytes; null until created (resize) or found
};

Object* object_of(const ShmHandle& handle) { return reinterpret_cast<Object*>(handle.handle); }

// Opens the data section of the object if this open does not have it yet. False if it does not exist
// (a writer between create and resize, or one that died there).
bool ensure_data(Object& object) {
  if (!object.data)
    object.data = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, data_name(object.identity).c_str());
  return object.data != nullptr;
}

// ---------------------------------------------------------------------------- liveness locks
// A lock byte is a named mutex per (object, byte): a process holding it dies, the kernel marks it
// abandoned and it is free again. A Windows mutex belongs to the thread that took it and is abandoned
// when that thread exits, but a shmx lock lasts as long as its open object in the process: so one
// keeper thread per process takes and releases every lock mutex, and never exits before the process.

DWORD WINAPI keeper_main(void*) {
  for (;;) SleepEx(INFINITE, TRUE);  // runs the queued requests (APCs)
}

struct KeeperRequest {
  std::function<void()> task;
  HANDLE done;
};

void NTAPI run_keeper_request(ULONG_PTR param) {
  auto* request = reinterpret_cast<KeeperRequest*>(param);
  request->task();
  SetEvent(request->done);
}

// Runs `task` on the keeper thread and waits for it. False if it could not run (the keeper is gone at
// process exit, or a resource ran out).
bool on_keeper(std::function<void()> task) {
  static const HANDLE keeper = CreateThread(nullptr, 0, keeper_main, nullptr, 0, nullptr);
  if (!keeper) return false;
  KeeperRequest request{std::move(task), CreateEventW(nullptr, TRUE, FALSE, nullptr)};
  if (!request.done) return false;
  bool ran = false;
  if (QueueUserAPC(run_keeper_request, keeper, reinterpret_cast<ULONG_PTR>(&request))) {
    const HANDLE handles[2] = {request.done, keeper};
    ran = WaitForMultipleObjects(2, handles, FALSE, INFINITE) == WAIT_OBJECT_0;
  }
  CloseHandle(request.done);
  return ran;
}

struct HeldLock {
  const Object* owner;
  HANDLE mutex;
};

// Locks this process holds, by (identity, byte). A second open in the same process must see them taken
// (as with POSIX open-file-description locks), which the mutexes alone would not show: the keeper
// thread owns them all, and a mutex is recursive for its owner.
struct HeldLocks {
  std::mutex mutex;
  std::map<std::pair<uint64_t, uint64_t>, HeldLock> locks;
};
// Never destroyed: a Server or Client in static storage may close after this file's statics are gone.
HeldLocks& held() {
  static auto* state = new HeldLocks;
  return *state;
}

void release_held(const HeldLock& lock) {
  const HANDLE mutex = lock.mutex;
  if (!on_keeper([mutex] { ReleaseMutex(mutex); })) return;  // process exit: the kernel releases it
  CloseHandle(mutex);
}

// ---------------------------------------------------------------------------- wake-ups
// futex_wait on a word inside a mapped segment waits on a named semaphore of that segment's object;
// the waker releases as many tokens as there are counted waiters. Words elsewhere (process-local) use
// WaitOnAddress. Waiters are counted per bucket and per parity of the value they wait on, so that a
// thread that starts waiting on the new value cannot take a token meant for one waiting on the old.

struct WakeState {
  uint64_t identity = 0;
  SmallMapping<WakePage> page;
  std::mutex mutex;
  HANDLE semaphores[kWakeBuckets][2] = {};

  ~WakeState() {
    for (auto& pair : semaphores)
      for (HANDLE h : pair)
        if (h) CloseHandle(h);
  }
  HANDLE semaphore(uint32_t bucket, uint32_t parity) {
    std::lock_guard<std::mutex> lock(mutex);
    HANDLE& h = semaphores[bucket][parity];
    if (!h)
      h = CreateSemaphoreW(nullptr, 0, kWakeTokensMax, wake_semaphore_name(identity, bucket, parity).c_str());
    return h;
  }
};

struct View {
  uint8_t* base;
  uint64_t size;
  std::shared_ptr<WakeState> wake;  // shared by every view of one object in this process
};

struct Views {
  std::mutex mutex;
  std::map<uint8_t*, View> by_base;
};
Views& mapped() {
  static auto* state = new Views;  // never destroyed, as held()
  return *state;
}

void register_view(uint8_t* base, uint64_t size, uint64_t identity) {
  std::lock_guard<std::mutex> lock(mapped().mutex);
  auto& views = mapped().by_base;
  std::shared_ptr<WakeState> wake;
  for (auto& entry : views)
    if (entry.second.wake->identity == identity) wake = entry.second.wake;
  if (!wake) {
    wake = std::make_shared<WakeState>();
    wake->identity = identity;
    if (wake->page.create(wake_name(identity), sizeof(WakePage)) != 0) wake->page.view = nullptr;
  }
  views[base] = View{base, size, std::move(wake)};
}

void unregister_view(uint8_t* base) {
  std::lock_guard<std::mutex> lock(mapped().mutex);
  auto& views = mapped().by_base;
  views.erase(base);
}

// The wake state and byte offset of a word inside a mapped segment; null for a process-local word.
std::shared_ptr<WakeState> wake_of(const void* word, uint64_t& offset) {
  auto* p = static_cast<uint8_t*>(const_cast<void*>(word));
  std::lock_guard<std::mutex> lock(mapped().mutex);
  auto& views = mapped().by_base;
  auto it = views.upper_bound(p);
  if (it == views.begin()) return nullptr;
  --it;
  if (p >= it->second.base + it->second.size || !it->second.wake->page.view) return nullptr;
  offset = static_cast<uint64_t>(p - it->second.base);
  return it->second.wake;
}

uint32_t bucket_of(uint64_t offset) {
  return static_cast<uint32_t>((offset / sizeof(uint32_t)) % kWakeBuckets);
}

DWORD timeout_ms(uint64_t timeout_ns) {
  const uint64_t ms = (timeout_ns + 999999) / 1000000;  // rounded up: never return before the timeout
  return ms >= INFINITE ? INFINITE - 1 : static_cast<DWORD>(ms);
}

}  // namespace

std::string os_name(const std::string& segment) { return "Local\\shmx." + segment; }

Result<ShmHandle> create_exclusive(const std::string& segment, uint32_t permissions, bool& exists) {
  // Permissions: the objects get the default security of the creating process (its user, SYSTEM and
  // administrators), which is what the POSIX default 0600 gives; other modes are not mapped to ACLs,
  // and the log handler is told so.
  if ((permissions & 0777) != 0600) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(permissions & 0777));
    shmx::log(LogLevel::Warning,
              "segment '" + segment + "': permissions " + mode +
                  " are not applied on Windows; its objects get the creating user's default security");
  }
  exists = false;
  auto object = std::make_unique<Object>();
  object->segment = segment;
  if (DWORD err = object->record.create(record_name(segment), kRecordSize))
    return win_status("cannot create segment '" + segment + "' (" + os_name(segment) + ")", err);
  uint64_t identity = random64();
  uint64_t expected = 0;
  if (!object->record.view->identity.compare_exchange_strong(expected, identity, std::memory_order_acq_rel)) {
    exists = true;
    return Status(Errc::LiveWriter, "segment '" + segment + "' exists");
  }
  object->identity = identity;
  return ShmHandle{reinterpret_cast<intptr_t>(object.release()), identity};
}

Result<ShmHandle> open_existing(const std::string& segment) {
  auto object = std::make_unique<Object>();
  object->segment = segment;
  if (DWORD err = object->record.open(record_name(segment))) {
    if (err == ERROR_FILE_NOT_FOUND)
      return Status(Errc::NotFound, "no segment '" + segment + "' (" + os_name(segment) + ")");
    return win_status("cannot open segment '" + segment + "' (" + os_name(segment) + ")", err);
  }
  object->identity = object->record.view->identity.load(std::memory_order_acquire);
  if (object->identity == 0)
    return Status(Errc::NotFound, "no segment '" + segment + "' (" + os_name(segment) + " names none)");
  ensure_data(*object);  // may not exist yet: object_size() then reports 0 bytes
  const uint64_t identity = object->identity;
  return ShmHandle{reinterpret_cast<intptr_t>(object.release()), identity};
}

void close_handle(ShmHandle& handle) {
  Object* object = object_of(handle);
  if (!object || handle.handle == -1) return;
  {
    // Closing an open releases its locks, as closing the descriptor does on POSIX.
    std::lock_guard<std::mutex> lock(held().mutex);
    auto& held_locks = held().locks;
    for (auto it = held_locks.begin(); it != held_locks.end();) {
      if (it->second.owner == object) {
        release_held(it->second);
        it = held_locks.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (object->data) CloseHandle(object->data);
  delete object;
  handle.handle = -1;
}

Status resize(const ShmHandle& handle, uint64_t size) {
  Object& object = *object_of(handle);
  if (object.data) return Status(Errc::InvalidArgument, "the size of a segment is fixed once it is created");
  HANDLE data =
      CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, static_cast<DWORD>(size >> 32),
                         static_cast<DWORD>(size & 0xffffffffu), data_name(object.identity).c_str());
  if (!data) return win_status("cannot size segment to " + std::to_string(size) + " bytes", GetLastError());
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    CloseHandle(data);
    return Status(Errc::SystemError, "the data object of segment '" + object.segment + "' exists already");
  }
  object.data = data;
  return Status::ok();
}

Result<uint64_t> object_size(const ShmHandle& handle) {
  Object& object = *object_of(handle);
  if (!ensure_data(object)) return uint64_t{0};
  // A section's size is fixed at creation; a view of all of it spans that many bytes, rounded up to
  // pages (shmx segments are whole pages).
  void* view = MapViewOfFile(object.data, FILE_MAP_READ, 0, 0, 0);
  if (!view)
    return win_status("cannot map segment '" + object.segment + "' to learn its size", GetLastError());
  MEMORY_BASIC_INFORMATION info{};
  const SIZE_T n = VirtualQuery(view, &info, sizeof info);
  const DWORD err = GetLastError();
  UnmapViewOfFile(view);
  if (n == 0) return win_status("cannot learn the size of segment '" + object.segment + "'", err);
  return static_cast<uint64_t>(info.RegionSize);
}

uint64_t identity_of(const std::string& segment) {
  SmallMapping<NameRecord> record;
  if (record.open(record_name(segment)) != 0) return 0;
  return record.view->identity.load(std::memory_order_acquire);
}

void unlink_if(const std::string& segment, uint64_t identity) {
  // A named object lives while a handle to it is open, so the name cannot be removed: the record is
  // cleared (if it still names this object) and the objects go with the last handle.
  SmallMapping<NameRecord> record;
  if (record.open(record_name(segment)) != 0) return;
  record.view->identity.compare_exchange_strong(identity, 0, std::memory_order_acq_rel);
}

std::vector<std::string> list_names() {
  // The name records of this session's named objects: \Sessions\<n>\BaseNamedObjects\shmx.<segment>.
  std::vector<std::string> names;
  DWORD session = 0;
  if (!ProcessIdToSessionId(GetCurrentProcessId(), &session)) return names;
  std::wstring path = L"\\Sessions\\" + std::to_wstring(session) + L"\\BaseNamedObjects";
  UNICODE_STRING upath;
  upath.Buffer = path.data();
  upath.Length = static_cast<USHORT>(path.size() * sizeof(wchar_t));
  upath.MaximumLength = upath.Length;
  OBJECT_ATTRIBUTES attributes;
  InitializeObjectAttributes(&attributes, &upath, 0, nullptr, nullptr);
  HANDLE directory = nullptr;
  if (NtOpenDirectoryObject(&directory, kDirectoryQuery, &attributes) < 0) return names;
  const std::wstring prefix = L"shmx.";
  alignas(8) unsigned char buffer[4096];
  ULONG context = 0, length = 0;
  bool restart = true;
  while (NtQueryDirectoryObject(directory, buffer, sizeof buffer, TRUE, restart, &context, &length) >= 0) {
    restart = false;
    const auto* entry = reinterpret_cast<const ShmxObjectDirectoryInformation*>(buffer);
    const std::wstring name(entry->name.Buffer, entry->name.Length / sizeof(wchar_t));
    const std::wstring type(entry->type_name.Buffer, entry->type_name.Length / sizeof(wchar_t));
    if (type != L"Section" || name.compare(0, prefix.size(), prefix) != 0) continue;
    std::string segment;
    for (wchar_t c : name.substr(prefix.size())) segment += static_cast<char>(c);
    if (identity_of(segment) != 0) names.push_back(segment);  // a cleared record names no segment
  }
  CloseHandle(directory);
  return names;
}

Result<uint8_t*> map(const ShmHandle& handle, uint64_t size) {
  Object& object = *object_of(handle);
  if (!ensure_data(object))
    return win_status("cannot map " + std::to_string(size) + " bytes", ERROR_FILE_NOT_FOUND);
  void* view = MapViewOfFile(object.data, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, static_cast<SIZE_T>(size));
  if (!view) return win_status("cannot map " + std::to_string(size) + " bytes", GetLastError());
  register_view(static_cast<uint8_t*>(view), size, object.identity);
  return static_cast<uint8_t*>(view);
}

void unmap(uint8_t* data, uint64_t /*size*/) {
  if (!data) return;
  unregister_view(data);
  UnmapViewOfFile(data);
}

Status protect_read_only(uint8_t* data, uint64_t size) {
  if (size == 0) return Status::ok();
  DWORD old = 0;
  if (!VirtualProtect(data, static_cast<SIZE_T>(size), PAGE_READONLY, &old))
    return win_status("cannot protect mapping", GetLastError());
  return Status::ok();
}

bool try_lock(const ShmHandle& handle, uint64_t byte) {
  const Object* object = object_of(handle);
  std::lock_guard<std::mutex> lock(held().mutex);
  auto& held_locks = held().locks;
  const auto key = std::make_pair(object->identity, byte);
  if (auto it = held_locks.find(key); it != held_locks.end()) return it->second.owner == object;
  const std::wstring name = lock_name(object->identity, byte);
  HANDLE mutex = nullptr;
  const bool ran = on_keeper([&] {
    HANDLE m = CreateMutexW(nullptr, FALSE, name.c_str());
    if (!m) return;
    const DWORD w = WaitForSingleObject(m, 0);
    if (w == WAIT_OBJECT_0 || w == WAIT_ABANDONED) {
      mutex = m;  // abandoned: its holder died, and the lock is ours now
    } else {
      CloseHandle(m);
    }
  });
  if (!ran || !mutex) return false;
  held_locks[key] = HeldLock{object, mutex};
  return true;
}

void unlock(const ShmHandle& handle, uint64_t byte) {
  const Object* object = object_of(handle);
  std::lock_guard<std::mutex> lock(held().mutex);
  auto& held_locks = held().locks;
  auto it = held_locks.find(std::make_pair(object->identity, byte));
  if (it == held_locks.end() || it->second.owner != object) return;
  release_held(it->second);
  held_locks.erase(it);
}

bool is_locked_by_other(const ShmHandle& handle, uint64_t byte) {
  const Object* object = object_of(handle);
  {
    std::lock_guard<std::mutex> lock(held().mutex);
    auto& held_locks = held().locks;
    auto it = held_locks.find(std::make_pair(object->identity, byte));
    if (it != held_locks.end()) return it->second.owner != object;
  }
  // Queried, not taken: a probe must never make a live holder's own try_lock fail.
  HANDLE mutex =
      OpenMutexW(SYNCHRONIZE | kMutantQueryState, FALSE, lock_name(object->identity, byte).c_str());
  if (!mutex) return GetLastError() != ERROR_FILE_NOT_FOUND;  // no such mutex: nobody holds it
  ShmxMutantBasicInformation info{};
  ULONG length = 0;
  const NTSTATUS status = NtQueryMutant(mutex, 0 /* MutantBasicInformation */, &info, sizeof info, &length);
  CloseHandle(mutex);
  if (status < 0) return true;  // cannot tell: assume alive
  return info.current_count <= 0;
}

uint64_t realtime_ns() {
  FILETIME ft;
  GetSystemTimePreciseAsFileTime(&ft);
  const uint64_t ticks = (uint64_t{ft.dwHighDateTime} << 32) | ft.dwLowDateTime;  // 100 ns since 1601
  constexpr uint64_t kUnixEpochTicks = 116444736000000000ull;
  return ticks < kUnixEpochTicks ? 0 : (ticks - kUnixEpochTicks) * 100;
}

uint64_t random64() {
  uint64_t value = 0;
  while (value == 0) {
    if (BCryptGenRandom(nullptr, reinterpret_cast<PUCHAR>(&value), sizeof value,
                        BCRYPT_USE_SYSTEM_PREFERRED_RNG) < 0)
      value = realtime_ns() ^ (uint64_t{GetCurrentProcessId()} << 32);
  }
  return value;
}

uint32_t process_id() { return static_cast<uint32_t>(GetCurrentProcessId()); }

}  // namespace shmx::platform

namespace shmx {

uint64_t monotonic_ns() {
  // QueryPerformanceCounter is one clock for every process of the machine, like CLOCK_MONOTONIC.
  static const uint64_t frequency = [] {
    LARGE_INTEGER f;
    QueryPerformanceFrequency(&f);
    return static_cast<uint64_t>(f.QuadPart);
  }();
  LARGE_INTEGER counter;
  QueryPerformanceCounter(&counter);
  const uint64_t c = static_cast<uint64_t>(counter.QuadPart);
  return c / frequency * 1000000000ull + c % frequency * 1000000000ull / frequency;
}

bool futex_wait(const std::atomic<uint32_t>* word, uint32_t expected, uint64_t timeout_ns) {
  uint64_t offset = 0;
  std::shared_ptr<platform::WakeState> wake = platform::wake_of(word, offset);
  const DWORD ms = platform::timeout_ms(timeout_ns);
  if (!wake) {
    if (WaitOnAddress(const_cast<std::atomic<uint32_t>*>(word), &expected, sizeof expected, ms)) return true;
    return GetLastError() != ERROR_TIMEOUT;
  }
  const uint32_t bucket = platform::bucket_of(offset), parity = expected & 1;
  std::atomic<uint32_t>& waiters = wake->page.view->waiters[bucket][parity];
  // Counted first, before anything slow (opening the semaphore is a kernel call), and before the word
  // is re-read (both seq_cst): a waker that changes the word after our read sees the count and releases
  // a token, which the semaphore keeps until we wait.
  waiters.fetch_add(1, std::memory_order_seq_cst);
  bool woken = true;
  const HANDLE semaphore = wake->semaphore(bucket, parity);
  if (!semaphore) {
    Sleep(ms < 1 ? ms : 1);  // no semaphore (out of handles): poll rather than miss the change
  } else if (word->load(std::memory_order_seq_cst) == expected) {
    woken = WaitForSingleObject(semaphore, ms) != WAIT_TIMEOUT;
  }
  waiters.fetch_sub(1, std::memory_order_seq_cst);
  return woken;
}

void futex_wake_all(const std::atomic<uint32_t>* word) {
  uint64_t offset = 0;
  std::shared_ptr<platform::WakeState> wake = platform::wake_of(word, offset);
  if (!wake) {
    WakeByAddressAll(const_cast<std::atomic<uint32_t>*>(word));
    return;
  }
  const uint32_t bucket = platform::bucket_of(offset);
  for (uint32_t parity = 0; parity < 2; ++parity) {
    const uint32_t count = wake->page.view->waiters[bucket][parity].load(std::memory_order_seq_cst);
    if (count == 0) continue;
    if (HANDLE semaphore = wake->semaphore(bucket, parity))
      ReleaseSemaphore(semaphore, static_cast<LONG>(std::min<uint32_t>(count, platform::kWakeTokensMax)),
                       nullptr);
  }
}

}  // namespace shmx
