// SPDX-License-Identifier: MIT
// shmx-inspect: lists shmx segments and shows one: layout version, session, streams with their caps and
// layout, frame rate, latest frame age, and every reader. It maps segments read-only and writes nothing.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shmx_inspect.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;

constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

void usage(FILE* out) {
  std::fprintf(out,
               "usage: shmx-inspect [--json] [--watch [SECONDS]] [SEGMENT]\n"
               "  no SEGMENT: list every shmx segment on this machine (writer, streams, readers, rate)\n"
               "  SEGMENT:    show its layout version, session, streams with caps and layout, frame rate,\n"
               "              latest frame age and every reader\n"
               "  --json:     machine-readable output (one JSON document per refresh)\n"
               "  --watch:    refresh every SECONDS (default 1) until Ctrl-C\n"
               "It only reads segments: writers and readers are never disturbed.\n"
               "Exit status: 0 shown, 1 the segment cannot be shown (not found, corrupt...), 2 bad usage.\n");
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

// What a segment that cannot be shown means to the user, and what to do about it.
std::string explain(const shmx::Status& status) {
  switch (status.code()) {
    case shmx::Errc::NotFound:
      return status.message() + " (list them with: shmx-inspect)";
    case shmx::Errc::WriterGone:
      return status.message() + "; stale: a new writer of that name reclaims it";
    case shmx::Errc::Corrupt:
    case shmx::Errc::NotShmx:
      return "corrupt: " + status.message() + "; a new writer of that name replaces it";
    case shmx::Errc::VersionMismatch:
      return status.message() + " (made by another shmx version)";
    default:
      return status.message();
  }
}

const char* code_word(shmx::Errc code) {
  switch (code) {
    case shmx::Errc::NotFound: return "not-found";
    case shmx::Errc::WriterGone: return "writer-gone";
    case shmx::Errc::Corrupt: return "corrupt";
    case shmx::Errc::NotShmx: return "not-shmx";
    case shmx::Errc::VersionMismatch: return "version-mismatch";
    case shmx::Errc::Closed: return "closed";
    case shmx::Errc::NotReady: return "not-ready";
    case shmx::Errc::PermissionDenied: return "permission-denied";
    case shmx::Errc::InvalidName: return "invalid-name";
    default: return "error";
  }
}

// One segment as shown: a snapshot, or why there is none, and the frame rate between two snapshots.
struct Entry {
  std::string name;
  shmx::Result<shmx::SegmentSnapshot> snap = shmx::Status(shmx::Errc::NotFound, "not sampled");
  double fps = 0;
};

// Snapshots every segment twice, a quarter second apart (one wait for all of them). The frame rate is
// the frames published between the two latest frames seen over the time between their publish times
// (exact for a steady writer, whatever the window), or over the window when fewer than two arrived.
std::vector<Entry> sample(const std::vector<std::string>& names) {
  struct First {
    uint64_t session = 0, frame_id = 0, publish_ns = 0;
  };
  std::vector<First> first(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    auto snap = shmx::inspect_segment(names[i]);
    if (snap) first[i] = {snap->session_id, snap->latest_frame_id, snap->latest_publish_ns};
  }
  const uint64_t t0 = shmx::monotonic_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  const uint64_t window = shmx::monotonic_ns() - t0;
  std::vector<Entry> entries;
  for (size_t i = 0; i < names.size(); ++i) {
    Entry e;
    e.name = names[i];
    e.snap = shmx::inspect_segment(names[i]);
    if (e.snap && e.snap->session_id == first[i].session && e.snap->latest_frame_id > first[i].frame_id) {
      const uint64_t frames = e.snap->latest_frame_id - first[i].frame_id;
      const uint64_t span = e.snap->latest_publish_ns > first[i].publish_ns && first[i].frame_id != 0 && frames >= 2
                                ? e.snap->latest_publish_ns - first[i].publish_ns
                                : window;
      e.fps = static_cast<double>(frames) * 1e9 / static_cast<double>(span);
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

std::string writer_words(const shmx::SegmentSnapshot& s) {
  return std::to_string(s.writer_pid) + (s.writer_alive ? " alive" : " gone");
}

std::string stream_names(const shmx::SegmentSnapshot& s) {
  std::string out;
  for (const auto& st : s.metadata.streams) out += (out.empty() ? "" : ",") + st.name;
  return out.empty() ? "-" : out;
}

void print_list(const std::vector<Entry>& entries) {
  if (entries.empty()) {
    std::printf("no shmx segments\n");
    return;
  }
  std::printf("%-24s %-14s %-24s %7s %9s %12s\n", "SEGMENT", "WRITER", "STREAMS", "READERS", "FRAMES/S", "LATEST AGE");
  for (const Entry& e : entries) {
    if (!e.snap) {
      std::printf("%-24s %s\n", e.name.c_str(), explain(e.snap.status()).c_str());
      continue;
    }
    const auto& s = *e.snap;
    char age[32] = "-";
    if (s.latest_frame_id) std::snprintf(age, sizeof age, "%.1f ms", ms(s.latest_frame_age_ns));
    std::printf("%-24s %-14s %-24s %7zu %9.1f %12s\n", s.name.c_str(), writer_words(s).c_str(),
                stream_names(s).c_str(), s.readers.size(), e.fps, age);
    if (!s.writer_alive)
      std::printf("%-24s   stale: its writer died without closing it; a new writer of that name reclaims it\n", "");
  }
}

void print_text(const shmx::SegmentSnapshot& s, double fps) {
  std::printf("segment %s  layout version %u  session %016" PRIx64 "\n", s.name.c_str(), s.layout_version,
              s.session_id);
  if (s.writer_alive)
    std::printf("  writer pid %u alive, heartbeat %.0f ms ago\n", s.writer_pid, ms(s.writer_heartbeat_age_ns));
  else
    std::printf("  writer pid %u GONE: it died without closing the segment (stale); a new writer of that name "
                "reclaims it\n",
                s.writer_pid);
  std::printf("  %u slots x %" PRIu64 " bytes, %" PRIu64 " bytes in all; loaned %u, held by readers %u\n", s.slot_count,
              s.slot_payload_capacity, s.total_size, s.slots_loaned, s.slots_held);
  std::printf("  frames: %" PRIu64 " committed, %.1f frames/s, %" PRIu64 " loans refused (no free slot)\n",
              s.frames_committed, fps, s.loans_refused);
  if (s.latest_frame_id)
    std::printf("  latest frame %" PRIu64 ", %.1f ms old\n", s.latest_frame_id, ms(s.latest_frame_age_ns));
  else
    std::printf("  no frame published yet\n");
  std::printf("  metadata generation %" PRIu64 ", %zu stream(s)\n", s.metadata.generation, s.metadata.streams.size());
  for (size_t i = 0; i < s.metadata.streams.size(); ++i) {
    const auto& st = s.metadata.streams[i];
    std::printf("    [%zu] %s\n        type: %s\n", i, st.name.c_str(), st.type.c_str());
    if (!st.layout.empty()) std::printf("        layout: %s\n", st.layout.c_str());
    for (const auto& c : st.components) std::printf("        component %s x%u\n", c.name.c_str(), c.count);
  }
  std::printf("  readers: %zu of %u (stale after %u ms without heartbeat)\n", s.readers.size(), s.reader_capacity,
              s.reader_timeout_ms);
  for (const auto& r : s.readers) {
    const uint64_t behind = s.latest_frame_id > r.last_frame_id ? s.latest_frame_id - r.last_frame_id : 0;
    const char* state = !r.alive ? "  GONE (its process exited or let go; the writer reaps it)" : r.stale ? "  STALE (no heartbeat)" : "";
    std::printf("    [%u] %s  pid %u%s\n", r.index, r.name.c_str(), r.pid, state);
    std::printf("        heartbeat %.0f ms ago, last frame %" PRIu64 " (%" PRIu64 " behind), received %" PRIu64
                ", skipped %" PRIu64 ", holding %u slot(s)\n",
                ms(r.heartbeat_age_ns), r.last_frame_id, behind, r.frames_received, r.frames_skipped, r.held_slots);
    std::printf("        control ring %u of %u bytes used, %" PRIu64 " message(s) dropped\n", r.control_ring_used,
                r.control_ring_capacity, r.control_dropped);
  }
}

void print_json(const shmx::SegmentSnapshot& s, double fps) {
  std::printf("{\"segment\":%s,\"layout_version\":%u,\"session_id\":\"%016" PRIx64
              "\",\"writer_pid\":%u,\"writer_alive\":%s,\"stale\":%s,\"writer_heartbeat_age_ms\":%.1f,",
              json_string(s.name).c_str(), s.layout_version, s.session_id, s.writer_pid,
              s.writer_alive ? "true" : "false", s.writer_alive ? "false" : "true", ms(s.writer_heartbeat_age_ns));
  std::printf("\"slot_count\":%u,\"slot_payload_capacity\":%" PRIu64 ",\"total_size\":%" PRIu64
              ",\"slots_loaned\":%u,\"slots_held\":%u,",
              s.slot_count, s.slot_payload_capacity, s.total_size, s.slots_loaned, s.slots_held);
  std::printf("\"frames_committed\":%" PRIu64 ",\"loans_refused\":%" PRIu64 ",\"fps\":%.2f,\"latest_frame_id\":%" PRIu64
              ",\"latest_frame_age_ms\":%.3f,",
              s.frames_committed, s.loans_refused, fps, s.latest_frame_id, ms(s.latest_frame_age_ns));
  std::printf("\"generation\":%" PRIu64 ",\"streams\":[", s.metadata.generation);
  for (size_t i = 0; i < s.metadata.streams.size(); ++i) {
    const auto& st = s.metadata.streams[i];
    std::printf("%s{\"index\":%zu,\"name\":%s,\"type\":%s,\"layout\":%s}", i ? "," : "", i,
                json_string(st.name).c_str(), json_string(st.type).c_str(), json_string(st.layout).c_str());
  }
  std::printf("],\"reader_capacity\":%u,\"reader_timeout_ms\":%u,\"readers\":[", s.reader_capacity,
              s.reader_timeout_ms);
  for (size_t i = 0; i < s.readers.size(); ++i) {
    const auto& r = s.readers[i];
    const uint64_t behind = s.latest_frame_id > r.last_frame_id ? s.latest_frame_id - r.last_frame_id : 0;
    std::printf("%s{\"index\":%u,\"name\":%s,\"pid\":%u,\"alive\":%s,\"stale\":%s,\"heartbeat_age_ms\":%.1f,"
                "\"last_frame_id\":%" PRIu64 ",\"frames_behind\":%" PRIu64 ",\"frames_received\":%" PRIu64
                ",\"frames_skipped\":%" PRIu64 ",\"held_slots\":%u,\"control_ring_used\":%u,"
                "\"control_ring_capacity\":%u,\"control_dropped\":%" PRIu64 "}",
                i ? "," : "", r.index, json_string(r.name).c_str(), r.pid, r.alive ? "true" : "false",
                r.stale ? "true" : "false", ms(r.heartbeat_age_ns), r.last_frame_id, behind, r.frames_received,
                r.frames_skipped, r.held_slots, r.control_ring_used, r.control_ring_capacity, r.control_dropped);
  }
  std::printf("]}");
}

void print_json_error(const std::string& name, const shmx::Status& status) {
  std::printf("{\"segment\":%s,\"error\":%s,\"message\":%s}", json_string(name).c_str(),
              json_string(code_word(status.code())).c_str(), json_string(explain(status)).c_str());
}

int show_all(bool json) {
  std::vector<Entry> entries = sample(shmx::list_segments());
  // A segment removed between listing and sampling (its writer stopped) is simply not there any more.
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [](const Entry& e) { return !e.snap && e.snap.code() == shmx::Errc::NotFound; }),
                entries.end());
  if (!json) {
    print_list(entries);
    return kExitOk;
  }
  std::printf("[");
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) std::printf(",");
    if (entries[i].snap) print_json(*entries[i].snap, entries[i].fps);
    else print_json_error(entries[i].name, entries[i].snap.status());
  }
  std::printf("]\n");
  return kExitOk;
}

