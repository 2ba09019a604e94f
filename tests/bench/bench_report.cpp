// SPDX-License-Identifier: MIT
// bench_report.cpp: renders a run as Markdown tables and checks the targets of the benchmark issue.
#include "bench_report.h"

#include <gst/gst.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>

namespace bench {
namespace {

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

std::string us(double ns) { return std::isnan(ns) ? "-" : format_number(ns / 1000.0, ns < 100000 ? 1 : 0); }
std::string percent(double ratio) { return format_number(ratio * 100.0, 1) + "%"; }
std::string times(double ratio) { return format_number(ratio, 2) + "x"; }
std::string rate_label(double rate) { return rate > 0 ? format_number(rate, 0) + "/s" : "max"; }

// A table row's transport, with the run number for the repeats of a case.
std::string run_label(const CaseSpec& spec) {
  return spec.transport->id + (spec.repeat ? " (run " + std::to_string(spec.repeat + 1) + ")" : "");
}

// A Markdown table with padded columns (readable on a terminal too).
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) {
    row.resize(headers_.size());
    rows_.push_back(std::move(row));
  }
  bool empty() const { return rows_.empty(); }
  std::string render() const {
    std::vector<size_t> widths(headers_.size());
    for (size_t c = 0; c < headers_.size(); ++c) {
      widths[c] = headers_[c].size();
      for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
    }
    auto line = [&](const std::vector<std::string>& cells) {
      std::string text = "|";
      for (size_t c = 0; c < cells.size(); ++c) {
        text += " " + cells[c] + std::string(widths[c] - cells[c].size(), ' ') + " |";
      }
      return text + "\n";
    };
    std::string text = line(headers_);
    text += "|";
    for (size_t width : widths) text += std::string(width + 2, '-') + "|";
    text += "\n";
    for (const auto& row : rows_) text += line(row);
    return text;
  }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Notes under a table for cases that did not produce figures.
class Notes {
 public:
  // Returns the cell text for a case that is not Ok ("n/a [1]", "FAILED [2]").
  std::string add(const CaseResult& result) {
    notes_.push_back(result.spec.name() + ": " + result.reason);
    const std::string tag = "[" + std::to_string(notes_.size()) + "]";
    return (result.status == CaseStatus::NotApplicable ? "n/a " : "FAILED ") + tag;
  }
  std::string render() const {
    std::string text;
    for (size_t i = 0; i < notes_.size(); ++i) text += "[" + std::to_string(i + 1) + "] " + notes_[i] + "\n";
    return text.empty() ? text : "\n" + text;
  }

 private:
  std::vector<std::string> notes_;
};

// ---------------------------------------------------------------------------------------------
// Lookups and derived figures
// ---------------------------------------------------------------------------------------------

bool same_format(const FrameFormat& a, const FrameFormat& b) {
  return a.width == b.width && a.height == b.height;
}

std::vector<const CaseResult*> find_cases(const BenchRun& run, Section section, const std::string& transport,
                                          const FrameFormat& format, double rate, int readers = 1) {
  std::vector<const CaseResult*> found;
  for (const CaseResult& result : run.cases) {
    if (result.spec.section == section && transport == result.spec.transport->id &&
        same_format(result.spec.format, format) && result.spec.rate == rate &&
        result.spec.readers == readers) {
      found.push_back(&result);
    }
  }
  return found;
}

const FrameFormat kSmall{32, 32};
const FrameFormat kFullHd{1920, 1080};

double memcpy_frames_per_s(const MachineInfo& machine, const FrameFormat& format) {
  return machine.memcpy.gbytes_per_s * 1e9 / static_cast<double>(format.bytes());
}

// Median over the Ok repeats of a figure of the (first) reader; NaN when none is Ok.
double median_of(const std::vector<const CaseResult*>& cases,
                 const std::function<double(const CaseResult&)>& figure) {
  std::vector<double> values;
  for (const CaseResult* result : cases) {
    if (result->ok() && !result->readers.empty()) values.push_back(figure(*result));
  }
  return values.empty() ? NAN : median(values);
}

double p50(const CaseResult& result) { return result.readers.front().latency.p50; }
double p99(const CaseResult& result) { return result.readers.front().latency.p99; }
double reader_fps(const CaseResult& result) { return result.readers.front().frames_per_s; }

// RSS growth: median of the last third of the samples minus the median of the first third, after
// the first five samples (seconds), while the processes settle.
bool rss_growth(const std::vector<uint64_t>& samples, double& growth_kib, double& start_kib,
                double& end_kib) {
  const size_t skip = std::min<size_t>(5, samples.size() / 4);
  if (samples.size() < skip + 3) return false;
  std::vector<double> values(samples.begin() + static_cast<long>(skip), samples.end());
  const size_t third = values.size() / 3;
  start_kib = median(std::vector<double>(values.begin(), values.begin() + static_cast<long>(third)));
  end_kib = median(std::vector<double>(values.end() - static_cast<long>(third), values.end()));
  growth_kib = end_kib - start_kib;
  return true;
}
constexpr double kRssToleranceKib = 1024;

std::string read_first_match(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      const size_t colon = line.find(':');
      std::string value = colon == std::string::npos ? line : line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "unknown";
}

}  // namespace

