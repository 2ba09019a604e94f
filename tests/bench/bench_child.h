// SPDX-License-Identifier: MIT
// bench_child.h: a role process started by the controller: this program re-executed with role
// arguments, its stdin and stdout as pipes, its stderr in a log file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

class Child {
 public:
  Child() = default;
  ~Child();  // kills (SIGKILL) and reaps the process if it is still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Runs /proc/self/exe with `args`; stderr goes to `log_path`. False with `error` set on failure.
  bool start(const std::vector<std::string>& args, const std::string& log_path, std::string& error);
  pid_t pid() const { return pid_; }
  // False once its stdout is closed and every line it printed was read.
  bool has_output() const { return stdout_fd_ >= 0 || pending_.find('\n') != std::string::npos; }

  // Writes one line to the child's stdin (false if it is gone).
  bool send(const std::string& line);
  void close_stdin();
  // Next line the child printed, waiting until CLOCK_MONOTONIC `deadline_ns`. False on timeout or
  // when the child closed its stdout (then exited() tells whether it has exited).
  bool read_line(std::string& line, uint64_t deadline_ns);
  // Waits for the child to exit until `deadline_ns`, then kills it. Returns its exit status, or -1
  // when it had to be killed or died of a signal.
  int wait(uint64_t deadline_ns);
  // The last lines of its stderr log (for error reports).
  std::string log_tail(size_t max_bytes = 2000) const;

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string pending_;  // stdout bytes after the last complete line
  std::string log_path_;
};

// Waits until one of `children` has a line or `deadline_ns` passes. Returns the index of a child with
// a line (and the line), or -1 on timeout or when none of them can print any more.
int read_any_line(const std::vector<Child*>& children, std::string& line, uint64_t deadline_ns);

}  // namespace bench
