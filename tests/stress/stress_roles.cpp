// SPDX-License-Identifier: MIT
// The child processes of the stress suites (see stress_roles.h).
#include "stress_roles.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <deque>

#include "stress_support.h"

namespace shmx_stress {
namespace {

using shmx::Errc;

struct Child {
  RoleArgs args;
  ProbeTable probes;
  Probe* probe = nullptr;
  Rng rng{0};
  std::string name;

  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = args.find(key);
    return it == args.end() ? fallback : it->second;
  }
  uint64_t num(const std::string& key, uint64_t fallback) const {
    auto it = args.find(key);
    return it == args.end() ? fallback : std::strtoull(it->second.c_str(), nullptr, 0);
  }
  void phase(Phase p) const { probe->phase.store(p, std::memory_order_relaxed); }
};

bool is_reconnect_error(Errc code) {
  return code == Errc::NotFound || code == Errc::NotReady || code == Errc::WriterGone || code == Errc::Closed;
}

void note_unexpected(Child& c, const shmx::Status& st, const char* during) {
  c.probe->unexpected.fetch_add(1, std::memory_order_relaxed);
  c.probe->last_error_code.store(static_cast<uint64_t>(st.code()), std::memory_order_relaxed);
  std::fprintf(stderr, "[pid %d] unexpected error during %s: %s\n", static_cast<int>(getpid()), during,
               st.to_string().c_str());
}

// ------------------------------------------------------------------ writer

void count_ring_resets(shmx::LogLevel level, const char* message, void* user) {
  if (level == shmx::LogLevel::Warning && std::strstr(message, "control ring"))
    static_cast<Probe*>(user)->ring_resets.fetch_add(1, std::memory_order_relaxed);
}

struct FrameWriter {
  shmx::Server& server;
  Child& c;
  uint64_t next_id = 1;
  uint64_t last_commit_ns = now_ns();
  uint64_t stall_start_ns = 0;

  // One frame: loan, fill (optionally slowly), commit. Returns false on a failure.
  bool frame(uint32_t max_length, unsigned slow_percent) {
    c.phase(kPhaseLoan);
    auto loan = server.loan();
    if (!loan) {
      c.phase(kPhaseIdle);
      if (loan.code() != Errc::NoFreeSlot) {
        probe_fail(*c.probe, "loan failed: " + loan.status().to_string());
        return false;
      }
      c.probe->no_free_slot.fetch_add(1, std::memory_order_relaxed);
      note_gap();
      return true;
    }
    c.phase(kPhaseFill);
    const uint32_t length = static_cast<uint32_t>(c.rng.range(0, max_length));
    auto dst =
        loan->tlvs().reserve(shmx::kTlvStreamData, 0, length + kFrameOverhead, shmx::kPayloadAlignment);
    if (!dst) {
      probe_fail(*c.probe, "reserve failed: " + dst.status().to_string());
      return false;
    }
    if (c.rng.chance(slow_percent)) sleep_ns(c.rng.range(10'000, 300'000));
    encode_frame(*dst, next_id, server.session_id(), length, static_cast<uint32_t>(c.rng.next()));
    if (c.rng.chance(slow_percent)) sleep_ns(c.rng.range(10'000, 300'000));
    c.phase(kPhaseCommit);
    auto id = server.commit(std::move(loan).value(), shmx::FrameInfo{now_ns(), 0});
    c.phase(kPhaseIdle);
    if (!id) {
      probe_fail(*c.probe, "commit failed: " + id.status().to_string());
      return false;
    }
    if (*id != next_id) {
      probe_fail(*c.probe,
                 "commit returned frame id " + std::to_string(*id) + ", expected " + std::to_string(next_id));
      return false;
    }
    ++next_id;
    c.probe->frames.fetch_add(1, std::memory_order_relaxed);
    note_gap();
    last_commit_ns = now_ns();
    return true;
  }