MachineInfo describe_machine() {
  MachineInfo info;
  info.cpu_model = read_first_match("/proc/cpuinfo", "model name");
  info.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  utsname name{};
  if (uname(&name) == 0) info.kernel = std::string(name.sysname) + " " + name.release + " " + name.machine;
  gchar* version = gst_version_string();
  info.gstreamer = version;
  g_free(version);
  const std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  info.date = date;
  return info;
}

std::vector<TargetCheck> check_targets(const BenchRun& run) {
  std::vector<TargetCheck> checks;
  auto add = [&](const std::string& name, double measured, double limit, bool at_most,
                 const std::string& detail) {
    TargetCheck check;
    check.name = name;
    if (std::isnan(measured) || std::isnan(limit) || limit <= 0) {
      check.verdict = Verdict::NotMeasured;
      check.detail = "not measured in this run";
    } else {
      check.verdict = (at_most ? measured <= limit : measured >= limit) ? Verdict::Pass : Verdict::Fail;
      check.detail = detail;
    }
    checks.push_back(check);
  };
  const MachineInfo& machine = run.machine;
  const double futex_p50 = machine.futex_gap.wake.count ? machine.futex_gap.wake.p50 : NAN;

  // 1. 4 KiB at 1000 fps against shmsink/shmsrc and the futex wake-up (medians of the repeats).
  {
    const auto shmx = find_cases(run, Section::Latency, "shmx", kSmall, 1000);
    const auto shm = find_cases(run, Section::Latency, "shmsink", kSmall, 1000);
    const double shmx_p50 = median_of(shmx, p50), shm_p50 = median_of(shm, p50);
    const double shmx_p99 = median_of(shmx, p99), shm_p99 = median_of(shm, p99);
    const std::string runs = shmx.size() > 1 ? " (median of " + std::to_string(shmx.size()) + " runs)" : "";
    add("4 KiB @1000/s: shmx p50 <= 0.5x shmsink p50", shmx_p50 / shm_p50, 0.5, true,
        "shmx " + us(shmx_p50) + " us, shmsink " + us(shm_p50) + " us: " + times(shmx_p50 / shm_p50) + runs);
    add("4 KiB @1000/s: shmx p50 <= 3x futex wake-up p50 (1 ms gap)", shmx_p50 / futex_p50, 3, true,
        "shmx " + us(shmx_p50) + " us, futex " + us(futex_p50) + " us: " + times(shmx_p50 / futex_p50));
    add("4 KiB @1000/s: shmx p99 <= 0.5x shmsink p99", shmx_p99 / shm_p99, 0.5, true,
        "shmx " + us(shmx_p99) + " us, shmsink " + us(shm_p99) + " us: " + times(shmx_p99 / shm_p99) + runs);
  }
  // 2. 1920x1080 zero copy: latency independent of size, throughput far above one memcpy per frame.
  {
    const double big = median_of(find_cases(run, Section::Latency, "shmx-zc", kFullHd, 30), p50);
    const double small = median_of(find_cases(run, Section::Latency, "shmx-zc", kSmall, 30), p50);
    add("1920x1080 zero copy @30/s: p50 <= 2x shmx-zc 4 KiB @30/s p50", big / small, 2, true,
        "1920x1080 " + us(big) + " us, 4 KiB " + us(small) + " us: " + times(big / small));
    const double fps = median_of(find_cases(run, Section::Throughput, "shmx-zc", kFullHd, 0), reader_fps);
    const double limit = memcpy_frames_per_s(machine, kFullHd);
    add("1920x1080 zero copy, max rate: frames/s >= 5x one memcpy per frame", fps / limit, 5, false,
        format_number(fps, 0) + " frames/s, memcpy allows " + format_number(limit, 0) + ": " +
            times(fps / limit));
  }
  // 3. 1920x1080 copy path: close to one memcpy per frame, and not below shmsink/shmsrc.
  {
    const double fps = median_of(find_cases(run, Section::Throughput, "shmx", kFullHd, 0), reader_fps);
    const double shm = median_of(find_cases(run, Section::Throughput, "shmsink", kFullHd, 0), reader_fps);
    const double limit = memcpy_frames_per_s(machine, kFullHd);
    add("1920x1080 copy path, max rate: frames/s >= 90% of one memcpy per frame", fps / limit, 0.9, false,
        format_number(fps, 0) + " frames/s, memcpy allows " + format_number(limit, 0) + ": " +
            percent(fps / limit));
    add("1920x1080 copy path, max rate: frames/s >= shmsink/shmsrc", fps / shm, 1, false,
        format_number(fps, 0) + " vs shmsink " + format_number(shm, 0) + " frames/s: " + times(fps / shm));
  }
  // 4. Eight readers: the writer's cost per frame barely moves; everybody gets (nearly) every frame.
  for (const char* transport : {"shmx", "shmx-zc"}) {
    for (const FrameFormat& format : {kSmall, kFullHd}) {
      const auto one = find_cases(run, Section::Scale, transport, format, 30, 1);
      const auto eight = find_cases(run, Section::Scale, transport, format, 30, 8);
      if (one.empty() && eight.empty()) continue;
      const std::string what = std::string(transport) + " " + format.label() + " @30/s";
      const auto writer_cpu = [](const CaseResult& r) { return r.writer_cpu_per_frame_ns; };
      const double cpu1 = median_of(one, writer_cpu);
      const double cpu8 = median_of(eight, writer_cpu);
      const std::string runs = eight.size() > 1 || one.size() > 1
                                   ? " (medians of " + std::to_string(eight.size()) + " and " +
                                         std::to_string(one.size()) + " runs)"
                                   : "";
      add(what + ": writer CPU/frame with 8 readers <= 1.2x with 1", cpu8 / cpu1, 1.2, true,
          us(cpu8) + " vs " + us(cpu1) + " us: " + times(cpu8 / cpu1) + runs);
      const double worst = median_of(eight, [](const CaseResult& r) {
        double lowest = 1;
        for (const ReaderFigures& reader : r.readers) lowest = std::min(lowest, reader.delivered);
        return lowest;
      });
      add(what + ": every one of 8 readers receives >= 95% of the frames", worst, 0.95, false,
          "least-served reader " + percent(worst));
    }
  }
  // 5. Memory: flat over the long run, for the writer and each reader.
  for (const CaseResult& result : run.cases) {
    if (result.spec.section != Section::Memory) continue;
    const std::string what = std::string(result.spec.transport->id) + " " + result.spec.format.label() + " " +
                             format_number(result.spec.duration_s, 0) + " s";
    if (!result.ok()) {
      add(what + ": resident memory flat", NAN, NAN, true, result.reason);
      continue;
    }
    auto check = [&](const std::string& who, const std::vector<uint64_t>& samples) {
      double growth = 0, start = 0, end = 0;
      if (!rss_growth(samples, growth, start, end)) {
        add(what + ": " + who + " resident memory flat", NAN, NAN, true, "too few samples");
        return;
      }
      add(what + ": " + who + " resident memory flat (growth <= 1 MiB)", growth, kRssToleranceKib, true,
          format_number(start, 0) + " -> " + format_number(end, 0) + " KiB: " + format_number(growth, 0) +
              " KiB");
    };
    check("writer", result.writer_rss_kib);
    for (size_t i = 0; i < result.readers.size(); ++i) {
      check("reader " + std::to_string(i) + " (" + result.readers[i].receive_mode + ")",
            result.readers[i].rss_kib);
    }
  }
  return checks;
}

