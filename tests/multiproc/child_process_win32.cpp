// SPDX-License-Identifier: MIT
// A child process running this test binary in a role (see child_process.h): CreateProcess on Windows.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <thread>
#include <utility>

#include "child_process.h"

namespace shmx_test {
namespace {

HANDLE handle_of(intptr_t h) { return reinterpret_cast<HANDLE>(h); }

// Every child is put in this job, which kills them all when its last handle closes: when this
// process exits or dies.
HANDLE children_job() {
  static const HANDLE job = [] {
    HANDLE j = CreateJobObjectW(nullptr, nullptr);
    if (j) {
      JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits{};
      limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
      SetInformationJobObject(j, JobObjectExtendedLimitInformation, &limits, sizeof limits);
    }
    return j;
  }();
  return job;
}

// One argument quoted for CommandLineToArgvW / the C runtime's argv parsing.
std::wstring quoted(const std::string& arg) {
  std::wstring out = L"\"";
  size_t backslashes = 0;
  for (char c : arg) {
    if (c == '\\') {
      ++backslashes;
      continue;
    }
    out.append(c == '"' ? backslashes * 2 + 1 : backslashes, L'\\');
    backslashes = 0;
    out += static_cast<wchar_t>(static_cast<unsigned char>(c));
  }
  out.append(backslashes * 2, L'\\');
  return out + L"\"";
}

}  // namespace

ChildProcess ChildProcess::spawn(const std::vector<std::string>& args) {
  ChildProcess child;
  wchar_t exe[MAX_PATH];
  const DWORD exe_length = GetModuleFileNameW(nullptr, exe, MAX_PATH);
  if (exe_length == 0 || exe_length == MAX_PATH) return child;
  std::wstring command = L"\"" + std::wstring(exe) + L"\"";
  for (const std::string& a : args) command += L" " + quoted(a);

  SECURITY_ATTRIBUTES inherit{sizeof inherit, nullptr, TRUE};
  HANDLE read_end = nullptr, write_end = nullptr;
  // A child may print many lines before the test reads them (POSIX pipes hold 64 KiB; the default
  // here is much smaller and would block the child).
  constexpr DWORD kPipeBytes = 1 << 20;
  if (!CreatePipe(&read_end, &write_end, &inherit, kPipeBytes)) return child;
  SetHandleInformation(read_end, HANDLE_FLAG_INHERIT, 0);  // only the child's end is inherited
  STARTUPINFOW startup{};
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  startup.hStdOutput = write_end;
  startup.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  PROCESS_INFORMATION info{};
  const BOOL created = CreateProcessW(exe, command.data(), nullptr, nullptr, TRUE, CREATE_SUSPENDED, nullptr,
                                      nullptr, &startup, &info);
  CloseHandle(write_end);
  if (!created) {
    CloseHandle(read_end);
    return child;
  }
  // In the job before it runs a single instruction, so even a child that crashes at once is covered.
  if (HANDLE job = children_job()) AssignProcessToJobObject(job, info.hProcess);
  ResumeThread(info.hThread);
  CloseHandle(info.hThread);
  child.pid_ = info.dwProcessId;
  child.process_ = reinterpret_cast<intptr_t>(info.hProcess);
  child.out_fd_ = reinterpret_cast<intptr_t>(read_end);
  return child;
}

void ChildProcess::reset() {
  if (process_ != -1) {
    if (!exit_code_) {
      TerminateProcess(handle_of(process_), kKilledStatus);
      WaitForSingleObject(handle_of(process_), 10000);
    }
    CloseHandle(handle_of(process_));
  }
  if (out_fd_ != -1) CloseHandle(handle_of(out_fd_));
  pid_ = -1;
  out_fd_ = -1;
  process_ = -1;
  exit_code_.reset();
}

ChildProcess::Chunk ChildProcess::read_chunk(std::chrono::steady_clock::time_point deadline) {
  while (true) {
    // Anonymous pipes cannot be waited on: look at what is there, and sleep a little when it is empty.
    DWORD available = 0;
    if (!PeekNamedPipe(handle_of(out_fd_), nullptr, 0, nullptr, &available, nullptr)) {
      CloseHandle(handle_of(out_fd_));  // broken pipe: the child closed its end (exited)
      out_fd_ = -1;
      return Chunk::Closed;
    }
    if (available == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return Chunk::Timeout;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    char chunk[4096];
    DWORD n = 0;
    if (!ReadFile(handle_of(out_fd_), chunk, available < sizeof chunk ? available : sizeof chunk, &n,
                  nullptr))
      n = 0;
    buffer_.append(chunk, n);
    return Chunk::Data;
  }
}

void ChildProcess::kill9() {
  if (process_ != -1 && !exit_code_) TerminateProcess(handle_of(process_), kKilledStatus);
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  if (process_ == -1) return std::nullopt;
  if (WaitForSingleObject(handle_of(process_), static_cast<DWORD>(timeout.count())) != WAIT_OBJECT_0)
    return std::nullopt;
  DWORD code = 0;
  if (!GetExitCodeProcess(handle_of(process_), &code)) return std::nullopt;
  exit_code_ = static_cast<int>(code);
  return exit_code_;
}

bool ChildProcess::running() { return process_ != -1 && !wait_exit(std::chrono::milliseconds(0)); }

}  // namespace shmx_test
