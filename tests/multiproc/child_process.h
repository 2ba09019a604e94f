// SPDX-License-Identifier: MIT
// A child process running this test binary in a role, with a line-based stdout pipe and RAII SIGKILL.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace shmx_test {

class ChildProcess {
 public:
  ChildProcess() = default;
  // Re-executes /proc/self/exe with `args`; the child's stdout comes back through a pipe. The child
  // dies with the parent (PR_SET_PDEATHSIG), so a crashed test never leaves it running.
  static ChildProcess spawn(const std::vector<std::string>& args);
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool valid() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Next full line from the child's stdout, or nullopt at EOF or when `timeout` expires.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Reads lines until one starts with `prefix`; returns it (nullopt on timeout/EOF). Lines read on the
  // way are kept in transcript().
  std::optional<std::string> wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout);
  // Everything the child printed so far (for failure messages).
  const std::string& transcript() const { return transcript_; }

  void kill9();
  // Exit status (as from waitpid) once the child has exited, nullopt if it is still running at the
  // deadline. A signalled child gives 128 + signal.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();

 private:
  void reset();
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
  std::string transcript_;
  std::optional<int> exit_code_;
};

// Fields of a line "WORD a b c" split on spaces.
std::vector<std::string> split_words(const std::string& line);

}  // namespace shmx_test
