// SPDX-License-Identifier: MIT
// bench_case.cpp: runs one case: publisher process, receiver processes, the GO/RESULT exchange,
// clean-up, and the figures derived from the RESULT lines.
#include "bench_case.h"

#include <gst/gst.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include "bench_child.h"
#include "bench_roles.h"

namespace bench {
namespace {

constexpr uint64_t kSecond = 1000000000ull;

std::vector<uint64_t> parse_list(const std::string& text) {
  std::vector<uint64_t> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty() && item != "-") values.push_back(std::strtoull(item.c_str(), nullptr, 10));
  }
  return values;
}

std::string first_line(const std::string& text) {
  const size_t newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

// The most useful line of a log: the last one that mentions an error, else the last one.
std::string log_summary(const std::string& log) {
  std::stringstream in(log);
  std::string line, last, last_error;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.find("rror") != std::string::npos || line.find("CRITICAL") != std::string::npos)
      last_error = line;
  }
  return last_error.empty() ? last : last_error;
}

class CaseRunner {
 public:
  CaseRunner(const CaseSpec& spec, const CaseContext& context) : spec_(spec), context_(context) {
    static int counter = 0;
    id_ = "shmx-bench-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
    result_.spec = spec;
  }

  CaseResult run() {
    if (!check_elements()) return result_;
    if (start_publisher() && start_receivers() && measure()) {
      result_.status = CaseStatus::Ok;
    }
    finish();
    return result_;
  }

 private:
  bool fail(const std::string& reason) {
    if (result_.reason.empty()) result_.reason = reason;
    result_.status = CaseStatus::Failed;
    return false;
  }

  bool check_elements() {
    for (const std::string& element : required_elements(*spec_.transport)) {
      GstElementFactory* factory = gst_element_factory_find(element.c_str());
      if (factory == nullptr) return fail("element " + element + " not found");
      gst_object_unref(factory);
    }
    return true;
  }

  RoleOptions role(const std::string& name) const {
    RoleOptions options;
    options.role = name;
    options.transport = spec_.transport->id;
    options.endpoint = endpoint_;
    options.format = spec_.format;
    options.rate = spec_.rate;
    options.warmup_s = spec_.warmup_s;
    options.duration_s = spec_.duration_s;
    options.publisher = spec_.publisher;
    options.sample_rss = spec_.sample_rss;
    return options;
  }

  std::string log_path(const std::string& who) const {
    return context_.work_dir + "/" + id_ + "-" + who + ".log";
  }

  bool start_publisher() {
    switch (spec_.transport->family) {
      case Family::Shmx:
      case Family::ShmxLib:
        endpoint_ = id_;
        break;
      case Family::Shm:
        endpoint_ = context_.work_dir + "/" + id_ + ".sock";
        break;
      case Family::Tcp:
        endpoint_ = "0";
        break;
    }
    std::string error;
    if (!publisher_.start(role_arguments(role("publish")), log_path("publisher"), error)) return fail(error);
    std::string text;
    if (!publisher_.read_line(text, now_ns() + 20 * kSecond)) {
      return fail("publisher did not start: " + log_summary(publisher_.log_tail()));
    }
    const Line line = parse_line(text);
    if (line.keyword == "NA") {
      result_.status = CaseStatus::NotApplicable;
      result_.reason = line.get("reason");
      return false;
    }
    if (line.keyword != "READY") return fail("publisher: " + line.get("reason", text));
    endpoint_ = line.get("endpoint", endpoint_);
    return true;
  }

  bool start_receivers() {
    std::vector<Child*> waiting;
    for (int i = 0; i < spec_.readers; ++i) {
      RoleOptions options = role("receive");
      options.reader_name = "bench-reader-" + std::to_string(i);
      if (!spec_.receive_modes.empty()) {
        options.receive = spec_.receive_modes[static_cast<size_t>(i) % spec_.receive_modes.size()];
      }
      receive_modes_.push_back(options.receive.empty() ? (spec_.transport->receive_copy ? "copy" : "hold")
                                                       : options.receive);
      receivers_.push_back(std::make_unique<Child>());
      std::string error;
      if (!receivers_.back()->start(role_arguments(options), log_path("reader" + std::to_string(i)), error)) {
        return fail(error);
      }
      waiting.push_back(receivers_.back().get());
    }
    const uint64_t deadline = now_ns() + 15 * kSecond;
    while (!waiting.empty()) {
      std::string text;
      const int index = read_any_line(waiting, text, deadline);
      if (index < 0) {
        return fail("a receiver got no frame within 15 s: " + log_summary(waiting.front()->log_tail()));
      }
      const Line line = parse_line(text);
      if (line.keyword != "READY") return fail("receiver: " + line.get("reason", text));
      waiting.erase(waiting.begin() + index);
    }
    return true;
  }

