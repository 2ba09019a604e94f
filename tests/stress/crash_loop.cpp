// SPDX-License-Identifier: MIT
// crash_loop.cpp: kill -9 of writers and readers at random moments, many times; nothing torn, lost, stalled
// or left.
//
// Each scenario is one gtest case. The test process is the controller: it starts writer and reader
// processes (this executable again, with "--role", see stress_roles.h), kills one side with SIGKILL
// at a random moment, checks what the other side saw, and repeats. Every child records its phase
// (loan, fill, commit, metadata, holding, control...) in a probe shared with the controller, so the
// report says where the kills landed.
//
// Bounds: SHMX_CRASH_KILLS (default 200) kills per scenario, but at most SHMX_CRASH_SECONDS (default
// 60) seconds. Randomness: SHMX_SEED replays a run (the seed is printed first).
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <sstream>

#include "stress_roles.h"
#include "stress_support.h"

namespace shmx_stress {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ull;
constexpr uint64_t kMs = 1'000'000ull;

struct ChildProcess {
  pid_t pid = -1;
  size_t probe = 0;
};

// Waits until the child's probe says ready, or the child exits (then returns false and reaps it).
bool wait_ready(const ProbeTable& probes, ChildProcess& child, uint64_t timeout_ns,
                int* exit_status = nullptr) {
  const uint64_t deadline = now_ns() + timeout_ns;
  while (probes.at(child.probe).ready.load(std::memory_order_acquire) == 0) {
    int status = 0;
    if (waitpid(child.pid, &status, WNOHANG) == child.pid) {
      if (exit_status) *exit_status = status;
      child.pid = -1;
      return false;
    }
    if (now_ns() >= deadline) return false;
    sleep_ns(200'000);
  }
  return true;
}

ChildProcess start(const ProbeTable& probes, size_t probe, const std::string& name, Rng& rng, RoleArgs args) {
  return ChildProcess{spawn_role(probes, probe, name, rng, std::move(args)), probe};
}

std::string phase_histogram(const std::array<uint64_t, kPhaseCount>& phases) {
  std::ostringstream out;
  bool first = true;
  for (uint32_t p = 0; p < kPhaseCount; ++p) {
    if (!phases[p]) continue;
    out << (first ? "" : " ") << phase_name(p) << "=" << phases[p];
    first = false;
  }
  return out.str();
}

// Stops a long-lived child cleanly and checks that it reported nothing wrong.
void stop_and_check(const ProbeTable& probes, ChildProcess& child, const std::string& what) {
  if (child.pid <= 0) return;
  const int status = stop_child(child.pid, 10 * kSecond);
  child.pid = -1;
  const Probe& p = probes.at(child.probe);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << what << ": " << describe_status(status) << "; first failure: " << p.detail;
  EXPECT_EQ(p.errors.load(), 0u) << what << ": " << p.detail;
  EXPECT_EQ(p.unexpected.load(), 0u) << what << ": last unexpected error "
                                     << shmx::errc_name(static_cast<shmx::Errc>(p.last_error_code.load()));
}

// Waits until every survivor validated frames beyond its count at the call (bounded).
bool survivors_progress(const ProbeTable& probes, const std::vector<size_t>& survivors, uint64_t timeout_ns) {
  std::vector<uint64_t> before;
  for (size_t s : survivors) before.push_back(probes.at(s).frames.load());
  const uint64_t deadline = now_ns() + timeout_ns;
  while (now_ns() < deadline) {
    bool all = true;
    for (size_t i = 0; i < survivors.size(); ++i)
      all = all && probes.at(survivors[i]).frames.load() > before[i];
    if (all) return true;
    sleep_ns(2 * kMs);
  }
  return false;
}

struct Budget {
  uint64_t kills = env_u64("SHMX_CRASH_KILLS", 200);
  uint64_t deadline =
      now_ns() + static_cast<uint64_t>(static_cast<double>(env_u64("SHMX_CRASH_SECONDS", 60)) * kSecond);
  bool more(uint64_t done) const { return done < kills && now_ns() < deadline; }
};

// ------------------------------------------------------------------ writer killed

void writer_kill_loop(const std::string& mode) {
  const uint64_t seed = run_seed();
  std::printf("SHMX_SEED=%llu (scenario writer-%s)\n", static_cast<unsigned long long>(seed), mode.c_str());
  Rng rng(seed ^ std::hash<std::string>{}(mode));
  install_segment_cleanup();
  const std::string name = segment_name("wk-" + mode);
  const ProbeTable probes = ProbeTable::create(3);
  enum : size_t { kWriter = 0, kCopyReader = 1, kHoldReader = 2 };
  const uint64_t started = now_ns();
  const Budget budget;

  // Readers of the metadata scenario check the metadata after every frame.
  const std::string every = mode == "metadata" ? "1" : "16";
  ChildProcess writer = start(probes, kWriter, name, rng, {{"role", "writer"}, {"mode", mode}});
  ASSERT_TRUE(wait_ready(probes, writer, 10 * kSecond)) << "first writer: " << probes.at(kWriter).detail;
  std::array<ChildProcess, 2> readers = {
      start(probes, kCopyReader, name, rng,
            {{"role", "reader"}, {"mode", "copy"}, {"metadata-every", every}}),
      start(probes, kHoldReader, name, rng,
            {{"role", "reader"}, {"mode", "hold"}, {"metadata-every", every}})};
  for (ChildProcess& r : readers) ASSERT_TRUE(wait_ready(probes, r, 10 * kSecond)) << "reader did not start";

  std::array<uint64_t, kPhaseCount> phases{};
  uint64_t kills = 0, early = 0, writer_frames = 0, max_gap = 0, no_free = 0;
  while (budget.more(kills)) {
    // One kill in ten lands during start-up (exec, Server::create, reclaiming the dead writer's name);
    // the others while the writer runs its loop.
    const bool early_kill = rng.chance(10);
    if (early_kill && rng.chance(50)) {
      sleep_ns(rng.range(0, 3 * kMs));
    } else if (early_kill) {
      // Inside Server::create: creating, sizing, locking, or reclaiming the dead writer's name.
      const uint64_t limit = now_ns() + 5 * kSecond;
      while (probes.at(kWriter).phase.load() < kPhaseCreate && now_ns() < limit) sched_yield();
      sleep_ns(rng.range(0, 50'000));
    } else {
      int status = 0;
      if (!wait_ready(probes, writer, 10 * kSecond, &status)) {
        ADD_FAILURE() << "writer #" << kills + 1 << " did not start (" << describe_status(status)
                      << "): the next writer must reclaim a crashed writer's segment; "
                      << probes.at(kWriter).detail;
        break;
      }
      sleep_ns(rng.range(0, 20 * kMs));
    }
    const Probe& w = probes.at(kWriter);
    const int status = kill9(writer.pid);
    const uint32_t phase = w.phase.load();  // its last store before it died
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      ADD_FAILURE() << "writer #" << kills + 1 << " ended before the kill: " << describe_status(status)
                    << "; " << w.detail;
      break;
    }
    ++kills;
    early += early_kill;
    ++phases[phase];
    writer_frames += w.frames.load();
    no_free += w.no_free_slot.load();
    max_gap = std::max<uint64_t>(max_gap, w.max_gap_ns.load());
    EXPECT_EQ(w.errors.load(), 0u) << "writer #" << kills << ": " << w.detail;
    for (size_t r : {kCopyReader, kHoldReader})
      ASSERT_EQ(probes.at(r).errors.load(), 0u)
          << "reader after kill #" << kills << ": " << probes.at(r).detail;
    writer = start(probes, kWriter, name, rng, {{"role", "writer"}, {"mode", mode}});
  }

  // The last writer reclaims the last dead writer's segment, and both readers follow it.
  ASSERT_TRUE(wait_ready(probes, writer, 10 * kSecond)) << "final writer: " << probes.at(kWriter).detail;
  EXPECT_TRUE(survivors_progress(probes, {kCopyReader, kHoldReader}, 10 * kSecond))
      << "the readers did not resume with the final writer";
  const double seconds = static_cast<double>(now_ns() - started) / kSecond;
  std::array<uint64_t, 2> frames{}, sessions{}, torn{}, metadata{};
  for (size_t r : {kCopyReader, kHoldReader}) {
    frames[r - 1] = probes.at(r).frames.load();
    sessions[r - 1] = probes.at(r).sessions.load();
    torn[r - 1] = probes.at(r).torn_rejected.load();
    metadata[r - 1] = probes.at(r).metadata_reads.load();
  }
  for (ChildProcess& r : readers) stop_and_check(probes, r, "reader");
  stop_and_check(probes, writer, "final writer");
  EXPECT_TRUE(own_segments().empty()) << "left in /dev/shm: " << own_segments().front();
  EXPECT_GE(kills, std::min<uint64_t>(budget.kills, 20)) << "too few kills in the time budget";

  std::printf(
      "RESULT crash-loop scenario=writer-mid-%s kills=%llu (during start-up %llu) seconds=%.1f seed=%llu\n"
      "  kills by writer phase: %s\n"
      "  writers committed %llu frames (max gap between commits %.1f ms, %llu loans refused)\n"
      "  copy reader: %llu frames valid over %llu sessions, %llu torn reads rejected, %llu metadata copies "
      "valid\n"
      "  hold reader: %llu frames valid over %llu sessions, %llu torn reads rejected, %llu metadata copies "
      "valid\n"
      "  invalid frames returned: 0 required, %llu seen; left in /dev/shm: %zu\n",
      mode.c_str(), (unsigned long long)kills, (unsigned long long)early, seconds, (unsigned long long)seed,
      phase_histogram(phases).c_str(), (unsigned long long)writer_frames, max_gap / 1e6,
      (unsigned long long)no_free, (unsigned long long)frames[0], (unsigned long long)sessions[0],
      (unsigned long long)torn[0], (unsigned long long)metadata[0], (unsigned long long)frames[1],
      (unsigned long long)sessions[1], (unsigned long long)torn[1], (unsigned long long)metadata[1],
      (unsigned long long)(probes.at(kCopyReader).errors.load() + probes.at(kHoldReader).errors.load()),
      own_segments().size());
}

// ------------------------------------------------------------------ reader killed

// True once no reader slot of the segment names `pid` any more (the writer reaped it).
bool reaped(const std::string& name, pid_t pid, uint64_t timeout_ns) {
  const uint64_t deadline = now_ns() + timeout_ns;
  SegmentView view;
  if (!view.open(name)) return false;
  while (true) {
    bool found = false;
    for (uint32_t i = 0; const shmx::ReaderSlot* r = view.reader(i); ++i) {
      if (r->state.load() != static_cast<uint32_t>(shmx::ReaderState::Free) &&
          r->pid == static_cast<uint32_t>(pid))
        found = true;
    }
    if (!found) return true;
    if (now_ns() >= deadline) return false;
    sleep_ns(200'000);
  }
}

void reader_kill_loop(const std::string& mode) {
  const uint64_t seed = run_seed();
  std::printf("SHMX_SEED=%llu (scenario reader-%s)\n", static_cast<unsigned long long>(seed), mode.c_str());
  Rng rng(seed ^ std::hash<std::string>{}(mode));
  install_segment_cleanup();
  const std::string name = segment_name("rk-" + mode);
  const ProbeTable probes = ProbeTable::create(4);
  enum : size_t { kWriter = 0, kCopyReader = 1, kHoldReader = 2, kVictim = 3 };
  const uint64_t started = now_ns();
  const Budget budget;

  // The control scenario's writer drains the rings back to back, so victims die inside send().
  const std::string writer_mode = mode == "control" ? "drain" : "steady";
  ChildProcess writer = start(probes, kWriter, name, rng, {{"role", "writer"}, {"mode", writer_mode}});
  ASSERT_TRUE(wait_ready(probes, writer, 10 * kSecond)) << "writer: " << probes.at(kWriter).detail;
  std::array<ChildProcess, 2> readers = {
      start(probes, kCopyReader, name, rng, {{"role", "reader"}, {"mode", "copy"}}),
      start(probes, kHoldReader, name, rng, {{"role", "reader"}, {"mode", "hold"}})};
  for (ChildProcess& r : readers) ASSERT_TRUE(wait_ready(probes, r, 10 * kSecond)) << "reader did not start";
  SegmentView view;
  ASSERT_TRUE(view.open(name));

  std::array<uint64_t, kPhaseCount> phases{};
  uint64_t kills = 0, held_at_kill = 0, messages = 0, max_reap_ns = 0, max_resume_ns = 0;
  while (budget.more(kills)) {
    ChildProcess victim = start(probes, kVictim, name, rng, {{"role", "reader"}, {"mode", mode}});
    int status = 0;
    if (!wait_ready(probes, victim, 10 * kSecond, &status)) {
      ADD_FAILURE() << "reader #" << kills + 1 << " did not start (" << describe_status(status)
                    << "): reader slots or held slots of killed readers were not freed?";
      if (victim.pid > 0) kill9(victim.pid);
      break;
    }
    sleep_ns(rng.range(0, 20 * kMs));
    const Probe& v = probes.at(kVictim);
    const uint64_t committed = view.frames_committed();
    status = kill9(victim.pid);
    const uint32_t phase = v.phase.load();  // its last stores before it died
    held_at_kill += v.held.load();
    const uint64_t killed_at = now_ns();
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      ADD_FAILURE() << "reader #" << kills + 1 << " ended before the kill: " << describe_status(status);
      break;
    }
    ++kills;
    ++phases[phase];
    messages += v.messages.load();
    // The writer frees the dead reader's slot (and its holds) at once: its liveness lock is gone.
    if (!reaped(name, victim.pid, 3 * kSecond)) {
      ADD_FAILURE() << "reader #" << kills << " (pid " << victim.pid << ") was not reaped within 3 s";
      break;
    }
    max_reap_ns = std::max(max_reap_ns, now_ns() - killed_at);
    // The writer never stalls: it keeps committing whatever the dead reader held.
    while (view.frames_committed() <= committed + 1 && now_ns() - killed_at < 2 * kSecond) sleep_ns(100'000);
    if (view.frames_committed() <= committed + 1) {
      ADD_FAILURE() << "the writer committed nothing for 2 s after reader #" << kills << " was killed";
      break;
    }
    max_resume_ns = std::max(max_resume_ns, now_ns() - killed_at);
    for (size_t r : {kCopyReader, kHoldReader, kWriter})
      ASSERT_EQ(probes.at(r).errors.load(), 0u) << "after kill #" << kills << ": " << probes.at(r).detail;
  }

  EXPECT_TRUE(survivors_progress(probes, {kCopyReader, kHoldReader}, 10 * kSecond))
      << "survivors stopped reading";
  const Probe& w = probes.at(kWriter);
  const uint64_t writer_reaped = w.reaped.load(), writer_messages = w.messages.load(),
                 resets = w.ring_resets.load();
  const uint64_t max_gap = w.max_gap_ns.load(), writer_frames = w.frames.load(),
                 no_free = w.no_free_slot.load();
  std::array<uint64_t, 2> frames{}, torn{};
  for (size_t r : {kCopyReader, kHoldReader}) {
    frames[r - 1] = probes.at(r).frames.load();
    torn[r - 1] = probes.at(r).torn_rejected.load();
  }
  view.close();
  for (ChildProcess& r : readers) stop_and_check(probes, r, "surviving reader");
  stop_and_check(probes, writer, "writer");
  EXPECT_GE(writer_reaped, kills) << "every killed reader is reaped by the writer";
  EXPECT_EQ(resets, 0u) << "a reader killed mid-message must never leave a corrupt control ring";
  EXPECT_LT(max_gap, 1 * kSecond) << "the writer stalled";
  EXPECT_TRUE(own_segments().empty()) << "left in /dev/shm: " << own_segments().front();
  EXPECT_GE(kills, std::min<uint64_t>(budget.kills, 20)) << "too few kills in the time budget";
  const double seconds = static_cast<double>(now_ns() - started) / kSecond;

  std::printf(
      "RESULT crash-loop scenario=reader-%s kills=%llu seconds=%.1f seed=%llu\n"
      "  kills by reader phase: %s; slots held at the kills: %llu; control messages sent by the victims: "
      "%llu\n"
      "  writer: %llu frames, max gap between commits %.1f ms, %llu loans refused, %llu readers reaped "
      "(slowest reap %.1f ms after the kill), %llu control messages valid, %llu corrupt rings\n"
      "  survivors: copy %llu frames (%llu torn reads rejected), hold %llu frames (%llu torn reads "
      "rejected); "
      "invalid frames returned: 0\n",
      mode.c_str(), (unsigned long long)kills, seconds, (unsigned long long)seed,
      phase_histogram(phases).c_str(), (unsigned long long)held_at_kill, (unsigned long long)messages,
      (unsigned long long)writer_frames, max_gap / 1e6, (unsigned long long)no_free,
      (unsigned long long)writer_reaped, max_reap_ns / 1e6, (unsigned long long)writer_messages,
      (unsigned long long)resets, (unsigned long long)frames[0], (unsigned long long)torn[0],
      (unsigned long long)frames[1], (unsigned long long)torn[1]);
  (void)max_resume_ns;
}

TEST(CrashLoop, WriterKilledMidCommit) { writer_kill_loop("commit"); }
TEST(CrashLoop, WriterKilledMidMetadataUpdate) { writer_kill_loop("metadata"); }
TEST(CrashLoop, ReaderKilledWhileHoldingSlots) { reader_kill_loop("holder"); }
TEST(CrashLoop, ReaderKilledMidControlMessage) { reader_kill_loop("control"); }

}  // namespace
}  // namespace shmx_stress

int main(int argc, char** argv) {
  const int role = shmx_stress::run_role(argc, argv);
  if (role >= 0) return role;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
