// SPDX-License-Identifier: MIT
// server_test: a shmx writer that publishes a tick counter and a simulation time at a fixed rate and logs its readers.
//
// Usage: server_test [NAME] [--segment NAME] [--fps N] [--duration S] [--verbose]
//   NAME / --segment  segment name (default "demo", i.e. /dev/shm/shmx.demo)
//   --fps N           frames per second (default 30)
//   --duration S      stop after S seconds; 0 runs until SIGINT/SIGTERM (default 0)
//   --verbose         also log every HEARTBEAT message
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "shmx_server.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

bool g_verbose = false;
uint64_t g_start_ns = 0;

// One log line, prefixed with seconds since start; flushed so pipes see it at once.
// mingw-w64 checks "printf" against msvcrt's formats; its C99 printf (__USE_MINGW_ANSI_STDIO) is gnu_printf.
#ifdef __MINGW_PRINTF_FORMAT
#define LOG_FORMAT __MINGW_PRINTF_FORMAT
#else
#define LOG_FORMAT printf
#endif
void log_line(const char* fmt, ...) __attribute__((format(LOG_FORMAT, 1, 2)));
void log_line(const char* fmt, ...) {
  std::printf("[server %7.3f] ", static_cast<double>(shmx::monotonic_ns() - g_start_ns) / 1e9);
  va_list args;
  va_start(args, fmt);
  std::vprintf(fmt, args);
  va_end(args);
  std::printf("\n");
  std::fflush(stdout);
}

struct Options {
  std::string segment = "demo";
  double fps = 30.0;
  double duration_s = 0.0;
};

void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [NAME] [--segment NAME] [--fps N] [--duration S] [--verbose]\n", argv0);
}

bool parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--segment" && has_value) {
      options.segment = argv[++i];
    } else if (arg == "--fps" && has_value) {
      options.fps = std::atof(argv[++i]);
    } else if (arg == "--duration" && has_value) {
      options.duration_s = std::atof(argv[++i]);
    } else if (arg == "--verbose" || arg == "-v") {
      g_verbose = true;
    } else if (arg == "--help" || arg == "-h") {
      return false;
    } else if (!arg.empty() && arg[0] != '-') {
      options.segment = arg;
    } else {
      std::fprintf(stderr, "unknown or incomplete option: %s\n", arg.c_str());
      return false;
    }
  }
  if (options.fps <= 0.0 || options.fps > 10000.0 || options.duration_s < 0.0) {
    std::fprintf(stderr, "--fps must be in (0, 10000] and --duration >= 0\n");
    return false;
  }
  return true;
}

// Stream 0 carries the tick counter, stream 1 the simulation time in seconds.
std::vector<shmx::StreamInfo> demo_streams() {
  shmx::StreamInfo tick;
  tick.name = "tick";
  tick.type = "u64";
  tick.layout = "one little-endian uint64: frames published since start";
  tick.components = {{"tick", shmx::DType::U64, 1}};
  shmx::StreamInfo sim_time;
  sim_time.name = "sim_time";
  sim_time.type = "f64";
  sim_time.layout = "one little-endian double: simulation time in seconds";
  sim_time.components = {{"sim_time", shmx::DType::F64, 1}};
  return {tick, sim_time};
}

// Fills a loaned slot in place (the zero-copy path) and commits it.
shmx::Result<uint64_t> publish_frame(shmx::Server& server, uint64_t tick, double sim_time_s) {
  auto loan = server.loan();
  if (!loan) return loan.status();
  shmx::Status status = loan->tlvs().append(shmx::kTlvStreamData, 0, &tick, sizeof(tick));
  if (status) status = loan->tlvs().append(shmx::kTlvStreamData, 1, &sim_time_s, sizeof(sim_time_s));
  if (!status) {
    server.abandon(std::move(*loan));
    return status;
  }
  shmx::FrameInfo info;
  info.timestamp_ns = static_cast<uint64_t>(sim_time_s * 1e9);
  return server.commit(std::move(*loan), info);
}

void handle_control(const shmx::ControlMessage& message) {
  switch (message.type) {
    case shmx::kTlvHello:
      log_line("reader connected: %s pid %u (slot %u)", message.reader_name.c_str(), message.pid,
               message.reader_index);
      break;
    case shmx::kTlvHeartbeat:
      if (g_verbose) log_line("heartbeat: %s pid %u", message.reader_name.c_str(), message.pid);
      break;
    case shmx::kTlvBye:
      log_line("reader bye: %s pid %u", message.reader_name.c_str(), message.pid);
      break;
    default:
      log_line("message 0x%04x from %s pid %u (%zu bytes)", message.type, message.reader_name.c_str(),
               message.pid, message.value.size());
      break;
  }
}

