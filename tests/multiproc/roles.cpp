// SPDX-License-Identifier: MIT
// The writer and reader roles of the multi-process tests (see roles.h).
#include "roles.h"

#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "shmx_client.h"
#include "shmx_server.h"
#include "test_support.h"

namespace shmx_test {
namespace {

using namespace std::chrono_literals;
using Args = std::map<std::string, std::string>;

// Unbuffered, one write per line, so the parent sees each event at once and a kill -9 loses nothing.
void emit(const char* format, ...) {
  char line[512];
  va_list ap;
  va_start(ap, format);
  int n = vsnprintf(line, sizeof(line) - 1, format, ap);
  va_end(ap);
  if (n < 0) return;
  n = std::min(n, static_cast<int>(sizeof(line) - 2));
  line[n++] = '\n';
  ssize_t ignored = write(STDOUT_FILENO, line, static_cast<size_t>(n));
  (void)ignored;
}

uint64_t number(const Args& args, const std::string& key, uint64_t fallback) {
  auto it = args.find(key);
  return it == args.end() ? fallback : std::strtoull(it->second.c_str(), nullptr, 10);
}

std::string text(const Args& args, const std::string& key, const std::string& fallback = "") {
  auto it = args.find(key);
  return it == args.end() ? fallback : it->second;
}

bool has(const Args& args, const std::string& key) { return args.count(key) != 0; }

// Publishes frames whose stream 0 is the pattern of their id; serves the control plane and reaps.
int writer_role(const Args& args) {
  const std::string segment = text(args, "segment");
  const uint64_t frames = number(args, "frames", 0);  // 0: until killed or the deadline
  const uint64_t interval_us = number(args, "interval-us", 2000);
  const auto deadline = Clock::now() + std::chrono::milliseconds(number(args, "deadline-ms", 30000));
  shmx::ServerOptions options = role_server_options(static_cast<uint32_t>(number(args, "slots", 8)));
  options.reader_timeout_ms = static_cast<uint32_t>(number(args, "reader-timeout-ms", 5000));
  // --create-on-thread: create the segment on a thread that exits at once (its lock must stay held).
  shmx::Result<shmx::Server> server(shmx::Errc::NotReady, "not created");
  if (has(args, "create-on-thread")) {
    std::thread([&] { server = shmx::Server::create(segment, options); }).join();
  } else {
    server = shmx::Server::create(segment, options);
  }
  if (!server) {
    emit("ERROR %s %s", shmx::errc_name(server.code()), server.status().message().c_str());
    return kExitError;
  }
  emit("SESSION %" PRIu64, server->session_id());
  // --wait-readers=K: publish nothing until K readers are registered (deterministic first frames).
  const uint64_t wait_readers = number(args, "wait-readers", 0);
  while (server->readers().size() < wait_readers) {
    if (Clock::now() >= deadline) {
      emit("TIMEOUT");
      return kExitTimeout;
    }
    server->poll_control([](const shmx::ControlMessage&) {});
    std::this_thread::sleep_for(1ms);
  }
  uint64_t next_id = 1;
  while (Clock::now() < deadline) {
    if (frames == 0 || next_id <= frames) {
      auto id = publish_pattern_frame(*server, next_id);
      if (id) {
        ++next_id;
      } else if (id.code() != shmx::Errc::NoFreeSlot) {
        emit("BADID %" PRIu64 " %s", next_id, id.status().to_string().c_str());
        return kExitBadId;
      }
    } else if (has(args, "close")) {
      if (has(args, "eos") && !server->publish_eos()) {
        emit("ERROR publish_eos failed");
        return kExitError;
      }
      server->close();
      emit("CLOSED");
      return kExitOk;
    }
    server->poll_control([](const shmx::ControlMessage&) {});
    server->reap_stale_readers();
    std::this_thread::sleep_for(std::chrono::microseconds(interval_us));
  }
  return kExitOk;
}

bool transient(shmx::Errc code) {
  return code == shmx::Errc::NotFound || code == shmx::Errc::NotReady || code == shmx::Errc::WriterGone ||
         code == shmx::Errc::Closed;
}

// Reads frames and checks every byte; follows writer restarts with --follow.
int reader_role(const Args& args) {
  const std::string segment = text(args, "segment");
  const uint64_t want_frames = number(args, "frames", 1);
  const uint64_t want_sessions = number(args, "sessions", 1);
  const uint64_t hold_count = number(args, "hold", 0);  // hold this many frames, then wait to be killed
  const uint64_t slow_us = number(args, "slow-us", 0);
  const bool hold_mode = text(args, "mode", "copy") == "hold" || hold_count > 0;
  const bool follow = has(args, "follow");
  const auto deadline = Clock::now() + std::chrono::milliseconds(number(args, "deadline-ms", 20000));
  const shmx::ReadMode mode = hold_mode ? shmx::ReadMode::Hold : shmx::ReadMode::Copy;

  shmx::ClientOptions options;
  options.reader_name = text(args, "name", "mp-reader");
  options.max_held_slots = static_cast<uint32_t>(std::max<uint64_t>(hold_count, 1));
  shmx::Client client;
  emit("WAITING");
  shmx::Status st = client.open_wait(segment, options, number(args, "open-timeout-ms", 10000) * 1000000ull);
  if (!st) {
    emit("ERROR %s %s", shmx::errc_name(st.code()), st.message().c_str());
    return kExitError;
  }
  emit("OPEN %" PRIu64, client.session_id());

  std::set<uint64_t> sessions = {client.session_id()};
  std::vector<shmx::HoldToken> kept;
  uint64_t received = 0, skipped = 0, last_id = 0;
  auto reopen = [&]() -> int {
    while (Clock::now() < deadline) {
      shmx::Status s = client.reopen();
      if (s) {
        emit("REOPEN %" PRIu64, client.session_id());
        sessions.insert(client.session_id());
        last_id = 0;
        return kExitOk;
      }
      if (!transient(s.code())) {
        emit("ERROR %s %s", shmx::errc_name(s.code()), s.message().c_str());
        return kExitError;
      }
      std::this_thread::sleep_for(5ms);
    }
    emit("TIMEOUT");
    return kExitTimeout;
  };

  while (received < want_frames || sessions.size() < want_sessions) {
    if (Clock::now() >= deadline) {
      emit("TIMEOUT");
      return kExitTimeout;
    }
    auto frame = client.wait_next(200 * 1000000ull, mode);
    if (!frame) {
      if (frame.code() == shmx::Errc::Timeout || frame.code() == shmx::Errc::NoFrame) continue;
      if (transient(frame.code())) {
        emit("GONE %s", shmx::errc_name(frame.code()));
        if (!follow) return kExitOk;
        if (int rc = reopen(); rc != kExitOk) return rc;
        continue;
      }
      emit("ERROR %s %s", shmx::errc_name(frame.code()), frame.status().message().c_str());
      return kExitError;
    }
    if (frame->session_mismatch) {
      emit("MISMATCH");
      if (!follow) return kExitOk;
      if (int rc = reopen(); rc != kExitOk) return rc;
      continue;
    }
    if (frame->eos()) {
      emit("EOS");
      continue;
    }
    const uint64_t id = frame->header.frame_id;
    if (frame->header.session_id != client.session_id()) {
      emit("BAD session %" PRIu64 " in a mapping of session %" PRIu64, frame->header.session_id,
           client.session_id());
      return kExitBadFrame;
    }
    if (id <= last_id) {
      emit("BAD id %" PRIu64 " after %" PRIu64, id, last_id);
      return kExitBadFrame;
    }
    shmx::TlvView data;
    if (!frame->stream_data(0, data) || data.length != kRolePayload) {
      emit("BAD frame %" PRIu64 " has no stream 0 of %zu bytes", id, kRolePayload);
      return kExitBadFrame;
    }
    if (size_t at = check_pattern(data.value, data.length, id); at != data.length) {
      emit("BAD frame %" PRIu64 " wrong byte at %zu", id, at);
      return kExitBadFrame;
    }
    if (frame->header.timestamp_ns != id) {
      emit("BAD frame %" PRIu64 " timestamp %" PRIu64, id, frame->header.timestamp_ns);
      return kExitBadFrame;
    }
    last_id = id;
    ++received;
    skipped += frame->skipped;
    emit("FRAME %" PRIu64 " %" PRIu64 " %" PRIu64 " %d", id, frame->header.session_id, frame->skipped,
         frame->held ? 1 : 0);
    if (frame->held) {
      if (kept.size() < hold_count) {
        kept.push_back(frame->hold);
        emit("HELD %u %" PRIu64, frame->hold.slot, id);
        if (kept.size() == hold_count) {
          // Hold them until killed (the test's reaping scenario), re-checking the bytes now and then.
          while (Clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);
            if (check_pattern(data.value, data.length, id) != data.length) {
              emit("BAD held frame %" PRIu64 " changed", id);
              return kExitBadFrame;
            }
          }
          emit("TIMEOUT");
          return kExitTimeout;
        }
      } else {
        if (slow_us) std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
        if (check_pattern(data.value, data.length, id) != data.length) {
          emit("BAD held frame %" PRIu64 " changed while held", id);
          return kExitBadFrame;
        }
        shmx::Client::release(frame->hold);
      }
    } else if (slow_us) {
      std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
    }
  }
  for (const auto& h : kept) shmx::Client::release(h);
  emit("DONE %" PRIu64 " %" PRIu64 " %" PRIu64, received, skipped, client.stats().torn_reads);
  client.close();
  return kExitOk;
}

}  // namespace

