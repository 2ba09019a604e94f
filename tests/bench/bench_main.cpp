// SPDX-License-Identifier: MIT
// bench_main.cpp: shmx-bench: the command line, the plan of cases (full or --quick), and the run that
// measures the machine's limits, runs every case and writes the report.
//
// Usage: shmx-bench [--quick] [--out FILE] [--transports LIST] [--publisher appsrc|pad]
//                   [--sections LIST] [--time-scale X] [--strict] [--keep-logs] [--plugin-path DIR]
// The same program runs the roles when started as `shmx-bench --role=publish|receive ...` (see
// bench_roles.h); the controller does that itself.
#include <gst/gst.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "bench_case.h"
#include "bench_machine.h"
#include "bench_report.h"
#include "bench_roles.h"

#ifndef SHMX_BENCH_PLUGIN_DIR
#define SHMX_BENCH_PLUGIN_DIR ""
#endif
#ifndef SHMX_BENCH_REGISTRY
#define SHMX_BENCH_REGISTRY ""
#endif

namespace bench {
namespace {

struct Options {
  bool quick = false;
  std::string out = "bench-results.md";
  std::vector<std::string> transports;  // empty = all
  std::set<std::string> sections = {"latency", "throughput", "scale", "memory"};
  std::set<std::string> frames = {"4k", "1m", "1080p"};
  std::string publisher = "appsrc";
  double time_scale = 1;
  bool strict = false;
  bool keep_logs = false;
  std::string plugin_path = SHMX_BENCH_PLUGIN_DIR;
};

const char* kUsage =
    "usage: shmx-bench [options]\n"
    "  --quick              smoke run: reduced matrix, about a second per case (CI)\n"
    "  --out FILE           also write the report to FILE (default bench-results.md)\n"
    "  --transports LIST    comma-separated subset of: shmx,shmx-zc,shmx-rcopy,shmsink,tcp,shmx-lib\n"
    "  --sections LIST      comma-separated subset of: latency,throughput,scale,memory\n"
    "  --frames LIST        comma-separated subset of: 4k,1m,1080p (frame sizes)\n"
    "  --publisher KIND     appsrc (default) or pad (push on a pad linked to the sink, no appsrc queue)\n"
    "  --time-scale X       multiply every case's duration by X\n"
    "  --strict             exit non-zero when a target fails too (not only when a case fails)\n"
    "  --keep-logs          keep every role's stderr log (failed cases always keep theirs)\n"
    "  --plugin-path DIR    where libgstshmx.so is (default: this build's plugin directory)\n";

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

bool parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const size_t equals = arg.find('=');
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
      arg.resize(equals);
    }
    auto need = [&]() -> bool {
      if (equals != std::string::npos) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--strict") {
      options.strict = true;
    } else if (arg == "--keep-logs") {
      options.keep_logs = true;
    } else if (arg == "--out" && need()) {
      options.out = value;
    } else if (arg == "--transports" && need()) {
      options.transports = split(value);
      for (const std::string& id : options.transports) {
        if (find_transport(id) == nullptr) {
          std::fprintf(stderr, "unknown transport %s\n", id.c_str());
          return false;
        }
      }
    } else if (arg == "--sections" && need()) {
      const auto sections = split(value);
      options.sections = std::set<std::string>(sections.begin(), sections.end());
    } else if (arg == "--frames" && need()) {
      const auto frames = split(value);
      options.frames = std::set<std::string>(frames.begin(), frames.end());
    } else if (arg == "--publisher" && need() && (value == "appsrc" || value == "pad")) {
      options.publisher = value;
    } else if (arg == "--time-scale" && need()) {
      options.time_scale = std::atof(value.c_str());
    } else if (arg == "--plugin-path" && need()) {
      options.plugin_path = value;
    } else {
      std::fputs(kUsage, stderr);
      return false;
    }
  }
  return options.time_scale > 0;
}

