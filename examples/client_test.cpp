// SPDX-License-Identifier: MIT
// client_test: a shmx reader that prints the latest frames of server_test and reconnects when its writer goes away.
//
// Usage: client_test [NAME] [--segment NAME] [--name READER] [--duration S] [--print-every N] [--stale S]
//   NAME / --segment  segment name (default "demo")
//   --name READER     reader name shown to the writer (default "client-<pid>")
//   --duration S      stop after S seconds; 0 runs until SIGINT/SIGTERM (default 0)
//   --print-every N   print one frame in N (default 30, about once a second at 30 fps)
//   --stale S         reconnect when no frame arrived for S seconds (default 3)
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "shmx_client.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

uint64_t g_start_ns = 0;
constexpr uint64_t kMs = 1000000ull;
constexpr uint64_t kSecond = 1000000000ull;

// mingw-w64 checks "printf" against msvcrt's formats; its C99 printf (__USE_MINGW_ANSI_STDIO) is gnu_printf.
#ifdef __MINGW_PRINTF_FORMAT
#define LOG_FORMAT __MINGW_PRINTF_FORMAT
#else
#define LOG_FORMAT printf
#endif
void log_line(const char* fmt, ...) __attribute__((format(LOG_FORMAT, 1, 2)));
void log_line(const char* fmt, ...) {
  std::printf("[client %7.3f] ", static_cast<double>(shmx::monotonic_ns() - g_start_ns) / 1e9);
  va_list args;
  va_start(args, fmt);
  std::vprintf(fmt, args);
  va_end(args);
  std::printf("\n");
  std::fflush(stdout);
}

struct Options {
  std::string segment = "demo";
  std::string reader_name;
  double duration_s = 0.0;
  uint64_t print_every = 30;
  double stale_s = 3.0;
};

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [NAME] [--segment NAME] [--name READER] [--duration S] [--print-every N] [--stale S]\n",
               argv0);
}

bool parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--segment" && has_value) {
      options.segment = argv[++i];
    } else if (arg == "--name" && has_value) {
      options.reader_name = argv[++i];
    } else if (arg == "--duration" && has_value) {
      options.duration_s = std::atof(argv[++i]);
    } else if (arg == "--print-every" && has_value) {
      options.print_every = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--stale" && has_value) {
      options.stale_s = std::atof(argv[++i]);
    } else if (arg == "--help" || arg == "-h") {
      return false;
    } else if (!arg.empty() && arg[0] != '-') {
      options.segment = arg;
    } else {
      std::fprintf(stderr, "unknown or incomplete option: %s\n", arg.c_str());
      return false;
    }
  }
  if (options.print_every == 0 || options.duration_s < 0.0 || options.stale_s <= 0.0) {
    std::fprintf(stderr, "--print-every must be >= 1, --duration >= 0 and --stale > 0\n");
    return false;
  }
  if (options.reader_name.empty()) options.reader_name = "client-" + std::to_string(getpid());
  return true;
}

// Errors that mean "no live writer right now": wait and try again.
bool writer_absent(shmx::Errc code) {
  return code == shmx::Errc::NotFound || code == shmx::Errc::NotReady || code == shmx::Errc::WriterGone ||
         code == shmx::Errc::Closed;
}

class Reader {
 public:
  explicit Reader(const Options& options) : options_(options) {
    client_options_.reader_name = options.reader_name;  // HELLO (on open) and BYE (on close) carry it
    if (options.duration_s > 0) end_ns_ = g_start_ns + static_cast<uint64_t>(options.duration_s * kSecond);
  }

  int run() {
    if (!connect(/*first=*/true)) return exit_code_;
    last_frame_ns_ = next_heartbeat_ns_ = shmx::monotonic_ns();
    while (running()) {
      maybe_send_heartbeat();
      auto frame = client_.wait_next(100 * kMs);  // short slices so a signal or the deadline is noticed quickly
      if (frame && frame->session_mismatch) {
        // A new writer replaced the segment: its frames are in a new mapping, so open it again.
        log_line("writer restarted (the previous one %s): reconnecting", frame->writer_died ? "died" : "closed");
        if (!connect(/*first=*/false)) break;
        continue;
      }
      if (frame) {
        on_frame(*frame);
        continue;
      }
      const shmx::Errc code = frame.code();
      if (code == shmx::Errc::Timeout || code == shmx::Errc::NoFrame || code == shmx::Errc::Interrupted) {
        if (shmx::monotonic_ns() - last_frame_ns_ > static_cast<uint64_t>(options_.stale_s * kSecond)) {
          log_line("no frame for %.1f s: reconnecting", options_.stale_s);
          if (!connect(/*first=*/false)) break;
        }
      } else if (code == shmx::Errc::WriterGone || code == shmx::Errc::Closed) {
        log_line("writer %s: reconnecting", code == shmx::Errc::Closed ? "closed the segment" : "is gone");
        if (!connect(/*first=*/false)) break;
      } else {
        log_line("read failed (%s): reconnecting", frame.status().to_string().c_str());
        if (!connect(/*first=*/false)) break;
      }
    }
    const auto stats = client_.stats();
    client_.close();  // sends BYE and unregisters
    log_line("%s: %llu frames received, %llu skipped, %llu torn reads retried, %llu reconnects",
             g_stop ? "signal received" : "done", static_cast<unsigned long long>(stats.frames_received),
             static_cast<unsigned long long>(stats.frames_skipped), static_cast<unsigned long long>(stats.torn_reads),
             static_cast<unsigned long long>(reconnects_));
    return exit_code_;
  }