  void note_gap() {
    const uint64_t gap = now_ns() - last_commit_ns;
    if (gap > c.probe->max_gap_ns.load(std::memory_order_relaxed))
      c.probe->max_gap_ns.store(gap, std::memory_order_relaxed);
  }
};

int run_writer(Child& c) {
  const std::string mode = c.get("mode", "steady");
  const bool tolerant = c.num("tolerant", 0) != 0;
  shmx::set_log_handler(count_ring_resets, c.probe);
  shmx::ServerOptions options;
  options.slot_count = static_cast<uint32_t>(c.num("slots", 8));
  options.slot_payload_capacity = 64 * 1024;
  options.reader_capacity = 16;
  options.control_ring_capacity = 4096;
  options.metadata_capacity = 64 * 1024;
  options.reader_timeout_ms = 3000;
  // Precomputed metadata versions, so that a metadata-mode writer spends its time inside set_metadata.
  std::vector<std::vector<shmx::StreamInfo>> versions;
  for (uint64_t v = 1; v <= (mode == "metadata" ? 16 : 1); ++v) versions.push_back(make_metadata(v, 6));

  c.phase(kPhaseCreate);
  auto created = shmx::Server::create(c.name, options, versions[0]);
  if (!created) {
    probe_fail(*c.probe, "Server::create failed: " + created.status().to_string());
    return kRoleSetupFailed;
  }
  shmx::Server server = std::move(created).value();
  c.phase(kPhaseIdle);
  c.probe->ready.store(1, std::memory_order_release);

  FrameWriter writer{server, c};
  const auto on_message = [&](const shmx::ControlMessage& m) {
    c.probe->messages.fetch_add(1, std::memory_order_relaxed);
    if (m.type == shmx::kTlvHello || m.type == shmx::kTlvHeartbeat || m.type == shmx::kTlvBye) return;
    if (m.type == kTlvStressControl && check_control(m.value)) return;
    if (!tolerant)
      probe_fail(*c.probe, "control message of type " + std::to_string(m.type) + " and " +
                               std::to_string(m.value.size()) + " bytes from reader '" + m.reader_name +
                               "' fails its checksum");
  };
  const auto drain = [&] {
    c.phase(kPhaseControl);
    server.poll_control(on_message);
    c.probe->reaped.fetch_add(server.reap_stale_readers().size(), std::memory_order_relaxed);
    c.phase(kPhaseIdle);
  };

  uint64_t loops = 0;
  while (!stop_requested()) {
    ++loops;
    if (mode == "commit") {
      if (!writer.frame(32 * 1024, 70)) break;
      if (loops % 16 == 0) drain();
    } else if (mode == "metadata") {
      c.phase(kPhaseMetadata);
      shmx::Status st = server.set_metadata(versions[loops % versions.size()]);
      c.phase(kPhaseIdle);
      if (!st) {
        probe_fail(*c.probe, "set_metadata failed: " + st.to_string());
        break;
      }
      if (!writer.frame(1024, 0)) break;
      if (loops % 16 == 0) drain();
    } else if (mode == "full") {
      if (!writer.frame(16 * 1024, 0)) break;
      if (loops % 64 == 0) drain();
    } else if (mode == "drain") {
      // Control messages drained back to back, a frame every millisecond.
      if (now_ns() - writer.last_commit_ns >= 1'000'000 && !writer.frame(4 * 1024, 0)) break;
      drain();
      sched_yield();
    } else {  // steady
      if (!writer.frame(8 * 1024, 0)) break;
      drain();
      sleep_ns(200'000);
    }
  }
  c.phase(kPhaseIdle);
  server.close();
  return c.probe->errors.load() ? kRoleFailed : kRoleOk;
}

// ------------------------------------------------------------------ readers

struct Reader {
  Child& c;
  shmx::Client client;
  shmx::ClientOptions options;
  uint64_t session = 0;  // session of the last valid frame
  uint64_t last_id = 0;  // id of the last valid frame of that session

  explicit Reader(Child& child) : c(child) {}

  // Opens (or reopens) until it works or a stop is requested. Only "no writer (yet)" errors are
  // expected; anything else is counted as unexpected (and retried: a later writer may fix it).
  bool connect() {
    c.phase(kPhaseCreate);
    while (!stop_requested()) {
      shmx::Status st = client.is_open() ? client.reopen() : client.open(c.name, options);
      if (st) {
        c.phase(kPhaseIdle);
        return true;
      }
      if (!is_reconnect_error(st.code())) note_unexpected(c, st, "open");
      sleep_ns(2'000'000);
    }
    return false;
  }

  // Validates a frame; returns false (and records it) if it is torn, foreign or out of order.
  bool validate(const shmx::FrameView& view) {
    if (view.eos()) return true;
    const std::string problem = check_frame(view, client.session_id(), c.num("any-id", 0) == 0);
    if (!problem.empty()) {
      probe_fail(*c.probe, problem);
      return false;
    }
    if (view.header.session_id == session && view.header.frame_id <= last_id) {
      probe_fail(*c.probe, "frame id went from " + std::to_string(last_id) + " to " +
                               std::to_string(view.header.frame_id) + " in one session");
      return false;
    }
    if (view.header.session_id != session) c.probe->sessions.fetch_add(1, std::memory_order_relaxed);
    session = view.header.session_id;
    last_id = view.header.frame_id;
    c.probe->frames.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  void check_metadata_copy() {
    auto md = client.metadata();
    if (md) {
      const std::string problem = check_metadata(*md);
      if (!problem.empty()) probe_fail(*c.probe, "metadata: " + problem);
      c.probe->metadata_reads.fetch_add(1, std::memory_order_relaxed);
    } else if (md.code() != Errc::NotReady) {
      // NotReady: a writer died mid-update and left the seqlock odd; the next read sees it gone.
      note_unexpected(c, md.status(), "metadata");
    }
  }

  void publish_stats() { c.probe->torn_rejected.store(client.stats().torn_reads, std::memory_order_relaxed); }
};

int run_survivor(Child& c, shmx::ReadMode mode) {
  Reader r(c);
  r.options.reader_name = std::string("survivor-") + (mode == shmx::ReadMode::Hold ? "hold" : "copy");
  if (!r.connect()) return kRoleOk;
  c.probe->ready.store(1, std::memory_order_release);
  std::deque<shmx::HoldToken> holds;
  const auto release_all = [&] {
    for (const auto& t : holds) shmx::Client::release(t);
    holds.clear();
    c.probe->held.store(0, std::memory_order_relaxed);
  };
  uint64_t frames = 0;
  const uint64_t metadata_every = std::max<uint64_t>(1, c.num("metadata-every", 16));
  while (!stop_requested()) {
    c.phase(kPhaseRead);
    auto f = r.client.wait_next(100'000'000, mode);
    c.phase(holds.empty() ? kPhaseIdle : kPhaseHolding);
    if (!f) {
      if (f.code() == Errc::Timeout || f.code() == Errc::NoFrame) continue;
      if (is_reconnect_error(f.code())) {
        release_all();
        r.connect();
        continue;
      }
      note_unexpected(c, f.status(), "read");
      continue;
    }
    if (f->session_mismatch) {
      release_all();
      r.connect();
      continue;
    }
    r.validate(*f);
    if (f->held) {
      holds.push_back(f->hold);
      // Keep the newest hold a little while: the writer must work around it.
      while (holds.size() > 1) {
        shmx::Client::release(holds.front());
        holds.pop_front();
      }
      c.probe->held.store(holds.size(), std::memory_order_relaxed);
    }
    if (++frames % metadata_every == 0) r.check_metadata_copy();
    r.publish_stats();
  }
  release_all();
  r.publish_stats();
  return c.probe->errors.load() ? kRoleFailed : kRoleOk;
}

// A reader that holds up to two slots at all times until it is killed.
int run_holder(Child& c) {
  Reader r(c);
  r.options.reader_name = "victim-holder";
  r.options.max_held_slots = 2;
  if (!r.connect()) return kRoleOk;
  std::deque<shmx::HoldToken> holds;
  while (!stop_requested()) {
    c.phase(kPhaseRead);
    auto f = r.client.wait_next(50'000'000, shmx::ReadMode::Hold);
    c.phase(holds.empty() ? kPhaseIdle : kPhaseHolding);
    if (!f) {
      if (f.code() != Errc::Timeout && f.code() != Errc::NoFrame) note_unexpected(c, f.status(), "read");
      continue;
    }
    if (f->session_mismatch) continue;
    r.validate(*f);
    if (f->held) holds.push_back(f->hold);
    if (holds.size() > 2 || (holds.size() == 2 && c.rng.chance(30))) {
      shmx::Client::release(holds.front());
      holds.pop_front();
    }
    c.probe->held.store(holds.size(), std::memory_order_relaxed);
    if (!holds.empty()) {
      c.phase(kPhaseHolding);
      c.probe->ready.store(1, std::memory_order_release);
      sleep_ns(c.rng.range(0, 2'000'000));
    }
  }
  return kRoleOk;
}

// A reader that sends control messages back to back until it is killed.
int run_control_sender(Child& c) {
  Reader r(c);
  r.options.reader_name = "victim-control";
  if (!r.connect()) return kRoleOk;
  // Messages prepared up front, so that the process spends its time inside send().
  std::vector<std::vector<uint8_t>> messages;
  for (uint64_t i = 0; i < 64; ++i)
    messages.push_back(encode_control(i, static_cast<uint32_t>(c.rng.range(0, 1500))));
  uint64_t counter = 0;
  while (!stop_requested()) {
    const std::vector<uint8_t>& message = messages[counter % messages.size()];
    c.phase(kPhaseControl);
    shmx::Status st = c.rng.chance(5) ? r.client.send_heartbeat()
                                      : r.client.send(kTlvStressControl, message.data(),
                                                      static_cast<uint32_t>(message.size()));
    c.phase(kPhaseIdle);
    if (st) {
      ++counter;
      c.probe->messages.fetch_add(1, std::memory_order_relaxed);
      c.probe->ready.store(1, std::memory_order_release);
    } else if (st.code() == Errc::RingFull) {
      c.phase(kPhaseBackoff);
      sched_yield();  // the writer drains the ring continuously
    } else {
      note_unexpected(c, st, "send");
      sleep_ns(1'000'000);
    }
  }
  return kRoleOk;
}

// ------------------------------------------------------------------ corruptor

int run_corruptor(Child& c) {
  const std::string path = "/dev/shm/shmx." + c.name;
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    probe_fail(*c.probe, "cannot open " + path + ": " + std::strerror(errno));
    return kRoleSetupFailed;
  }
  struct stat st {};
  fstat(fd, &st);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // Where the segment keeps its small, much-read fields; most writes go there (see docs/reliability.md).
  shmx::GlobalHeader h{};
  if (pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return kRoleSetupFailed;
  const uint64_t interval_ns = c.num("interval-us", 50) * 1000;
  c.probe->ready.store(1, std::memory_order_release);
  uint8_t bytes[16];
  while (!stop_requested()) {
    uint64_t offset;
    const uint64_t pick = c.rng.range(0, 99);
    if (pick < 10) {
      // The global header; its identity (magic, version) only now and then, or every read is NotShmx.
      offset = c.rng.range(c.rng.next() % 1000 == 0 ? 0 : 16, sizeof(shmx::GlobalHeader) - 1);
    } else if (pick < 25 && h.slot_control_offset < size) {
      offset =
          h.metadata_offset + c.rng.range(0, h.slot_control_offset - h.metadata_offset + 64 * h.slot_count);
    } else if (pick < 50 && h.slots_offset < size) {
      // a frame header or the TLV headers right behind it
      offset =
          h.slots_offset + c.rng.range(0, h.slot_count - 1) * uint64_t{h.slot_stride} + c.rng.range(0, 191);
    } else if (pick < 80 && h.reader_region_offset < size) {
      offset = c.rng.range(h.reader_region_offset, size - 1);  // reader slots and control rings
    } else {
      offset = c.rng.range(0, size - 1);
    }
    const size_t length = static_cast<size_t>(c.rng.range(1, sizeof bytes));
    for (auto& b : bytes) b = static_cast<uint8_t>(c.rng.next());
    if (c.rng.chance(20)) std::memset(bytes, c.rng.chance(50) ? 0xff : 0x00, sizeof bytes);
    if (offset >= size) continue;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, size - offset));
    if (pwrite(fd, bytes, n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n))
      c.probe->frames.fetch_add(1, std::memory_order_relaxed);
    sleep_ns(interval_ns);
  }
  close(fd);
  return kRoleOk;
}

}  // namespace