  bool measure() {
    if (!publisher_.send("GO")) return fail("publisher is gone");
    const uint64_t expected = static_cast<uint64_t>((spec_.warmup_s + spec_.duration_s) * 1e9);
    std::string text;
    if (!publisher_.read_line(text, now_ns() + expected + 20 * kSecond)) {
      return fail("publisher did not report: " + log_summary(publisher_.log_tail()));
    }
    const Line published = parse_line(text);
    if (published.keyword != "RESULT") return fail("publisher: " + published.get("reason", text));
    result_.sent = static_cast<uint64_t>(published.number("sent"));
    const double elapsed = published.number("elapsed_ns");
    result_.sent_per_s = elapsed > 0 ? static_cast<double>(result_.sent) * 1e9 / elapsed : 0;
    result_.writer_cpu_per_frame_ns =
        result_.sent ? published.number("cpu_ns") / static_cast<double>(result_.sent) : 0;
    result_.writer_rss_kib = parse_list(published.get("rss_kib"));

    // Receivers report when the end marker reaches them; a queueing transport may still be draining.
    std::vector<Line> lines(receivers_.size());
    std::vector<bool> done(receivers_.size(), false);
    size_t remaining = receivers_.size();
    bool stop_sent = false;
    uint64_t deadline = now_ns() + 10 * kSecond;
    while (remaining > 0) {
      std::vector<Child*> waiting;
      std::vector<size_t> indices;
      for (size_t i = 0; i < receivers_.size(); ++i) {
        if (!done[i]) {
          waiting.push_back(receivers_[i].get());
          indices.push_back(i);
        }
      }
      const int index = read_any_line(waiting, text, deadline);
      if (index < 0) {
        if (stop_sent) return fail("a receiver did not report: " + log_summary(waiting.front()->log_tail()));
        for (Child* child : waiting) child->send("STOP");
        stop_sent = true;
        deadline = now_ns() + 5 * kSecond;
        continue;
      }
      const Line line = parse_line(text);
      if (line.keyword != "RESULT") return fail("receiver: " + line.get("reason", text));
      lines[indices[static_cast<size_t>(index)]] = line;
      done[indices[static_cast<size_t>(index)]] = true;
      --remaining;
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      const Line& line = lines[i];
      ReaderFigures reader;
      reader.receive_mode = receive_modes_[i];
      reader.received = static_cast<uint64_t>(line.number("received"));
      const double window = line.number("window_ns");
      reader.frames_per_s = window > 0 ? static_cast<double>(reader.received) * 1e9 / window : 0;
      reader.delivered =
          result_.sent ? static_cast<double>(reader.received) / static_cast<double>(result_.sent) : 0;
      reader.cpu_per_frame_ns =
          reader.received ? line.number("cpu_ns") / static_cast<double>(reader.received) : 0;
      reader.latency.count = reader.received;
      reader.latency.p50 = line.number("lat_p50_ns");
      reader.latency.p90 = line.number("lat_p90_ns");
      reader.latency.p99 = line.number("lat_p99_ns");
      reader.latency.max = line.number("lat_max_ns");
      reader.latency.mean = line.number("lat_mean_ns");
      reader.same_cpu = static_cast<uint64_t>(line.number("same_cpu"));
      reader.same_cpu_p50_ns = line.number("lat_same_cpu_p50_ns");
      reader.other_cpu_p50_ns = line.number("lat_other_cpu_p50_ns");
      reader.rss_kib = parse_list(line.get("rss_kib"));
      result_.readers.push_back(reader);
      if (reader.received == 0) fail("reader " + std::to_string(i) + " received no measured frame");
    }
    return result_.reason.empty();
  }

  void finish() {
    // Readers first (they must not see their writer vanish mid-measurement), then the publisher.
    for (auto& receiver : receivers_) {
      receiver->send("STOP");
      receiver->close_stdin();
    }
    for (auto& receiver : receivers_) receiver->wait(now_ns() + 5 * kSecond);
    publisher_.send("QUIT");
    publisher_.close_stdin();
    const int status = publisher_.wait(now_ns() + 10 * kSecond);
    if (status != 0 && result_.status == CaseStatus::Ok) {
      fail("publisher exited with status " + std::to_string(status) + ": " +
           log_summary(publisher_.log_tail()));
    }
    // A killed publisher leaves its socket or segment behind; they are ours, so remove them.
    if (spec_.transport->family == Family::Shm) unlink(endpoint_.c_str());
    if (spec_.transport->family == Family::Shmx || spec_.transport->family == Family::ShmxLib) {
      unlink(("/dev/shm/shmx." + id_).c_str());
    }
    const bool keep = context_.keep_logs || result_.status == CaseStatus::Failed;
    if (result_.status == CaseStatus::Failed) {
      result_.reason = first_line(result_.reason);
      std::fprintf(stderr, "case %s failed: %s (logs: %s/%s-*.log)\n", spec_.name().c_str(),
                   result_.reason.c_str(), context_.work_dir.c_str(), id_.c_str());
    }
    if (!keep) {
      unlink(log_path("publisher").c_str());
      for (size_t i = 0; i < receivers_.size(); ++i) unlink(log_path("reader" + std::to_string(i)).c_str());
    }
  }

  const CaseSpec& spec_;
  const CaseContext& context_;
  std::string id_;
  std::string endpoint_;
  Child publisher_;
  std::vector<std::unique_ptr<Child>> receivers_;
  std::vector<std::string> receive_modes_;
  CaseResult result_;
};

}  // namespace

std::string CaseSpec::name() const {
  std::string text = std::string(transport->id) + " " + format.label() + " ";
  text += rate > 0 ? "@" + format_number(rate, 0) + "/s" : "as fast as possible";
  if (readers != 1) text += " x" + std::to_string(readers) + " readers";
  if (repeat > 0) text += " (repeat " + std::to_string(repeat + 1) + ")";
  return text;
}

CaseResult run_case(const CaseSpec& spec, const CaseContext& context) {
  CaseRunner runner(spec, context);
  CaseResult result = runner.run();
  if (context.verbose) {
    std::fprintf(stderr, "  %-50s %s\n", spec.name().c_str(),
                 result.ok() ? "ok" : (result.status == CaseStatus::NotApplicable ? "n/a" : "FAILED"));
  }
  return result;
}

}  // namespace bench
