// SPDX-License-Identifier: MIT
// load.cpp: one writer at full speed and 8 reader processes for a bounded time; every reader keeps up.
//
// Four readers copy, four hold slots; each validates every frame (stamp, session, checksum) and that ids
// only increase. The controller samples every reader's count of valid frames every 10 ms: the longest
// time a reader went without a new frame is the figure "every reader keeps getting frames" is judged by.
// Bounds: SHMX_LOAD_SECONDS (default 10); SHMX_LOAD_MAX_STALL_MS (default 1000).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "stress_roles.h"
#include "stress_support.h"

namespace shmx_stress {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ull;
constexpr size_t kReaders = 8;

TEST(Load, OneWriterEightReadersAtFullSpeed) {
  const uint64_t seed = run_seed();
  std::printf("SHMX_SEED=%llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  install_segment_cleanup();
  const std::string name = segment_name("load");
  const ProbeTable probes = ProbeTable::create(1 + kReaders);
  const double seconds = static_cast<double>(env_u64("SHMX_LOAD_SECONDS", 10));
  const uint64_t max_stall_ns = env_u64("SHMX_LOAD_MAX_STALL_MS", 1000) * 1'000'000ull;

  const auto spawn = [&](size_t probe, RoleArgs args) {
    return spawn_role(probes, probe, name, rng, std::move(args));
  };
  const auto ready = [&](size_t probe) { return wait_role_ready(probes, probe, 10 * kSecond); };

  const pid_t writer = spawn(0, {{"role", "writer"}, {"mode", "full"}});
  ASSERT_TRUE(ready(0)) << probes.at(0).detail;
  std::vector<pid_t> readers;
  for (size_t i = 0; i < kReaders; ++i)
    readers.push_back(spawn(1 + i, {{"role", "reader"}, {"mode", i % 2 ? "hold" : "copy"}}));
  for (size_t i = 0; i < kReaders; ++i) ASSERT_TRUE(ready(1 + i)) << "reader " << i;

  // Sample: the longest time each reader had no new valid frame.
  std::vector<uint64_t> last_count(kReaders, 0), last_change(kReaders, now_ns()), max_stall(kReaders, 0);
  const uint64_t start = now_ns(), end = start + static_cast<uint64_t>(seconds * kSecond);
  while (now_ns() < end) {
    sleep_ns(10'000'000);
    const uint64_t now = now_ns();
    for (size_t i = 0; i < kReaders; ++i) {
      const uint64_t count = probes.at(1 + i).frames.load();
      if (count != last_count[i]) {
        last_count[i] = count;
        last_change[i] = now;
      }
      max_stall[i] = std::max(max_stall[i], now - last_change[i]);
    }
  }
  const double elapsed = static_cast<double>(now_ns() - start) / kSecond;

  uint64_t total = 0, torn = 0, worst_stall = 0;
  for (size_t i = 0; i < kReaders; ++i) {
    const int status = stop_child(readers[i], 10 * kSecond);
    const Probe& p = probes.at(1 + i);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "reader " << i << ": " << describe_status(status) << " " << p.detail;
    EXPECT_EQ(p.errors.load(), 0u) << "reader " << i << ": " << p.detail;
    EXPECT_EQ(p.unexpected.load(), 0u) << "reader " << i;
    EXPECT_EQ(p.sessions.load(), 1u) << "reader " << i << " saw another session";
    EXPECT_GT(p.frames.load(), 0u) << "reader " << i;
    EXPECT_LT(max_stall[i], max_stall_ns)
        << "reader " << i << " got no frame for " << max_stall[i] / 1e6 << " ms";
    total += p.frames.load();
    torn += p.torn_rejected.load();
    worst_stall = std::max(worst_stall, max_stall[i]);
  }
  const Probe& w = probes.at(0);
  const uint64_t committed = w.frames.load(), refused = w.no_free_slot.load(), gap = w.max_gap_ns.load();
  const int status = stop_child(writer, 10 * kSecond);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << describe_status(status) << " " << w.detail;
  EXPECT_EQ(w.errors.load(), 0u) << w.detail;
  EXPECT_TRUE(own_segments().empty());

  std::printf(
      "RESULT load readers=%zu seconds=%.1f seed=%llu\n"
      "  writer: %llu frames committed (%.0f/s), %llu loans refused (every slot busy), max gap %.1f ms\n"
      "  readers: %llu frames validated in all (%.0f/s per reader), %llu torn reads rejected, "
      "longest time any reader had no new frame %.0f ms (sampled every 10 ms); invalid frames returned: 0\n",
      kReaders, elapsed, static_cast<unsigned long long>(seed), static_cast<unsigned long long>(committed),
      committed / elapsed, static_cast<unsigned long long>(refused), gap / 1e6,
      static_cast<unsigned long long>(total), total / elapsed / kReaders,
      static_cast<unsigned long long>(torn), worst_stall / 1e6);
  for (size_t i = 0; i < kReaders; ++i)
    std::printf("  reader %zu (%s): %llu frames\n", i, i % 2 ? "hold" : "copy",
                static_cast<unsigned long long>(probes.at(1 + i).frames.load()));
}

}  // namespace
}  // namespace shmx_stress

int main(int argc, char** argv) {
  const int role = shmx_stress::run_role(argc, argv);
  if (role >= 0) return role;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