void log_status(shmx::Server& server, uint64_t frames_in_period, double period_s, uint64_t latest_frame_id) {
  const auto readers = server.readers();
  const auto stats = server.stats();
  std::string list;
  for (const auto& reader : readers) {
    const uint64_t behind = latest_frame_id > reader.last_frame_id ? latest_frame_id - reader.last_frame_id : 0;
    char entry[160];
    std::snprintf(entry, sizeof(entry), "%s%s(pid %u, behind %llu, skipped %llu)", list.empty() ? "" : ", ",
                  reader.name.c_str(), reader.pid, static_cast<unsigned long long>(behind),
                  static_cast<unsigned long long>(reader.frames_skipped));
    list += entry;
  }
  log_line("%.1f frames/s, frame %llu, dropped %llu, %zu reader(s)%s%s", frames_in_period / period_s,
           static_cast<unsigned long long>(latest_frame_id), static_cast<unsigned long long>(stats.loans_refused),
           readers.size(), readers.empty() ? "" : ": ", list.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_args(argc, argv, options)) {
    usage(argv[0]);
    return 2;
  }
  g_start_ns = shmx::monotonic_ns();

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  shmx::ServerOptions server_options;
  server_options.slot_count = 4;
  server_options.slot_payload_capacity = 4096;  // two 8-byte values need far less; 4 KiB is the minimum page
  server_options.reader_timeout_ms = 3000;
  auto created = shmx::Server::create(options.segment, server_options, demo_streams());
  if (!created) {
    std::fprintf(stderr, "server_test: cannot create segment '%s': %s\n", options.segment.c_str(),
                 created.status().to_string().c_str());
    return 1;
  }
  shmx::Server server = std::move(created).value();
  log_line("segment '%s' created: session %016llx, %u slots, %.1f fps%s", options.segment.c_str(),
           static_cast<unsigned long long>(server.session_id()), server.slot_count(), options.fps,
           options.duration_s > 0 ? "" : " (Ctrl-C to stop)");

  const uint64_t period_ns = static_cast<uint64_t>(1e9 / options.fps);
  const uint64_t end_ns = options.duration_s > 0 ? g_start_ns + static_cast<uint64_t>(options.duration_s * 1e9) : 0;
  uint64_t next_frame_ns = shmx::monotonic_ns();
  uint64_t next_report_ns = next_frame_ns + 1000000000ull;
  uint64_t report_start_ns = next_frame_ns;
  uint64_t tick = 0, frames_in_period = 0, latest_frame_id = 0;
  int exit_code = 0;

  while (!g_stop && (end_ns == 0 || shmx::monotonic_ns() < end_ns)) {
    const double sim_time_s = static_cast<double>(tick) / options.fps;
    auto committed = publish_frame(server, tick, sim_time_s);
    if (committed) {
      latest_frame_id = *committed;
      ++frames_in_period;
    } else if (committed.code() != shmx::Errc::NoFreeSlot) {  // NoFreeSlot: readers hold every slot; skip a frame
      std::fprintf(stderr, "server_test: publish failed: %s\n", committed.status().to_string().c_str());
      exit_code = 1;
      break;
    }
    ++tick;

    server.poll_control(handle_control);
    for (const auto& reaped : server.reap_stale_readers()) {
      log_line("reader reaped: %s pid %u (%s)", reaped.name.c_str(), reaped.pid,
               reaped.alive ? "heartbeat too old" : "process gone");
    }

    const uint64_t now = shmx::monotonic_ns();
    if (now >= next_report_ns) {
      log_status(server, frames_in_period, static_cast<double>(now - report_start_ns) / 1e9, latest_frame_id);
      frames_in_period = 0;
      report_start_ns = now;
      next_report_ns += 1000000000ull;
    }

    // Absolute deadlines keep the rate exact; after a stall, restart the schedule instead of bursting.
    next_frame_ns += period_ns;
    const uint64_t after = shmx::monotonic_ns();
    if (next_frame_ns > after) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(next_frame_ns - after));
    } else {
      next_frame_ns = after;
    }
  }

  const auto stats = server.stats();
  server.close();  // marks the segment closed (readers see Closed) and removes /dev/shm/shmx.<name>
  log_line("%s: %llu frames committed, %llu dropped; segment closed", g_stop ? "signal received" : "done",
           static_cast<unsigned long long>(stats.frames_committed),
           static_cast<unsigned long long>(stats.loans_refused));
  return exit_code;
}
