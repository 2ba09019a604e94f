// SPDX-License-Identifier: MIT
// bench_child.cpp: starting, talking to and reaping the role processes.
#include "bench_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "bench_common.h"

namespace bench {

Child::~Child() {
  close_stdin();
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

bool Child::start(const std::vector<std::string>& args, const std::string& log_path, std::string& error) {
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    close(to_child[0]);
    close(to_child[1]);
    return false;
  }
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<std::string> argv_storage = {"shmx-bench"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1], log_fd}) {
      if (fd >= 0) close(fd);
    }
    return false;
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec: the controller has threads (GStreamer).
    dup2(to_child[0], STDIN_FILENO);
    dup2(from_child[1], STDOUT_FILENO);
    if (log_fd >= 0) dup2(log_fd, STDERR_FILENO);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  if (log_fd >= 0) close(log_fd);
  pid_ = pid;
  stdin_fd_ = to_child[1];
  stdout_fd_ = from_child[0];
  log_path_ = log_path;
  return true;
}

bool Child::send(const std::string& line) {
  if (stdin_fd_ < 0) return false;
  const std::string text = line + "\n";
  return write(stdin_fd_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

void Child::close_stdin() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  stdin_fd_ = -1;
}

bool Child::read_line(std::string& line, uint64_t deadline_ns) {
  for (;;) {
    const size_t newline = pending_.find('\n');
    if (newline != std::string::npos) {
      line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      return true;
    }
    if (stdout_fd_ < 0) return false;
    const uint64_t now = now_ns();
    if (now >= deadline_ns) return false;
    pollfd fd{stdout_fd_, POLLIN, 0};
    const int timeout_ms = static_cast<int>(std::min<uint64_t>((deadline_ns - now) / 1000000 + 1, 1000));
    if (poll(&fd, 1, timeout_ms) <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(stdout_fd_, buffer, sizeof buffer);
    if (n <= 0) {
      close(stdout_fd_);
      stdout_fd_ = -1;
      continue;
    }
    pending_.append(buffer, static_cast<size_t>(n));
  }
}

int Child::wait(uint64_t deadline_ns) {
  if (pid_ <= 0) return -1;
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) break;
    if (now_ns() >= deadline_ns) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    usleep(5000);
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Child::log_tail(size_t max_bytes) const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

int read_any_line(const std::vector<Child*>& children, std::string& line, uint64_t deadline_ns) {
  // Lines already buffered first; then poll each child briefly in turn. Children are few (<= 9) and
  // the lines rare, so a short slice per child costs nothing measurable.
  for (;;) {
    bool any_open = false;
    for (size_t i = 0; i < children.size(); ++i) {
      if (children[i]->read_line(line, 0)) return static_cast<int>(i);
    }
    for (size_t i = 0; i < children.size(); ++i) {
      if (!children[i]->has_output()) continue;
      any_open = true;
      if (children[i]->read_line(line, std::min(now_ns() + 2000000, deadline_ns))) return static_cast<int>(i);
    }
    if (!any_open || now_ns() >= deadline_ns) return -1;
  }
}

}  // namespace bench
