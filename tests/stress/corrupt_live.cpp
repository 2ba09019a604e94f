// SPDX-License-Identifier: MIT
// corrupt_live.cpp: another process scribbles random bytes over a live segment while readers read it.
//
// In rounds (a new writer and segment each, so that a wrecked header does not end the test): a writer
// process publishes and drains control messages, a corruptor process pwrite()s 1..16 random bytes at
// random offsets of /dev/shm/shmx.<name> (header, metadata, slot sequences, frame headers, reader slots
// and rings), and this process reads through every Client call: open, metadata, read_latest (Copy and
// Hold), wait_next, send, and TLV iteration of every payload. What is required: every call returns in
// bounded time with a frame or an error, never a crash (the asan stage runs this under ASan+UBSan), and
// the writer survives too. A returned frame may carry bytes the corruptor changed after the writer
// wrote them (no checksum covers payloads); those are counted, not failures.
// Bounds: SHMX_CORRUPT_SECONDS (default 10) in rounds of SHMX_CORRUPT_ROUND_MS (default 500).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <map>

#include "stress_roles.h"
#include "stress_support.h"

namespace shmx_stress {
namespace {

using shmx::Errc;
constexpr uint64_t kSecond = 1'000'000'000ull;

struct Tally {
  uint64_t calls = 0, frames_valid = 0, frames_damaged = 0, metadata_ok = 0, tlvs = 0;
  uint64_t slowest_call_ns = 0;
  std::map<std::string, uint64_t> errors;  // by Errc name
  void error(const shmx::Status& st) { ++errors[shmx::errc_name(st.code())]; }
};

// Walks every TLV of a returned payload: every value must lie inside the payload.
void walk_payload(const shmx::FrameView& f, Tally& t) {
  shmx::TlvReader reader(f.payload, f.payload_size);
  shmx::TlvView tlv;
  volatile uint8_t sink = 0;
  while (reader.next(tlv)) {
    ++t.tlvs;
    ASSERT_GE(tlv.value, f.payload);
    ASSERT_LE(tlv.value + tlv.length, f.payload + f.payload_size);
    if (tlv.length) sink = sink + tlv.value[0] + tlv.value[tlv.length - 1];
  }
}

void read_round(const std::string& name, uint64_t until, Rng& rng, Tally& t) {
  shmx::Client client;
  shmx::ClientOptions options;
  options.reader_name = "corrupt-reader";
  options.max_held_slots = 2;
  std::vector<shmx::HoldToken> holds;
  const auto timed = [&](auto&& call) {
    const uint64_t start = now_ns();
    auto result = call();
    t.slowest_call_ns = std::max(t.slowest_call_ns, now_ns() - start);
    ++t.calls;
    return result;
  };
  while (now_ns() < until) {
    if (!client.is_open()) {
      shmx::Status st = timed([&] { return client.open(name, options); });
      if (!st) {
        t.error(st);
        sleep_ns(1'000'000);
        continue;
      }
    }
    const uint64_t op = rng.range(0, 9);
    if (op < 5) {
      const shmx::ReadMode mode = rng.chance(50) ? shmx::ReadMode::Hold : shmx::ReadMode::Copy;
      auto f = timed([&] { return op < 2 ? client.wait_next(20'000'000, mode) : client.read_latest(mode); });
      if (!f) {
        t.error(f.status());
        // Keep reading through a corrupt 'latest' (the geometry is a private copy); start over only
        // when the writer looks gone.
        if (f.code() == Errc::WriterGone || f.code() == Errc::Closed) client.close();
        continue;
      }
      if (f->session_mismatch) {
        client.close();
        continue;
      }
      ASSERT_LE(f->payload_size, uint64_t{64} * 1024) << "payload larger than a slot";
      walk_payload(*f, t);
      if (check_frame(*f, client.session_id()).empty() || f->eos()) {
        ++t.frames_valid;
      } else {
        ++t.frames_damaged;
      }
      if (f->held) holds.push_back(f->hold);
      if (holds.size() > 2 || (!holds.empty() && rng.chance(50))) {
        shmx::Client::release(holds.front());
        holds.erase(holds.begin());
      }
    } else if (op < 7) {
      auto md = timed([&] { return client.metadata(); });
      if (md) {
        ++t.metadata_ok;
      } else {
        t.error(md.status());
      }
    } else if (op < 9) {
      const std::vector<uint8_t> message = encode_control(t.calls, static_cast<uint32_t>(rng.range(0, 600)));
      shmx::Status st = timed([&] {
        return client.send(kTlvStressControl, message.data(), static_cast<uint32_t>(message.size()));
      });
      if (!st) t.error(st);
    } else {
      (void)client.writer_alive();
      (void)client.stats();
      if (rng.chance(20)) {
        shmx::Status st = timed([&] { return client.reopen(); });
        if (!st) {
          t.error(st);
          client.close();
        }
      }
    }
  }
  for (const auto& h : holds) shmx::Client::release(h);
}

TEST(CorruptLiveSegment, ReadersGetErrorsNotCrashes) {
  const uint64_t seed = run_seed();
  std::printf("SHMX_SEED=%llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  install_segment_cleanup();
  const std::string name = segment_name("corrupt");
  const ProbeTable probes = ProbeTable::create(2);
  const uint64_t seconds = env_u64("SHMX_CORRUPT_SECONDS", 10);
  const uint64_t round_ns = env_u64("SHMX_CORRUPT_ROUND_MS", 500) * 1'000'000ull;
  const auto spawn = [&](size_t probe, RoleArgs args) {
    return spawn_role(probes, probe, name, rng, std::move(args));
  };
  const auto ready = [&](size_t probe) { return wait_role_ready(probes, probe, 10 * kSecond); };

  Tally t;
  uint64_t rounds = 0, corrupt_writes = 0, writer_frames = 0;
  const uint64_t start = now_ns(), end = start + seconds * kSecond;
  while (now_ns() < end) {
    const pid_t writer = spawn(0, {{"role", "writer"}, {"mode", "steady"}, {"tolerant", "1"}});
    ASSERT_TRUE(ready(0)) << probes.at(0).detail;
    const pid_t corruptor = spawn(1, {{"role", "corruptor"}, {"interval-us", "100"}});
    ASSERT_TRUE(ready(1)) << probes.at(1).detail;
    read_round(name, std::min(end, now_ns() + round_ns), rng, t);
    ++rounds;
    const int corruptor_status = stop_child(corruptor, 10 * kSecond);
    EXPECT_TRUE(corruptor_status != -1 && WIFEXITED(corruptor_status) && WEXITSTATUS(corruptor_status) == 0)
        << describe_status(corruptor_status);
    corrupt_writes += probes.at(1).frames.load();
    writer_frames += probes.at(0).frames.load();
    // The writer too must survive whatever the corruptor did to the reader slots and rings.
    const int writer_status = stop_child(writer, 10 * kSecond);
    // (A sanitizer report in the writer makes it exit non-zero.)
    EXPECT_TRUE(writer_status != -1 && WIFEXITED(writer_status) && WEXITSTATUS(writer_status) == 0)
        << "writer of round " << rounds << ": " << describe_status(writer_status) << " "
        << probes.at(0).detail;
    if (HasFatalFailure()) break;
  }
  // A clean close removes the name by identity, whatever the corruptor wrote into the header.
  EXPECT_TRUE(own_segments().empty()) << "left in /dev/shm: " << own_segments().front();
  remove_own_segments();
  const double elapsed = static_cast<double>(now_ns() - start) / kSecond;
  EXPECT_GT(t.calls, 0u);
  EXPECT_LT(t.slowest_call_ns, 5 * kSecond) << "a Client call hung on a corrupt segment";

  std::string errors;
  for (const auto& [code, n] : t.errors) errors += " " + code + "=" + std::to_string(n);
  std::printf(
      "RESULT corrupt-live rounds=%llu seconds=%.1f seed=%llu\n"
      "  corruptor: %llu random writes; writers: %llu frames\n"
      "  reader: %llu calls, %llu frames intact, %llu frames with corrupted content (no crash), %llu TLVs "
      "walked, %llu metadata copies; slowest call %.1f ms\n"
      "  errors returned:%s\n",
      static_cast<unsigned long long>(rounds), elapsed, static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(corrupt_writes), static_cast<unsigned long long>(writer_frames),
      static_cast<unsigned long long>(t.calls), static_cast<unsigned long long>(t.frames_valid),
      static_cast<unsigned long long>(t.frames_damaged), static_cast<unsigned long long>(t.tlvs),
      static_cast<unsigned long long>(t.metadata_ok), t.slowest_call_ns / 1e6, errors.c_str());
}

}  // namespace
}  // namespace shmx_stress

int main(int argc, char** argv) {
  const int role = shmx_stress::run_role(argc, argv);
  if (role >= 0) return role;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
