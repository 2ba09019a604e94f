// SPDX-License-Identifier: MIT
// A child process running this test binary in a role (see child_process.h): the parts common to every
// OS; spawning, reading and killing are in child_process_posix.cpp / child_process_win32.cpp.
#include "child_process.h"

#include <sstream>
#include <utility>

namespace shmx_test {

ChildProcess::~ChildProcess() { reset(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept { *this = std::move(other); }

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    out_fd_ = std::exchange(other.out_fd_, -1);
    process_ = std::exchange(other.process_, -1);
    buffer_ = std::move(other.buffer_);
    transcript_ = std::move(other.transcript_);
    exit_code_ = std::exchange(other.exit_code_, std::nullopt);
  }
  return *this;
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto nl = buffer_.find('\n');
    std::string line;
    if (nl != std::string::npos) {
      line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();  // Windows text output
    } else if (out_fd_ == -1) {
      return std::nullopt;
    } else {
      const Chunk chunk = read_chunk(deadline);
      if (chunk == Chunk::Data) continue;
      if (chunk == Chunk::Timeout || buffer_.empty()) return std::nullopt;
      line = std::move(buffer_);  // the child's last line, without its newline
      buffer_.clear();
    }
    transcript_ += line + "\n";
    return line;
  }
}

std::optional<std::string> ChildProcess::wait_for_line(const std::string& prefix,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto line = read_line(left);
    if (!line) return std::nullopt;
    if (line->compare(0, prefix.size(), prefix) == 0) return line;
  }
}

std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  std::string word;
  while (in >> word) words.push_back(word);
  return words;
}

}  // namespace shmx_test