 private:
  bool running() const { return !g_stop && (end_ns_ == 0 || shmx::monotonic_ns() < end_ns_); }

  // Opens (first time) or reopens the segment, waiting for a writer as long as needed.
  bool connect(bool first) {
    const uint64_t previous_session = first ? 0 : client_.session_id();
    bool said_waiting = false;
    while (running()) {
      const shmx::Status status = first ? client_.open(options_.segment, client_options_) : client_.reopen();
      if (status) break;
      if (!writer_absent(status.code())) {
        std::fprintf(stderr, "client_test: cannot open '%s': %s\n", options_.segment.c_str(),
                     status.to_string().c_str());
        exit_code_ = 1;
        return false;
      }
      if (!said_waiting) {
        log_line("waiting for a writer on '%s' (%s)", options_.segment.c_str(), shmx::errc_name(status.code()));
        said_waiting = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!running()) return false;

    last_frame_ns_ = shmx::monotonic_ns();
    print_next_ = true;
    if (first) {
      log_line("connected to '%s' as '%s': session %016llx, %u slots", options_.segment.c_str(),
               options_.reader_name.c_str(), static_cast<unsigned long long>(client_.session_id()),
               client_.slot_count());
    } else {
      ++reconnects_;
      log_line("reconnected to '%s': session %016llx (was %016llx)", options_.segment.c_str(),
               static_cast<unsigned long long>(client_.session_id()),
               static_cast<unsigned long long>(previous_session));
    }
    print_metadata();
    return true;
  }

  void print_metadata() {
    auto metadata = client_.metadata();
    if (!metadata) {
      log_line("metadata unavailable: %s", metadata.status().to_string().c_str());
      return;
    }
    for (size_t i = 0; i < metadata->streams.size(); ++i) {
      const auto& stream = metadata->streams[i];
      log_line("  stream %zu: %s (%s) %s", i, stream.name.c_str(), stream.type.c_str(), stream.layout.c_str());
    }
  }

  void maybe_send_heartbeat() {
    const uint64_t now = shmx::monotonic_ns();
    if (now < next_heartbeat_ns_) return;
    next_heartbeat_ns_ = now + kSecond;
    const shmx::Status status = client_.send_heartbeat();
    if (!status) log_line("heartbeat not sent: %s", status.to_string().c_str());
  }

  void on_frame(const shmx::FrameView& frame) {
    last_frame_ns_ = shmx::monotonic_ns();
    if (frame.eos()) {
      log_line("frame %llu: end of stream", static_cast<unsigned long long>(frame.header.frame_id));
      return;
    }
    const bool print = print_next_ || ++frames_seen_ % options_.print_every == 0 || frame.skipped != 0;
    print_next_ = false;
    if (!print) return;

    std::string values;
    shmx::TlvView tlv;
    if (frame.stream_data(0, tlv) && tlv.length == sizeof(uint64_t)) {
      uint64_t tick = 0;
      std::memcpy(&tick, tlv.value, sizeof(tick));
      values += "tick=" + std::to_string(tick);
    } else if (frame.stream_data(0, tlv)) {
      values += "stream0=" + std::to_string(tlv.length) + " bytes";
    }
    if (frame.stream_data(1, tlv) && tlv.length == sizeof(double)) {
      double sim_time = 0;
      std::memcpy(&sim_time, tlv.value, sizeof(sim_time));
      char text[48];
      std::snprintf(text, sizeof(text), " sim_time=%.3fs", sim_time);
      values += text;
    }
    const double age_ms = static_cast<double>(last_frame_ns_ - frame.header.publish_ns) / 1e6;
    log_line("frame %llu: %s skipped=%llu age=%.3fms", static_cast<unsigned long long>(frame.header.frame_id),
             values.c_str(), static_cast<unsigned long long>(frame.skipped), age_ms);
  }

  const Options& options_;
  shmx::ClientOptions client_options_;
  shmx::Client client_;
  uint64_t end_ns_ = 0;
  uint64_t last_frame_ns_ = 0;
  uint64_t next_heartbeat_ns_ = 0;
  uint64_t frames_seen_ = 0;
  bool print_next_ = false;  // the first frame after a (re)connect is always printed
  uint64_t reconnects_ = 0;
  int exit_code_ = 0;
};

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
  Reader reader(options);
  return reader.run();
}