shmx::ServerOptions role_server_options(uint32_t slot_count) {
  shmx::ServerOptions options;
  options.slot_count = slot_count;
  options.slot_payload_capacity = kRolePayload + 1024;
  options.reader_capacity = 8;
  return options;
}

shmx::Result<uint64_t> publish_pattern_frame(shmx::Server& server, uint64_t expected_id) {
  auto loan = server.loan();
  if (!loan) return loan.status();
  auto data = loan->tlvs().reserve(shmx::kTlvStreamData, 0, kRolePayload, shmx::kPayloadAlignment);
  if (!data) return data.status();
  fill_pattern(*data, kRolePayload, expected_id);
  shmx::FrameInfo info;
  info.timestamp_ns = expected_id;
  auto id = server.commit(std::move(loan.value()), info);
  if (id && *id != expected_id) {
    return shmx::Status(shmx::Errc::Corrupt,
                        "frame id " + std::to_string(*id) + ", expected " + std::to_string(expected_id));
  }
  return id;
}

int run_role(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) continue;
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      args[a.substr(2)] = "1";
    } else {
      args[a.substr(2, eq - 2)] = a.substr(eq + 1);
    }
  }
  if (!has(args, "role")) return -1;
  const std::string role = text(args, "role");
  if (role == "writer") return writer_role(args);
  if (role == "reader") return reader_role(args);
  emit("ERROR unknown role %s", role.c_str());
  return kExitError;
}

}  // namespace shmx_test
