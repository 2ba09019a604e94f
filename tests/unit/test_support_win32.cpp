// SPDX-License-Identifier: MIT
// test_support.h, the Windows side: a segment is named by its record, the file mapping
// "Local\shmx.<name>" whose first 8 bytes hold the id of the object it refers to (0: none).
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "shmx_common.h"
#include "test_support.h"

namespace shmx_test {
namespace {

// Runs `f` on the record's identity word; returns false if there is no record.
template <typename F>
bool with_record(const std::string& name, F f) {
  const std::wstring wide = L"Local\\shmx." + std::wstring(name.begin(), name.end());
  HANDLE mapping = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, wide.c_str());
  if (!mapping) return false;
  void* view = MapViewOfFile(mapping, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, sizeof(uint64_t));
  if (view) f(*static_cast<std::atomic<uint64_t>*>(view));
  if (view) UnmapViewOfFile(view);
  CloseHandle(mapping);
  return view != nullptr;
}

}  // namespace

uint32_t current_pid() { return static_cast<uint32_t>(GetCurrentProcessId()); }

bool segment_exists(const std::string& name) { return segment_identity(name) != 0; }

int segment_mode(const std::string&) { return -1; }

uint64_t segment_identity(const std::string& name) {
  uint64_t identity = 0;
  with_record(name, [&](std::atomic<uint64_t>& word) { identity = word.load(); });
  return identity;
}

void remove_segment(const std::string& name) {
  with_record(name, [](std::atomic<uint64_t>& word) { word.store(0); });
}

std::vector<std::string> leftover_segments() {
  // Named objects cannot outlive their processes on Windows; within this one, the library lists the
  // records that still name a segment.
  std::vector<std::string> found;
  const std::string prefix = segment_prefix();
  for (const std::string& name : shmx::list_segments())
    if (name.compare(0, prefix.size(), prefix) == 0) found.push_back(name);
  return found;
}

namespace {

void make_foreign(const std::string& name, const std::vector<uint8_t>& bytes, intptr_t (&handles)[3]) {
  // The record, claimed with an id of our own; the data section named after the id; the writer's lock
  // (byte 0) taken by this thread, which outlives the object.
  const std::wstring record_name = L"Local\\shmx." + std::wstring(name.begin(), name.end());
  HANDLE record =
      CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, 0, 4096, record_name.c_str());
  ASSERT_NE(record, nullptr) << "CreateFileMapping: error " << GetLastError();
  handles[0] = reinterpret_cast<intptr_t>(record);
  const uint64_t identity = (uint64_t{GetCurrentProcessId()} << 32) | (GetTickCount() | 1u);
  void* view = MapViewOfFile(record, FILE_MAP_WRITE, 0, 0, sizeof(uint64_t));
  ASSERT_NE(view, nullptr);
  uint64_t expected = 0;
  EXPECT_TRUE(static_cast<std::atomic<uint64_t>*>(view)->compare_exchange_strong(expected, identity));
  UnmapViewOfFile(view);
  wchar_t id[17];
  std::swprintf(id, 17, L"%016llx", static_cast<unsigned long long>(identity));
  if (!bytes.empty()) {
    const std::wstring data_name = L"Local\\shmx-data." + std::wstring(id);
    HANDLE data = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, 0,
                                     static_cast<DWORD>(bytes.size()), data_name.c_str());
    ASSERT_NE(data, nullptr) << "CreateFileMapping: error " << GetLastError();
    handles[1] = reinterpret_cast<intptr_t>(data);
    void* bytes_view = MapViewOfFile(data, FILE_MAP_WRITE, 0, 0, bytes.size());
    ASSERT_NE(bytes_view, nullptr);
    std::memcpy(bytes_view, bytes.data(), bytes.size());
    UnmapViewOfFile(bytes_view);
  }
  const std::wstring lock_name = L"Local\\shmx-lock." + std::wstring(id) + L".0";
  HANDLE lock = CreateMutexW(nullptr, TRUE, lock_name.c_str());
  ASSERT_NE(lock, nullptr) << "CreateMutex: error " << GetLastError();
  handles[2] = reinterpret_cast<intptr_t>(lock);
}

}  // namespace

ForeignSegment::ForeignSegment(const std::string& name, const std::vector<uint8_t>& bytes) : cleanup_(name) {
  make_foreign(name, bytes, handles_);
}

ForeignSegment::~ForeignSegment() {
  if (handles_[2] != -1) ReleaseMutex(reinterpret_cast<HANDLE>(handles_[2]));
  for (intptr_t h : handles_)
    if (h != -1) CloseHandle(reinterpret_cast<HANDLE>(h));
}

}  // namespace shmx_test