// The cases of a run, in order. Within a (frame, rate) group the transports run one after the other,
// so that slow drifts of the machine touch them alike.
std::vector<CaseSpec> plan(const Options& options) {
  std::vector<const Transport*> transports;
  for (const Transport& transport : all_transports()) {
    if (options.transports.empty() || std::find(options.transports.begin(), options.transports.end(),
                                                std::string(transport.id)) != options.transports.end()) {
      transports.push_back(&transport);
    }
  }
  const FrameFormat small{32, 32}, medium{512, 512}, full_hd{1920, 1080};
  const double scale = options.time_scale;
  std::vector<CaseSpec> cases;
  auto wanted = [&](const FrameFormat& format) {
    const char* key = format.width == small.width ? "4k" : format.width == medium.width ? "1m" : "1080p";
    return options.frames.count(key) != 0;
  };
  auto add = [&](Section section, const Transport* transport, const FrameFormat& format, double rate,
                 double duration, int readers = 1, int repeat = 0) -> CaseSpec* {
    if (!wanted(format)) return nullptr;
    CaseSpec spec;
    spec.section = section;
    spec.transport = transport;
    spec.format = format;
    spec.rate = rate;
    spec.duration_s = duration * scale;
    spec.warmup_s = options.quick ? 0.3 : 0.5;
    spec.readers = readers;
    spec.repeat = repeat;
    spec.publisher = options.publisher;
    cases.push_back(spec);
    return &cases.back();
  };
  auto scale_transports = [&]() {
    std::vector<const Transport*> chosen;
    for (const Transport* transport : transports) {
      if (transport->family != Family::ShmxLib && std::string(transport->id) != "shmx-rcopy") {
        chosen.push_back(transport);
      }
    }
    return chosen;
  };
  const bool latency = options.sections.count("latency") != 0;
  const bool throughput = options.sections.count("throughput") != 0;
  const bool scaling = options.sections.count("scale") != 0;
  const bool memory = options.sections.count("memory") != 0;

  if (options.quick) {
    // Every transport delivers frames, in both modes, plus several readers; about a second each.
    if (latency) {
      for (const Transport* transport : transports) add(Section::Latency, transport, small, 1000, 1.5);
    }
    if (throughput) {
      for (const Transport* transport : transports) add(Section::Throughput, transport, full_hd, 0, 1.5);
    }
    if (scaling) {
      for (const Transport* transport : scale_transports()) {
        if (transport->family == Family::Shmx && !transport->pool_publisher) {
          for (int readers : {1, 2}) add(Section::Scale, transport, small, 30, 1.5, readers);
        }
      }
    }
    return cases;
  }

  if (latency) {
    for (const FrameFormat& format : {small, medium, full_hd}) {
      for (double rate : {30.0, 1000.0}) {
        const int repeats = format.width == small.width && rate == 1000.0 ? 3 : 1;
        const double duration = rate == 30.0 ? 6 : 4;
        for (int repeat = 0; repeat < repeats; ++repeat) {
          for (const Transport* transport : transports)
            add(Section::Latency, transport, format, rate, duration, 1, repeat);
        }
      }
    }
  }
  if (throughput) {
    for (const FrameFormat& format : {small, medium, full_hd}) {
      for (const Transport* transport : transports) add(Section::Throughput, transport, format, 0, 4);
    }
  }
  if (scaling) {
    for (const FrameFormat& format : {small, full_hd}) {
      for (const Transport* transport : scale_transports()) {
        // The cases the 8-reader target compares run three times (the target takes medians): at
        // 30/s the writer's CPU per frame moves by 10-20% from run to run with what else ran in
        // the caches (a 1920x1080 copy is mostly memory traffic).
        const bool compared = std::string(transport->id) == "shmx" || std::string(transport->id) == "shmx-zc";
        // Interleaved (1, 2, 4, 8, then 1, 8 twice) so that a drift of the machine hits both sides.
        for (int repeat = 0; repeat < (compared ? 3 : 1); ++repeat) {
          for (int readers : {1, 2, 4, 8}) {
            if (repeat == 0 || readers == 1 || readers == 8)
              add(Section::Scale, transport, format, 30, 8, readers, repeat);
          }
        }
      }
    }
  }
  if (memory) {
    // A minute as fast as possible (a per-frame leak shows most there), one holding and one copying
    // reader, for both publisher paths.
    for (const Transport* transport : transports) {
      if (transport->family != Family::Shmx || transport->receive_copy) continue;
      CaseSpec* spec = add(Section::Memory, transport, medium, 0, 60, 2);
      if (spec == nullptr) continue;
      spec->receive_modes = {"hold", "copy"};
      spec->sample_rss = true;
    }
  }
  return cases;
}

MachineInfo measure_machine(bool quick) {
  MachineInfo machine;
  std::fprintf(stderr, "machine limits: memcpy, futex wake-up...\n");
  machine.memcpy = measure_memcpy(8u << 20, quick ? 10 : 30);
  machine.futex_gap = measure_futex_wakeup(1000000, quick ? 300 : 2000);
  machine.futex_hot = measure_futex_wakeup(0, quick ? 2000 : 20000);
  machine.futex_one_cpu = measure_futex_wakeup(1000000, quick ? 300 : 2000, FutexPlacement::OneCpu);
  machine.futex_other_cpus = measure_futex_wakeup(1000000, quick ? 300 : 2000, FutexPlacement::OtherCpus);
  return machine;
}