int show_one(const std::string& name, bool json) {
  std::vector<Entry> entries = sample({name});
  const Entry& e = entries.front();
  if (!e.snap) {
    if (json) {
      print_json_error(name, e.snap.status());
      std::printf("\n");
    }
    std::fprintf(stderr, "shmx-inspect: %s\n", explain(e.snap.status()).c_str());
    return kExitError;
  }
  if (json) {
    print_json(*e.snap, e.fps);
    std::printf("\n");
  } else {
    print_text(*e.snap, e.fps);
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double watch = 0;
  std::string name;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--watch") {
      watch = 1;
      if (i + 1 < argc && std::atof(argv[i + 1]) > 0) watch = std::atof(argv[++i]);
    } else if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return kExitOk;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "shmx-inspect: unknown option '%s'\n", arg.c_str());
      usage(stderr);
      return kExitUsage;
    } else if (!name.empty()) {
      std::fprintf(stderr, "shmx-inspect: one segment at a time ('%s' and '%s' given)\n", name.c_str(), arg.c_str());
      return kExitUsage;
    } else {
      name = arg;
    }
  }
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  int rc = kExitOk;
  do {
    if (watch > 0 && !json) std::printf("\033[H\033[2J");
    rc = name.empty() ? show_all(json) : show_one(name, json);
    std::fflush(stdout);
    // Sliced so that Ctrl-C ends the watch at once.
    for (double waited = 0; watch > 0 && !g_stop && waited < watch; waited += 0.05)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (watch > 0 && !g_stop);
  return rc;
}
