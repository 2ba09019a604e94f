// SPDX-License-Identifier: MIT
// stress_threads.cpp: every thread-safe entry point at once, in one process and across processes (the TSan program).
//
// One Server: two threads loan/fill/commit concurrently, a control thread polls control messages,
// reaps, lists readers and replaces the metadata. Clients in threads: a Copy reader, a Hold reader
// whose holds are released by another thread, an interrupter calling interrupt()/clear_interrupt() on
// the Copy reader, a reader that keeps closing and reopening, a control-message sender. Two reader
// processes (this executable again) read the same segment. Every frame is validated.
// The tsan stage runs it under ThreadSanitizer; the normal suite runs it briefly.
// Bounds: SHMX_STRESS_SECONDS (default 3).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "stress_roles.h"
#include "stress_support.h"

namespace shmx_stress {
namespace {

using shmx::Errc;
constexpr uint64_t kSecond = 1'000'000'000ull;

struct Counters {
  std::atomic<uint64_t> committed{0}, refused{0}, valid{0}, invalid{0}, interrupted{0}, reopens{0}, sent{0},
      received{0}, metadata_updates{0}, metadata_valid{0}, held_released_elsewhere{0};
  std::mutex failure_mutex;
  std::string first_failure;  // protected by failure_mutex
  void fail(const std::string& what) {
    invalid.fetch_add(1);
    std::lock_guard<std::mutex> lock(failure_mutex);
    if (first_failure.empty()) first_failure = what;
  }
};

void writer_thread(shmx::Server& server, std::atomic<bool>& stop, Counters& c, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> scratch(8 * 1024 + kFrameOverhead);
  while (!stop.load(std::memory_order_relaxed)) {
    auto loan = server.loan();
    if (!loan) {
      if (loan.code() != Errc::NoFreeSlot) c.fail("loan: " + loan.status().to_string());
      c.refused.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::yield();
      continue;
    }
    // Frame ids are assigned at commit and two threads commit, so the stamp carries id 0 (the crash
    // loops, with one committing thread, check ids too); session and checksum are checked.
    const uint32_t length = static_cast<uint32_t>(rng.range(0, 8 * 1024));
    auto dst = loan->tlvs().reserve(shmx::kTlvStreamData, 0, length + kFrameOverhead, shmx::kPayloadAlignment);
    if (!dst) {
      c.fail("reserve: " + dst.status().to_string());
      continue;
    }
    encode_frame(*dst, 0, server.session_id(), length, static_cast<uint32_t>(rng.next()));
    auto id = server.commit(std::move(loan).value());
    if (!id) c.fail("commit: " + id.status().to_string());
    c.committed.fetch_add(1, std::memory_order_relaxed);
  }
}

// Frames of this program carry frame id 0 in their stamp (see writer_thread).
std::string check_threaded_frame(const shmx::FrameView& f, uint64_t session) {
  return f.eos() ? "" : check_frame(f, session, false);
}

void copy_reader_thread(shmx::Client& client, std::atomic<bool>& stop, Counters& c) {
  uint64_t last = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    auto f = client.wait_next(50'000'000, shmx::ReadMode::Copy);
    if (!f) {
      if (f.code() == Errc::Interrupted) {
        c.interrupted.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::yield();
      } else if (f.code() != Errc::Timeout && f.code() != Errc::NoFrame) {
        c.fail("copy reader: " + f.status().to_string());
      }
      continue;
    }
    const std::string problem = check_threaded_frame(*f, client.session_id());
    if (!problem.empty() || f->header.frame_id <= last) c.fail("copy reader: " + problem + " id " + std::to_string(f->header.frame_id));
    last = f->header.frame_id;
    c.valid.fetch_add(1, std::memory_order_relaxed);
    if (f->header.frame_id % 64 == 0) {
      auto md = client.metadata();
      if (md && check_metadata(*md).empty()) c.metadata_valid.fetch_add(1, std::memory_order_relaxed);
      else if (md) c.fail("metadata: " + check_metadata(*md));
      else if (md.code() != Errc::NotReady) c.fail("metadata: " + md.status().to_string());
    }
  }
}

// Holds frames and hands the tokens to a releaser thread.
void hold_reader_thread(shmx::Client& client, std::atomic<bool>& stop, Counters& c, std::mutex& m,
                        std::condition_variable& cv, std::deque<shmx::HoldToken>& tokens) {
  uint64_t last = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    auto f = client.wait_next(50'000'000, shmx::ReadMode::Hold);
    if (!f) {
      if (f.code() != Errc::Timeout && f.code() != Errc::NoFrame) c.fail("hold reader: " + f.status().to_string());
      continue;
    }
    const std::string problem = check_threaded_frame(*f, client.session_id());
    if (!problem.empty() || f->header.frame_id <= last) c.fail("hold reader: " + problem);
    last = f->header.frame_id;
    c.valid.fetch_add(1, std::memory_order_relaxed);
    if (f->held) {
      std::lock_guard<std::mutex> lock(m);
      tokens.push_back(f->hold);
      cv.notify_one();
    }
  }
}