std::vector<std::string> role_args(const RoleArgs& args) {
  std::vector<std::string> out;
  auto role = args.find("role");
  if (role != args.end()) out = {"--role", role->second};  // run_role() looks for it first
  for (const auto& [k, v] : args) {
    if (k == "role") continue;
    out.push_back("--" + k);
    out.push_back(v);
  }
  return out;
}

int run_role(int argc, char** argv) {
  if (argc < 3 || std::strcmp(argv[1], "--role") != 0) return -1;
  Child c;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) return kRoleUsage;
    c.args[argv[i] + 2] = argv[i + 1];
  }
  if (!c.args.count("name") || !c.args.count("probes")) return kRoleUsage;
  c.name = c.get("name");
  c.probes = ProbeTable::attach(static_cast<int>(c.num("probes", 0)));
  const size_t index = c.num("probe", 0);
  if (index >= c.probes.size()) return kRoleUsage;
  c.probe = &c.probes.at(index);
  c.rng = Rng(c.num("seed", 1));
  install_stop_handler();

  const std::string role = c.get("role"), mode = c.get("mode");
  if (role == "writer") return run_writer(c);
  if (role == "reader" && mode == "copy") return run_survivor(c, shmx::ReadMode::Copy);
  if (role == "reader" && mode == "hold") return run_survivor(c, shmx::ReadMode::Hold);
  if (role == "reader" && mode == "holder") return run_holder(c);
  if (role == "reader" && mode == "control") return run_control_sender(c);
  if (role == "corruptor") return run_corruptor(c);
  return kRoleUsage;
}

pid_t spawn_role(const ProbeTable& probes, size_t probe, const std::string& name, Rng& rng, RoleArgs args) {
  probes.reset(probe);
  args["name"] = name;
  args["probes"] = std::to_string(probes.fd());
  args["probe"] = std::to_string(probe);
  args["seed"] = std::to_string(rng.next());
  return spawn_self(role_args(args));
}

bool wait_role_ready(const ProbeTable& probes, size_t probe, uint64_t timeout_ns) {
  const uint64_t deadline = now_ns() + timeout_ns;
  while (!probes.at(probe).ready.load() && now_ns() < deadline) sleep_ns(500'000);
  return probes.at(probe).ready.load() != 0;
}

}  // namespace shmx_stress
