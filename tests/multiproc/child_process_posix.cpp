// SPDX-License-Identifier: MIT
// A child process running this test binary in a role (see child_process.h): fork/exec on Linux.
#include "child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <utility>

namespace shmx_test {

ChildProcess ChildProcess::spawn(const std::vector<std::string>& args) {
  ChildProcess child;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return child;
  std::vector<std::string> argv_storage;
  argv_storage.push_back("/proc/self/exe");
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(120);
    dup2(fds[1], STDOUT_FILENO);
    execv("/proc/self/exe", argv.data());
    _exit(121);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return child;
  }
  child.pid_ = pid;
  child.out_fd_ = fds[0];
  return child;
}

void ChildProcess::reset() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(static_cast<pid_t>(pid_), SIGKILL);
    int status = 0;
    while (waitpid(static_cast<pid_t>(pid_), &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (out_fd_ >= 0) close(static_cast<int>(out_fd_));
  pid_ = -1;
  out_fd_ = -1;
  exit_code_.reset();
}

ChildProcess::Chunk ChildProcess::read_chunk(std::chrono::steady_clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Chunk::Timeout;
    pollfd p{static_cast<int>(out_fd_), POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return Chunk::Timeout;
    char chunk[4096];
    const ssize_t n = read(static_cast<int>(out_fd_), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(static_cast<int>(out_fd_));
      out_fd_ = -1;
      return Chunk::Closed;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return Chunk::Data;
  }
}

void ChildProcess::kill9() {
  if (pid_ > 0 && !exit_code_) ::kill(static_cast<pid_t>(pid_), SIGKILL);
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(static_cast<pid_t>(pid_), &status, WNOHANG);
    if (r == static_cast<pid_t>(pid_)) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool ChildProcess::running() { return pid_ > 0 && !wait_exit(std::chrono::milliseconds(0)); }

}  // namespace shmx_test
