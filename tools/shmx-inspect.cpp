// SPDX-License-Identifier: MIT
// shmx-inspect: lists shmx segments and shows one: streams, caps, session, rate, latest frame age, readers.
#include <unistd.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "shmx_inspect.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;

void usage() {
  std::printf(
      "usage: shmx-inspect [--json] [--watch [SECONDS]] [SEGMENT]\n"
      "  no SEGMENT: list every shmx segment on this machine\n"
      "  SEGMENT:    show its streams, session, frame rate, latest frame age and readers\n"
      "  --json:     machine-readable output\n"
      "  --watch:    refresh every SECONDS (default 1) until Ctrl-C\n");
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

// Two snapshots a quarter second apart give the frame rate.
shmx::Result<shmx::SegmentSnapshot> sample(const std::string& name, double& fps) {
  auto first = shmx::inspect_segment(name);
  if (!first) return first;
  const uint64_t t0 = shmx::monotonic_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  auto second = shmx::inspect_segment(name);
  if (!second || second->session_id != first->session_id) {
    fps = 0;
    return second;
  }
  fps = static_cast<double>(second->frames_committed - first->frames_committed) * 1e9 /
        static_cast<double>(shmx::monotonic_ns() - t0);
  return second;
}

void print_text(const shmx::SegmentSnapshot& s, double fps) {
  std::printf("segment %s  session %016" PRIx64 "  writer pid %u (%s)\n", s.name.c_str(), s.session_id, s.writer_pid,
              s.writer_alive ? "alive" : "gone");
  std::printf("  %u slots x %" PRIu64 " bytes, %" PRIu64 " bytes total; loaned %u, held by readers %u\n", s.slot_count,
              s.slot_payload_capacity, s.total_size, s.slots_loaned, s.slots_held);
  std::printf("  frames %" PRIu64 " committed, %" PRIu64 " loans refused (no free slot); %.1f frames/s; latest frame %" PRIu64
              " age %.1f ms\n",
              s.frames_committed, s.loans_refused, fps, s.latest_frame_id, ms(s.latest_frame_age_ns));
  std::printf("  metadata generation %" PRIu64 ", %zu stream(s)\n", s.metadata.generation, s.metadata.streams.size());
  for (size_t i = 0; i < s.metadata.streams.size(); ++i) {
    const auto& st = s.metadata.streams[i];
    std::printf("    [%zu] %s  type: %s\n", i, st.name.c_str(), st.type.c_str());
    if (!st.layout.empty()) std::printf("        layout: %s\n", st.layout.c_str());
    for (const auto& c : st.components) std::printf("        component %s x%u\n", c.name.c_str(), c.count);
  }
  std::printf("  readers %zu of %u\n", s.readers.size(), s.reader_capacity);
  for (const auto& r : s.readers) {
    const uint64_t behind = s.latest_frame_id > r.last_frame_id ? s.latest_frame_id - r.last_frame_id : 0;
    std::printf("    [%u] %-20s pid %-7u heartbeat %.0f ms ago  last frame %" PRIu64 " (%" PRIu64
                " behind)  received %" PRIu64 "  skipped %" PRIu64 "  holding %u%s\n",
                r.index, r.name.c_str(), r.pid, ms(r.heartbeat_age_ns), r.last_frame_id, behind, r.frames_received,
                r.frames_skipped, r.held_slots, r.alive ? "" : "  (process gone)");
  }
}

void print_json(const shmx::SegmentSnapshot& s, double fps) {
  std::printf("{\"segment\":%s,\"session_id\":\"%016" PRIx64 "\",\"writer_pid\":%u,\"writer_alive\":%s,",
              json_string(s.name).c_str(), s.session_id, s.writer_pid, s.writer_alive ? "true" : "false");
  std::printf("\"slot_count\":%u,\"slot_payload_capacity\":%" PRIu64 ",\"total_size\":%" PRIu64 ",", s.slot_count,
              s.slot_payload_capacity, s.total_size);
  std::printf("\"frames_committed\":%" PRIu64 ",\"loans_refused\":%" PRIu64 ",\"fps\":%.2f,\"latest_frame_id\":%" PRIu64
              ",\"latest_frame_age_ms\":%.3f,",
              s.frames_committed, s.loans_refused, fps, s.latest_frame_id, ms(s.latest_frame_age_ns));
  std::printf("\"generation\":%" PRIu64 ",\"streams\":[", s.metadata.generation);
  for (size_t i = 0; i < s.metadata.streams.size(); ++i) {
    const auto& st = s.metadata.streams[i];
    std::printf("%s{\"name\":%s,\"type\":%s,\"layout\":%s}", i ? "," : "", json_string(st.name).c_str(),
                json_string(st.type).c_str(), json_string(st.layout).c_str());
  }
  std::printf("],\"readers\":[");
  for (size_t i = 0; i < s.readers.size(); ++i) {
    const auto& r = s.readers[i];
    const uint64_t behind = s.latest_frame_id > r.last_frame_id ? s.latest_frame_id - r.last_frame_id : 0;
    std::printf("%s{\"index\":%u,\"name\":%s,\"pid\":%u,\"alive\":%s,\"heartbeat_age_ms\":%.1f,\"last_frame_id\":%" PRIu64
                ",\"frames_behind\":%" PRIu64 ",\"frames_received\":%" PRIu64 ",\"frames_skipped\":%" PRIu64
                ",\"held_slots\":%u}",
                i ? "," : "", r.index, json_string(r.name).c_str(), r.pid, r.alive ? "true" : "false",
                ms(r.heartbeat_age_ns), r.last_frame_id, behind, r.frames_received, r.frames_skipped, r.held_slots);
  }
  std::printf("]}\n");
}

int show_all(bool json) {
  auto names = shmx::list_segments();
  if (json) std::printf("[");
  else if (names.empty()) std::printf("no shmx segments\n");
  bool first = true;
  for (const auto& name : names) {
    double fps = 0;
    auto snap = sample(name, fps);
    if (json) {
      if (!first) std::printf(",");
      if (snap) print_json(*snap, fps);
      else std::printf("{\"segment\":%s,\"error\":%s}", json_string(name).c_str(),
                       json_string(snap.status().to_string()).c_str());
    } else if (snap) {
      print_text(*snap, fps);
    } else {
      std::printf("segment %s: %s\n", name.c_str(), snap.status().to_string().c_str());
    }
    first = false;
  }
  if (json) std::printf("]\n");
  return 0;
}

int show_one(const std::string& name, bool json) {
  double fps = 0;
  auto snap = sample(name, fps);
  if (!snap) {
    std::fprintf(stderr, "shmx-inspect: %s\n", snap.status().to_string().c_str());
    return 1;
  }
  json ? print_json(*snap, fps) : print_text(*snap, fps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double watch = 0;
  std::string name;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") json = true;
    else if (arg == "--watch") {
      watch = 1;
      if (i + 1 < argc && std::atof(argv[i + 1]) > 0) watch = std::atof(argv[++i]);
    } else if (arg == "-h" || arg == "--help") {
      usage();
      return 0;
    } else if (!arg.empty() && arg[0] == '-') {
      usage();
      return 2;
    } else name = arg;
  }
  std::signal(SIGINT, [](int) { g_stop = 1; });
  int rc = 0;
  do {
    if (watch > 0 && !json) std::printf("\033[H\033[2J");
    rc = name.empty() ? show_all(json) : show_one(name, json);
    std::fflush(stdout);
    if (watch > 0) std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(watch * 1000)));
  } while (watch > 0 && !g_stop);
  return rc;
}
