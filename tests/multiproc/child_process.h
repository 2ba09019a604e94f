// SPDX-License-Identifier: MIT
// A child process running this test binary in a role, with a line-based stdout pipe and RAII SIGKILL.
// One implementation per OS: child_process_posix.cpp (fork/exec) and child_process_win32.cpp
// (CreateProcess, TerminateProcess).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shmx_test {

class ChildProcess {
 public:
  ChildProcess() = default;
  // Exit status of a child killed by kill9(): 128 + SIGKILL as on Linux; on Windows kill9() passes it
  // to TerminateProcess.
  static constexpr int kKilledStatus = 128 + 9;

  // Re-executes this program with `args`; the child's stdout comes back through a pipe. The child
  // dies with the parent (PR_SET_PDEATHSIG; a kill-on-close job object on Windows), so a crashed test
  // never leaves it running.
  static ChildProcess spawn(const std::vector<std::string>& args);
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool valid() const { return pid_ > 0; }
  uint32_t pid() const { return static_cast<uint32_t>(pid_); }
  // Next full line from the child's stdout, or nullopt at EOF or when `timeout` expires.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Reads lines until one starts with `prefix`; returns it (nullopt on timeout/EOF). Lines read on the
  // way are kept in transcript().
  std::optional<std::string> wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout);
  // Everything the child printed so far (for failure messages).
  const std::string& transcript() const { return transcript_; }

  // Kills the child at once (SIGKILL; TerminateProcess on Windows): it gets no chance to clean up.
  void kill9();
  // Exit status (as from waitpid) once the child has exited, nullopt if it is still running at the
  // deadline. A signalled child gives 128 + signal.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();

 private:
  // What one read_chunk() call gave.
  enum class Chunk { Data, Timeout, Closed };
  // Appends what the child wrote to buffer_, waiting until `deadline` for something to arrive;
  // Closed (and the pipe closed, out_fd_ = -1) at EOF. Per OS.
  Chunk read_chunk(std::chrono::steady_clock::time_point deadline);
  void reset();
  int64_t pid_ = -1;
  intptr_t out_fd_ = -1;   // read end of the stdout pipe: a descriptor, or a HANDLE on Windows
  intptr_t process_ = -1;  // Windows: the process HANDLE
  std::string buffer_;
  std::string transcript_;
  std::optional<int> exit_code_;
};

// Fields of a line "WORD a b c" split on spaces.
std::vector<std::string> split_words(const std::string& line);

}  // namespace shmx_test