std::string render_report(const BenchRun& run, const std::vector<TargetCheck>& checks) {
  const MachineInfo& machine = run.machine;
  std::ostringstream out;
  out << "# shmx benchmark" << (run.quick ? " (quick smoke run: figures are indicative only)" : "") << "\n\n";
  out << "- command: `" << run.command << "`\n";
  out << "- date: " << machine.date << "\n";
  out << "- machine: " << machine.cpu_model << ", " << machine.cpus << " CPUs, " << machine.kernel << "\n";
  out << "- GStreamer: " << machine.gstreamer << "; publisher: " << run.publisher
      << (run.publisher == "pad" ? " (frames pushed on a pad linked to the sink, in the publishing thread)"
                                 : " (appsrc is-live, format=time, block, max-buffers=2)")
      << "\n";
  out << "- latency = receive time - publish time, both CLOCK_MONOTONIC, publisher and receiver in separate "
         "processes; us = microseconds; CPU = process CPU time (all threads) per frame\n\n";

  out << "## Machine limits (same run)\n\n";
  {
    Table table({"measure", "value"});
    const double fps = memcpy_frames_per_s(machine, kFullHd);
    table.add({"memcpy, " + format_number(static_cast<double>(machine.memcpy.bytes) / 1048576.0, 0) +
                   " MiB buffers (median of " + std::to_string(machine.memcpy.runs) + ")",
               format_number(machine.memcpy.gbytes_per_s, 2) + " GB/s = " + format_number(fps, 0) +
                   " frames/s of 1920x1080 RGBA at one memcpy per frame"});
    for (const FutexResult* futex :
         {&machine.futex_gap, &machine.futex_hot, &machine.futex_one_cpu, &machine.futex_other_cpus}) {
      if (!futex->measured) continue;
      const std::string gap = futex->gap_ns
                                  ? format_number(static_cast<double>(futex->gap_ns) / 1e6, 0) + " ms gap"
                                  : "back to back";
      const char* placement = futex->placement == FutexPlacement::OneCpu      ? ", both pinned to one CPU"
                              : futex->placement == FutexPlacement::OtherCpus ? ", pinned to two CPUs"
                                                                              : "";
      table.add({"futex wake-up between two processes, " + gap + placement + " (" +
                     std::to_string(futex->wake.count) + " wake-ups)",
                 "p50 " + us(futex->wake.p50) + " us, p90 " + us(futex->wake.p90) + ", p99 " +
                     us(futex->wake.p99) + ", max " + us(futex->wake.max)});
    }
    out << table.render() << "\n";
  }

  {
    Table table({"transport", "frame", "rate", "sent/s", "delivered", "p50 us", "p90 us", "p99 us", "max us",
                 "writer CPU us/frame", "reader CPU us/frame"});
    Notes notes;
    for (const CaseResult& result : run.cases) {
      if (result.spec.section != Section::Latency || result.spec.repeat != 0) continue;
      const CaseSpec& spec = result.spec;
      std::vector<std::string> row = {spec.transport->id, spec.format.label(), rate_label(spec.rate)};
      if (!result.ok()) {
        row.push_back(notes.add(result));
      } else {
        const ReaderFigures& reader = result.readers.front();
        row.insert(row.end(),
                   {format_number(result.sent_per_s, 0), percent(reader.delivered), us(reader.latency.p50),
                    us(reader.latency.p90), us(reader.latency.p99), us(reader.latency.max),
                    us(result.writer_cpu_per_frame_ns), us(reader.cpu_per_frame_ns)});
      }
      table.add(row);
    }
    if (!table.empty()) out << "## Latency, paced publisher\n\n" << table.render() << notes.render() << "\n";
  }

  {
    // Cases run more than once: every run, and the median the targets use.
    Table table(
        {"transport", "frame", "rate", "p50 us per run", "median p50", "p99 us per run", "median p99"});
    for (const CaseResult& result : run.cases) {
      if (result.spec.section != Section::Latency || result.spec.repeat != 0) continue;
      const auto runs =
          find_cases(run, Section::Latency, result.spec.transport->id, result.spec.format, result.spec.rate);
      if (runs.size() < 2 ||
          std::none_of(runs.begin(), runs.end(), [](const CaseResult* r) { return r->ok(); })) {
        continue;
      }
      std::string p50s, p99s;
      for (const CaseResult* each : runs) {
        p50s += (p50s.empty() ? "" : ", ") + (each->ok() ? us(p50(*each)) : "-");
        p99s += (p99s.empty() ? "" : ", ") + (each->ok() ? us(p99(*each)) : "-");
      }
      table.add({result.spec.transport->id, result.spec.format.label(), rate_label(result.spec.rate), p50s,
                 us(median_of(runs, p50)), p99s, us(median_of(runs, p99))});
    }
    if (!table.empty()) out << "### Repeated cases\n\n" << table.render() << "\n";
  }

  {
    // Where the frames arrived: a receiver woken on a CPU other than the publisher's pays for waking
    // that CPU, which the transport does not choose (the kernel does).
    Table table({"transport", "frame", "rate", "received on the publisher's CPU", "p50 us there",
                 "p50 us on another CPU"});
    for (const CaseResult& result : run.cases) {
      if (result.spec.section != Section::Latency || !result.ok()) continue;
      const ReaderFigures& reader = result.readers.front();
      const auto p50_or_dash = [](double ns) { return ns < 0 ? std::string("-") : us(ns); };
      table.add({run_label(result.spec), result.spec.format.label(), rate_label(result.spec.rate),
                 percent(reader.received
                             ? static_cast<double>(reader.same_cpu) / static_cast<double>(reader.received)
                             : 0),
                 p50_or_dash(reader.same_cpu_p50_ns), p50_or_dash(reader.other_cpu_p50_ns)});
    }
    if (!table.empty())
      out << "### Where the frames arrived\n\n"
          << "On the CPU the publisher stamped the frame on, or on another one, which the wake-up had to "
             "reach (see the futex rows of the machine limits); p50 of each group.\n\n"
          << table.render() << "\n";
  }

  {
    Table table({"transport", "frame", "received frames/s", "GB/s", "vs memcpy", "sent/s", "delivered",
                 "writer CPU us/frame", "reader CPU us/frame", "p50 us"});
    Notes notes;
    for (const CaseResult& result : run.cases) {
      if (result.spec.section != Section::Throughput) continue;
      const CaseSpec& spec = result.spec;
      std::vector<std::string> row = {spec.transport->id, spec.format.label()};
      if (!result.ok()) {
        row.push_back(notes.add(result));
      } else {
        const ReaderFigures& reader = result.readers.front();
        const double gbytes = reader.frames_per_s * static_cast<double>(spec.format.bytes()) / 1e9;
        row.insert(row.end(),
                   {format_number(reader.frames_per_s, 0), format_number(gbytes, 2),
                    percent(reader.frames_per_s / memcpy_frames_per_s(machine, spec.format)),
                    format_number(result.sent_per_s, 0), percent(reader.delivered),
                    us(result.writer_cpu_per_frame_ns), us(reader.cpu_per_frame_ns), us(reader.latency.p50)});
      }
      table.add(row);
    }
    if (!table.empty()) {
      out << "## Throughput, publisher as fast as possible\n\n" << table.render() << notes.render();
      out << "\n\"vs memcpy\": received frames/s over the frames/s that one memcpy of the frame per frame "
             "allows (memcpy bandwidth above).\n\n";
    }
  }

  {
    Table table({"transport", "frame", "rate", "readers", "writer CPU us/frame", "vs 1 reader",
                 "reader frames/s (min)", "delivered (min)", "p50 us (worst)", "p99 us (worst)",
                 "reader CPU us/frame (mean)"});
    Notes notes;
    for (const CaseResult& result : run.cases) {
      if (result.spec.section != Section::Scale) continue;
      const CaseSpec& spec = result.spec;
      std::vector<std::string> row = {run_label(spec), spec.format.label(), rate_label(spec.rate),
                                      std::to_string(spec.readers)};
      if (!result.ok()) {
        row.push_back(notes.add(result));
        table.add(row);
        continue;
      }
      const auto one = find_cases(run, Section::Scale, spec.transport->id, spec.format, spec.rate, 1);
      const double base = median_of(one, [](const CaseResult& r) { return r.writer_cpu_per_frame_ns; });
      double min_fps = 1e18, min_delivered = 1e18, worst_p50 = 0, worst_p99 = 0, cpu = 0;
      for (const ReaderFigures& reader : result.readers) {
        min_fps = std::min(min_fps, reader.frames_per_s);
        min_delivered = std::min(min_delivered, reader.delivered);
        worst_p50 = std::max(worst_p50, reader.latency.p50);
        worst_p99 = std::max(worst_p99, reader.latency.p99);
        cpu += reader.cpu_per_frame_ns / static_cast<double>(result.readers.size());
      }
      row.insert(row.end(),
                 {us(result.writer_cpu_per_frame_ns),
                  std::isnan(base) ? "-" : times(result.writer_cpu_per_frame_ns / base),
                  format_number(min_fps, 1), percent(min_delivered), us(worst_p50), us(worst_p99), us(cpu)});
      table.add(row);
    }
    if (!table.empty())
      out << "## Scale: one writer, N readers\n\n" << table.render() << notes.render() << "\n";
  }

  {
    Table table({"case", "process", "RSS start KiB", "RSS end KiB", "growth KiB", "samples"});
    Notes notes;
    for (const CaseResult& result : run.cases) {
      if (result.spec.section != Section::Memory) continue;
      const std::string name = result.spec.name() + ", " + format_number(result.spec.duration_s, 0) + " s";
      if (!result.ok()) {
        table.add({name, notes.add(result)});
        continue;
      }
      auto row = [&](const std::string& who, const std::vector<uint64_t>& samples) {
        double growth = 0, start = 0, end = 0;
        if (!rss_growth(samples, growth, start, end)) {
          table.add({name, who, "-", "-", "-", std::to_string(samples.size())});
          return;
        }
        table.add({name, who, format_number(start, 0), format_number(end, 0), format_number(growth, 0),
                   std::to_string(samples.size())});
      };
      row("writer", result.writer_rss_kib);
      for (size_t i = 0; i < result.readers.size(); ++i) {
        row("reader " + std::to_string(i) + " (" + result.readers[i].receive_mode + ")",
            result.readers[i].rss_kib);
      }
    }
    if (!table.empty()) {
      out << "## Resident memory over a long run\n\n"
          << table.render() << notes.render()
          << "\nStart and end: medians of the first and last third of the once-a-second samples, after the "
             "first five.\n\n";
    }
  }

  out << "## Targets\n\n";
  for (const TargetCheck& check : checks) {
    const char* verdict = check.verdict == Verdict::Pass   ? "PASS"
                          : check.verdict == Verdict::Fail ? "FAIL"
                                                           : "N/A ";
    out << "- " << verdict << "  " << check.name << ": " << check.detail << "\n";
  }
  return out.str();
}

}  // namespace bench
