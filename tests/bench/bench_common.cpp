// SPDX-License-Identifier: MIT
// bench_common.cpp: clocks, CPU and memory probes, percentiles and result lines for shmx-bench.
#include "bench_common.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace bench {

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t process_cpu_ns() {
  // CLOCK_PROCESS_CPUTIME_ID is exact (scheduler runtime), unlike getrusage's tick-sampled split.
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t resident_kib() {
  FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return 0;
  unsigned long long size_pages = 0, resident_pages = 0;
  const int fields = std::fscanf(file, "%llu %llu", &size_pages, &resident_pages);
  std::fclose(file);
  if (fields != 2) return 0;
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

void sleep_until_ns(uint64_t deadline_ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(deadline_ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(deadline_ns % 1000000000ull);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

void RssSampler::start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (running_) return;
  running_ = true;
  samples_.push_back(resident_kib());
  thread_ = std::thread([this] { loop(); });
}

void RssSampler::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!running_) return;
    running_ = false;
    samples_.push_back(resident_kib());
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RssSampler::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (running_) {
    if (wake_.wait_for(lock, std::chrono::seconds(1), [this] { return !running_; })) break;
    samples_.push_back(resident_kib());
  }
}

std::string RssSampler::samples_text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string text;
  for (uint64_t sample : samples_) text += (text.empty() ? "" : ",") + std::to_string(sample);
  return text.empty() ? "-" : text;
}

Summary summarize(std::vector<uint64_t> samples) {
  Summary summary;
  summary.count = samples.size();
  if (samples.empty()) return summary;
  std::sort(samples.begin(), samples.end());
  auto rank = [&](double percentile) {
    // Nearest rank: the smallest sample with at least `percentile` of the samples at or below it.
    size_t index = static_cast<size_t>(std::ceil(percentile / 100.0 * static_cast<double>(samples.size())));
    index = std::clamp<size_t>(index, 1, samples.size()) - 1;
    return static_cast<double>(samples[index]);
  };
  summary.p50 = rank(50);
  summary.p90 = rank(90);
  summary.p99 = rank(99);
  summary.max = static_cast<double>(samples.back());
  double total = 0;
  for (uint64_t sample : samples) total += static_cast<double>(sample);
  summary.mean = total / static_cast<double>(samples.size());
  return summary;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

std::string Line::get(const std::string& key, const std::string& fallback) const {
  auto it = fields.find(key);
  return it == fields.end() ? fallback : it->second;
}

double Line::number(const std::string& key, double fallback) const {
  auto it = fields.find(key);
  if (it == fields.end()) return fallback;
  char* end = nullptr;
  const double value = std::strtod(it->second.c_str(), &end);
  return end == it->second.c_str() ? fallback : value;
}

Line parse_line(const std::string& text) {
  Line line;
  std::istringstream in(text);
  in >> line.keyword;
  std::string word;
  while (in >> word) {
    if (word.rfind("reason=", 0) == 0) {
      // Free text: the rest of the line.
      std::string rest;
      std::getline(in, rest);
      line.fields["reason"] = word.substr(7) + rest;
      break;
    }
    const size_t equals = word.find('=');
    if (equals == std::string::npos) {
      line.fields[word] = "";
    } else {
      line.fields[word.substr(0, equals)] = word.substr(equals + 1);
    }
  }
  return line;
}

std::string format_line(const Line& line) {
  std::string text = line.keyword;
  for (const auto& [key, value] : line.fields) text += " " + key + "=" + value;
  return text;
}

std::string field_text(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '=') c = '_';
  }
  return out.empty() ? "-" : out;
}

std::string reason_field(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return "reason=" + (out.empty() ? std::string("unknown") : out);
}

std::string format_number(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace bench