// The build's plugin directory first on the plugin path, and a registry of our own, so that the
// user's registry is neither rewritten nor consulted for a stale copy of the plugin.
void set_up_gstreamer_environment(const Options& options) {
  struct stat info {};
  if (!options.plugin_path.empty() && stat(options.plugin_path.c_str(), &info) == 0) {
    const char* current = std::getenv("GST_PLUGIN_PATH");
    std::string path = options.plugin_path;
    if (current != nullptr && *current != '\0') path += ":" + std::string(current);
    setenv("GST_PLUGIN_PATH", path.c_str(), 1);
  }
  if (std::getenv("GST_REGISTRY") == nullptr && std::strlen(SHMX_BENCH_REGISTRY) != 0) {
    setenv("GST_REGISTRY", SHMX_BENCH_REGISTRY, 1);
  }
}

std::string make_work_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/shmx-bench-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) return "/tmp";
  return buffer.data();
}

int run_controller(int argc, char** argv) {
  Options options;
  if (!parse_options(argc, argv, options)) return 2;

  BenchRun run;
  run.quick = options.quick;
  run.publisher = options.publisher;
  run.command = "shmx-bench";
  for (int i = 1; i < argc; ++i) run.command += std::string(" ") + argv[i];

  // Before gst_init: the futex measurement forks, and the process has no threads yet.
  const MachineInfo limits = measure_machine(options.quick);
  set_up_gstreamer_environment(options);
  gst_init(nullptr, nullptr);
  // The controller brought the registry up to date; the roles only read it.
  setenv("GST_REGISTRY_UPDATE", "no", 1);
  run.machine = describe_machine();
  run.machine.memcpy = limits.memcpy;
  run.machine.futex_gap = limits.futex_gap;
  run.machine.futex_hot = limits.futex_hot;
  run.machine.futex_one_cpu = limits.futex_one_cpu;
  run.machine.futex_other_cpus = limits.futex_other_cpus;

  CaseContext context;
  context.work_dir = make_work_dir();
  context.keep_logs = options.keep_logs;
  const std::vector<CaseSpec> cases = plan(options);
  int failed = 0, not_applicable = 0, passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::fprintf(stderr, "[%zu/%zu] %s ... ", i + 1, cases.size(), cases[i].name().c_str());
    std::fflush(stderr);
    CaseResult result = run_case(cases[i], context);
    switch (result.status) {
      case CaseStatus::Ok:
        ++passed;
        std::fprintf(stderr, "ok\n");
        break;
      case CaseStatus::NotApplicable:
        ++not_applicable;
        std::fprintf(stderr, "n/a (%s)\n", result.reason.c_str());
        break;
      case CaseStatus::Failed:
        ++failed;
        std::fprintf(stderr, "FAILED: %s\n", result.reason.c_str());
        break;
    }
    // Machine-readable, one line per case, for CI (scripts/stages/bench-smoke.sh).
    std::printf("CASE %s: %s\n",
                result.ok()                                  ? "ok"
                : result.status == CaseStatus::NotApplicable ? "n/a"
                                                             : "FAILED",
                cases[i].name().c_str());
    std::fflush(stdout);
    run.cases.push_back(std::move(result));
  }
  rmdir(context.work_dir.c_str());  // only if no log was kept

  const std::vector<TargetCheck> checks = check_targets(run);
  const std::string report = render_report(run, checks);
  std::printf("\n%s\n", report.c_str());
  if (!options.out.empty()) {
    std::ofstream file(options.out);
    file << report;
    if (!file) std::fprintf(stderr, "cannot write %s\n", options.out.c_str());
  }
  int targets_failed = 0, targets_passed = 0;
  for (const TargetCheck& check : checks) {
    targets_failed += check.verdict == Verdict::Fail;
    targets_passed += check.verdict == Verdict::Pass;
  }
  std::printf("SUMMARY cases_ok=%d cases_failed=%d cases_na=%d targets_pass=%d targets_fail=%d\n", passed,
              failed, not_applicable, targets_passed, targets_failed);
  gst_deinit();
  return failed > 0 || (options.strict && targets_failed > 0) ? 1 : 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && std::strncmp(argv[1], "--role", 6) == 0) {
    bench::RoleOptions options;
    std::string error;
    if (!bench::parse_role_options(argc, argv, options, error)) {
      bench::emit("ERROR " + bench::reason_field(error));
      return 2;
    }
    if (bench::find_transport(options.transport)->family != bench::Family::ShmxLib)
      gst_init(nullptr, nullptr);
    return options.role == "publish" ? bench::run_publisher(options) : bench::run_receiver(options);
  }
  return bench::run_controller(argc, argv);
}