// Releases held slots from a thread other than the reader's.
void releaser_thread(std::atomic<bool>& stop, Counters& c, std::mutex& m, std::condition_variable& cv,
                     std::deque<shmx::HoldToken>& tokens) {
  std::unique_lock<std::mutex> lock(m);
  while (true) {
    cv.wait_for(lock, std::chrono::milliseconds(5), [&] { return !tokens.empty() || stop.load(); });
    while (!tokens.empty()) {
      const shmx::HoldToken token = tokens.front();
      tokens.pop_front();
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // hold it a little while
      shmx::Client::release(token);
      c.held_released_elsewhere.fetch_add(1, std::memory_order_relaxed);
      lock.lock();
    }
    if (stop.load()) return;
  }
}

TEST(ThreadStress, EveryEntryPointAtOnce) {
  const uint64_t seed = run_seed();
  std::printf("SHMX_SEED=%llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  install_segment_cleanup();
  const std::string name = segment_name("threads");
  const double seconds = stress_seconds(3);
  shmx::ServerOptions options;
  options.slot_count = 8;
  options.slot_payload_capacity = 16 * 1024;
  options.reader_capacity = 16;
  options.control_ring_capacity = 1024;
  options.reader_timeout_ms = 2000;
  auto created = shmx::Server::create(name, options, make_metadata(1, 2));
  ASSERT_TRUE(created) << created.status().to_string();
  shmx::Server server = std::move(created).value();

  Counters c;
  std::atomic<bool> stop{false};
  shmx::ClientOptions copy_options, hold_options;
  copy_options.reader_name = "thread-copy";
  hold_options.reader_name = "thread-hold";
  hold_options.max_held_slots = 2;
  shmx::Client copy_client, hold_client;
  ASSERT_TRUE(copy_client.open(name, copy_options));
  ASSERT_TRUE(hold_client.open(name, hold_options));

  const ProbeTable probes = ProbeTable::create(2);
  std::vector<pid_t> children;
  for (size_t i = 0; i < 2; ++i) {
    probes.reset(i);
    children.push_back(spawn_self(role_args({{"role", "reader"}, {"mode", i ? "hold" : "copy"}, {"any-id", "1"}, {"name", name},
                                             {"probes", std::to_string(probes.fd())}, {"probe", std::to_string(i)},
                                             {"seed", std::to_string(rng.next())}})));
  }

  std::mutex token_mutex;
  std::condition_variable token_cv;
  std::deque<shmx::HoldToken> tokens;
  std::vector<std::thread> threads;
  threads.emplace_back(writer_thread, std::ref(server), std::ref(stop), std::ref(c), rng.next());
  threads.emplace_back(writer_thread, std::ref(server), std::ref(stop), std::ref(c), rng.next());
  threads.emplace_back(copy_reader_thread, std::ref(copy_client), std::ref(stop), std::ref(c));
  threads.emplace_back(hold_reader_thread, std::ref(hold_client), std::ref(stop), std::ref(c), std::ref(token_mutex),
                       std::ref(token_cv), std::ref(tokens));
  threads.emplace_back(releaser_thread, std::ref(stop), std::ref(c), std::ref(token_mutex), std::ref(token_cv),
                       std::ref(tokens));
  // interrupt() and clear_interrupt() from another thread, as GStreamer's unlock/unlock_stop do.
  threads.emplace_back([&] {
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      copy_client.interrupt();
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      copy_client.clear_interrupt();
    }
  });
  // A reader that keeps reopening, and reads a frame each time.
  threads.emplace_back([&, reopen_seed = rng.next()] {
    Rng reopen_rng(reopen_seed);  // this thread's own
    shmx::Client client;
    shmx::ClientOptions o;
    o.reader_name = "thread-reopen";
    while (!stop.load()) {
      shmx::Status st = client.is_open() ? client.reopen() : client.open(name, o);
      if (st.code() == Errc::NoReaderSlot) {
        // Each reopen leaves its old registration to the writer (BYE or reaping) for a moment.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      if (!st) {
        c.fail("reopen: " + st.to_string());
        continue;
      }
      c.reopens.fetch_add(1, std::memory_order_relaxed);
      auto f = client.wait_next(20'000'000, shmx::ReadMode::Hold);
      if (f && !f->session_mismatch) {
        const std::string problem = check_threaded_frame(*f, client.session_id());
        if (!problem.empty()) c.fail("reopen reader: " + problem);
        if (f->held) shmx::Client::release(f->hold);
      }
      if (reopen_rng.chance(30)) client.close();
    }
  });
  // A control-message sender.
  threads.emplace_back([&] {
    shmx::Client client;
    shmx::ClientOptions o;
    o.reader_name = "thread-control";
    if (!client.open(name, o)) return c.fail("control sender could not open");
    uint64_t counter = 0;
    while (!stop.load()) {
      const auto message = encode_control(counter, static_cast<uint32_t>(counter % 300));
      shmx::Status st = client.send(kTlvStressControl, message.data(), static_cast<uint32_t>(message.size()));
      if (st) {
        ++counter;
        c.sent.fetch_add(1, std::memory_order_relaxed);
      } else if (st.code() == Errc::RingFull) {
        std::this_thread::yield();
      } else {
        c.fail("send: " + st.to_string());
      }
    }
  });

  // This thread: the writer's control plane and metadata updates.
  const uint64_t end = now_ns() + static_cast<uint64_t>(seconds * kSecond);
  uint64_t version = 1;
  while (now_ns() < end) {
    server.poll_control([&](const shmx::ControlMessage& m) {
      c.received.fetch_add(1, std::memory_order_relaxed);
      if (m.type == kTlvStressControl && !check_control(m.value)) c.fail("control message fails its checksum");
    });
    server.reap_stale_readers();
    (void)server.readers();
    (void)server.stats();
    if (rng.chance(5)) {
      if (shmx::Status st = server.set_metadata(make_metadata(++version, 2)); !st) c.fail("set_metadata: " + st.to_string());
      c.metadata_updates.fetch_add(1, std::memory_order_relaxed);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  stop.store(true);
  copy_client.interrupt();
  for (auto& t : threads) t.join();
  // Holds taken after the releaser's last round.
  for (const shmx::HoldToken& token : tokens) shmx::Client::release(token);
  tokens.clear();
  for (size_t i = 0; i < children.size(); ++i) {
    const int status = stop_child(children[i], 10 * kSecond);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "reader process " << i << ": " << describe_status(status) << " " << probes.at(i).detail;
    EXPECT_GT(probes.at(i).frames.load(), 0u) << "reader process " << i;
  }
  copy_client.close();
  hold_client.close();
  server.close();

  EXPECT_EQ(c.invalid.load(), 0u) << c.first_failure;
  EXPECT_GT(c.valid.load(), 0u);
  EXPECT_GT(c.interrupted.load(), 0u) << "interrupt() never reached a waiting reader";
  EXPECT_TRUE(own_segments().empty());
  std::printf("RESULT thread-stress seconds=%.1f seed=%llu: %llu frames committed by 2 threads (%llu loans refused), "
              "%llu frames validated in-process, %llu + %llu by 2 reader processes, %llu waits interrupted, "
              "%llu reopens, %llu holds released from another thread, %llu control messages sent / %llu received, "
              "%llu metadata updates, %llu metadata copies valid, %llu invalid\n",
              seconds, static_cast<unsigned long long>(seed), (unsigned long long)c.committed.load(),
              (unsigned long long)c.refused.load(), (unsigned long long)c.valid.load(),
              (unsigned long long)probes.at(0).frames.load(), (unsigned long long)probes.at(1).frames.load(),
              (unsigned long long)c.interrupted.load(), (unsigned long long)c.reopens.load(),
              (unsigned long long)c.held_released_elsewhere.load(), (unsigned long long)c.sent.load(),
              (unsigned long long)c.received.load(), (unsigned long long)c.metadata_updates.load(),
              (unsigned long long)c.metadata_valid.load(), (unsigned long long)c.invalid.load());
}

}  // namespace
}  // namespace shmx_stress

int main(int argc, char** argv) {
  const int role = shmx_stress::run_role(argc, argv);
  if (role >= 0) return role;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
