// SPDX-License-Identifier: MIT
// bench_report.h: the tables of a run (Markdown) and the checks of the targets against them.
#pragma once

#include <string>
#include <vector>

#include "bench_case.h"
#include "bench_machine.h"

namespace bench {

struct MachineInfo {
  std::string cpu_model;
  int cpus = 0;
  std::string kernel;
  std::string gstreamer;
  std::string date;  // UTC, ISO 8601
  MemcpyResult memcpy;
  FutexResult futex_gap;         // 1 ms between wake-ups (the reference of the targets)
  FutexResult futex_hot;         // back to back
  FutexResult futex_one_cpu;     // 1 ms gap, both processes on one CPU
  FutexResult futex_other_cpus;  // 1 ms gap, the woken process on another CPU, idle until the wake-up
};

struct BenchRun {
  std::string command;  // how this run was started
  bool quick = false;
  std::string publisher;  // appsrc | pad
  MachineInfo machine;
  std::vector<CaseResult> cases;
};

enum class Verdict { Pass, Fail, NotMeasured };

struct TargetCheck {
  std::string name;  // what the target says
  Verdict verdict = Verdict::NotMeasured;
  std::string detail;  // the figures and the ratio
};

MachineInfo describe_machine();
std::vector<TargetCheck> check_targets(const BenchRun& run);
// The whole report: machine, tables, targets.
std::string render_report(const BenchRun& run, const std::vector<TargetCheck>& checks);

}  // namespace bench
