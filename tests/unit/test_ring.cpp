// SPDX-License-Identifier: MIT
// Frame ring in one process: latest-frame reads, loans, reader holds, waits and wake-ups, concurrency.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <thread>

#include "shmx_client.h"
#include "shmx_server.h"
#include "test_support.h"

using namespace shmx;
using namespace std::chrono_literals;
using shmx_test::Clock;
using shmx_test::ms_since;
using shmx_test::poll_until;
using shmx_test::SegmentCleanup;
using shmx_test::unique_segment_name;

namespace {

constexpr uint64_t kMs = 1000000;

// Opens the segment as raw bytes to watch the shared `waiters` count (so tests know a reader sleeps).
class WaiterProbe {
 public:
  explicit WaiterProbe(const std::string& name) {
    auto map = Map::open(name);
    EXPECT_TRUE(map) << map.status().to_string();
    if (map) map_ = std::move(map.value());
  }
  uint32_t waiters() const {
    if (!map_.valid()) return 0;
    const auto* header = reinterpret_cast<const GlobalHeader*>(map_.data());
    const auto* table =
        reinterpret_cast<const ReaderTableHeader*>(map_.data() + header->reader_region_offset);
    return table->waiters.load();
  }
  bool wait_for_sleeper(std::chrono::milliseconds timeout = 2000ms) const {
    return poll_until([&] { return waiters() > 0; }, timeout, 1ms);
  }

 private:
  Map map_;
};

class Ring : public ::testing::Test {
 protected:
  void create(uint32_t slots = 4, uint64_t payload = 64 * 1024) {
    ServerOptions options;
    options.slot_count = slots;
    options.slot_payload_capacity = payload;
    options.reader_capacity = 8;
    auto server = Server::create(seg_.name(), options);
    ASSERT_TRUE(server) << server.status().to_string();
    server_ = std::move(server.value());
  }
  ClientOptions client_options(uint32_t max_held = 0) {
    ClientOptions options;
    options.reader_name = "ring-test";
    options.heartbeat_thread = false;
    options.max_held_slots = max_held;
    return options;
  }
  void open(Client& client, uint32_t max_held = 0) {
    Status st = client.open(seg_.name(), client_options(max_held));
    ASSERT_TRUE(st) << st.to_string();
  }
  // Publishes one frame whose stream 0 bytes are the pattern of the frame id the server will assign.
  uint64_t publish_pattern(uint64_t expected_id, size_t size = 1024, uint64_t timestamp = 0) {
    std::vector<uint8_t> bytes(size);
    shmx_test::fill_pattern(bytes.data(), size, expected_id);
    FrameInfo info;
    info.timestamp_ns = timestamp;
    auto id = server_.publish({{0, bytes.data(), static_cast<uint32_t>(size)}}, info);
    EXPECT_TRUE(id) << id.status().to_string();
    if (!id) return 0;
    EXPECT_EQ(*id, expected_id);
    return *id;
  }
  static void expect_pattern(const FrameView& frame, size_t size = 1024) {
    TlvView data;
    ASSERT_TRUE(frame.stream_data(0, data)) << "frame " << frame.header.frame_id;
    ASSERT_EQ(data.length, size);
    EXPECT_EQ(shmx_test::check_pattern(data.value, data.length, frame.header.frame_id), size)
        << "frame " << frame.header.frame_id << " has wrong bytes";
  }

  SegmentCleanup seg_{unique_segment_name("ring")};
  Server server_;
};

TEST_F(Ring, NoFrameBeforeTheFirstCommitAndAfterTheLatest) {
  create();
  Client client;
  open(client);
  EXPECT_EQ(client.read_latest().code(), Errc::NoFrame);
  publish_pattern(1);
  auto frame = client.read_latest();
  ASSERT_TRUE(frame) << frame.status().to_string();
  EXPECT_EQ(frame->header.frame_id, 1u);
  EXPECT_EQ(client.read_latest().code(), Errc::NoFrame) << "the same frame is not returned twice";
  EXPECT_EQ(client.read_latest(ReadMode::Hold).code(), Errc::NoFrame);
}

TEST_F(Ring, LatestFrameWinsAndSkipsAreCounted) {
  create();
  Client client;
  open(client);
  publish_pattern(1);
  auto first = client.read_latest();
  ASSERT_TRUE(first) << first.status().to_string();
  EXPECT_EQ(first->skipped, 0u);

  const uint64_t before = monotonic_ns();
  for (uint64_t id = 2; id <= 5; ++id) publish_pattern(id, 1024, 1000 + id);
  const uint64_t after = monotonic_ns();
  auto frame = client.read_latest();
  ASSERT_TRUE(frame) << frame.status().to_string();
  EXPECT_EQ(frame->header.frame_id, 5u);
  EXPECT_EQ(frame->skipped, 3u);
  EXPECT_EQ(frame->header.session_id, server_.session_id());
  EXPECT_EQ(frame->header.timestamp_ns, 1005u);
  EXPECT_GE(frame->header.publish_ns, before);
  EXPECT_LE(frame->header.publish_ns, after);
  EXPECT_EQ(frame->header.flags, 0u);
  EXPECT_FALSE(frame->eos());
  EXPECT_FALSE(frame->held);
  EXPECT_FALSE(frame->session_mismatch);
  EXPECT_EQ(frame->payload_size, frame->header.payload_size);
  expect_pattern(*frame);

  for (uint64_t id = 6; id <= 8; ++id) publish_pattern(id);
  frame = client.read_latest();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->header.frame_id, 8u);
  EXPECT_EQ(frame->skipped, 2u);
  expect_pattern(*frame);

  publish_pattern(9);
  frame = client.read_latest();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->skipped, 0u);

  ClientStats stats = client.stats();
  EXPECT_EQ(stats.frames_received, 4u);
  EXPECT_EQ(stats.frames_skipped, 5u);
  EXPECT_EQ(server_.stats().frames_committed, 9u);
  auto readers = server_.readers();
  ASSERT_EQ(readers.size(), 1u);
  EXPECT_EQ(readers[0].last_frame_id, 9u);
  EXPECT_EQ(readers[0].frames_received, 4u);
  EXPECT_EQ(readers[0].frames_skipped, 5u);
}

TEST_F(Ring, LateJoinGetsTheLatestFrameWithoutCountingEarlierOnesAsSkipped) {
  create();
  for (uint64_t id = 1; id <= 5; ++id) publish_pattern(id);
  Client client;
  open(client);
  auto frame = client.read_latest();
  ASSERT_TRUE(frame) << frame.status().to_string();
  EXPECT_EQ(frame->header.frame_id, 5u);
  EXPECT_EQ(frame->skipped, 0u) << "frames before the reader joined were not skipped by it";
  expect_pattern(*frame);
}

TEST_F(Ring, LoanCommitFillsInPlaceWithAlignedStreamData) {
  create();
  Client client;
  open(client);
  auto loan = server_.loan();
  ASSERT_TRUE(loan) << loan.status().to_string();
  ASSERT_TRUE(loan->valid());
  EXPECT_LT(loan->slot(), server_.slot_count());
  EXPECT_EQ(loan->capacity(), server_.slot_payload_capacity());
  EXPECT_GE(loan->capacity(), 64u * 1024);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(loan->payload()) % kPayloadAlignment, 0u);
  auto data = loan->tlvs().reserve(kTlvStreamData, 0, 1000, kPayloadAlignment);
  ASSERT_TRUE(data) << data.status().to_string();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*data) % kPayloadAlignment, 0u);
  shmx_test::fill_pattern(*data, 1000, 1);
  ASSERT_TRUE(loan->tlvs().append(kTlvUserBase, 0, "meta", 4));
  FrameInfo info;
  info.timestamp_ns = 42;
  auto id = server_.commit(std::move(loan.value()), info);
  ASSERT_TRUE(id) << id.status().to_string();
  EXPECT_EQ(*id, 1u);

  auto frame = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(frame) << frame.status().to_string();
  EXPECT_TRUE(frame->held);
  EXPECT_EQ(frame->header.timestamp_ns, 42u);
  TlvView view;
  ASSERT_TRUE(frame->stream_data(0, view));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(view.value) % kPayloadAlignment, 0u) << "held stream data is aligned";
  EXPECT_EQ(shmx_test::check_pattern(view.value, 1000, 1), 1000u);
  ASSERT_TRUE(find_tlv(frame->payload, frame->payload_size, kTlvUserBase, 0, view));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view.value), view.length), "meta");
  Client::release(frame->hold);
}

TEST_F(Ring, AbandonPublishesNothingAndKeepsIdsContiguous) {
  create();
  Client client;
  open(client);
  {
    auto loan = server_.loan();
    ASSERT_TRUE(loan);
    ASSERT_TRUE(loan->tlvs().append(kTlvStreamData, 0, "junk", 4));
    server_.abandon(std::move(loan.value()));
  }
  {
    auto loan = server_.loan();
    ASSERT_TRUE(loan);
    // Dropped without commit: the destructor abandons it.
  }
  EXPECT_EQ(client.read_latest().code(), Errc::NoFrame);
  EXPECT_EQ(server_.stats().frames_committed, 0u);
  EXPECT_EQ(server_.stats().slots_loaned, 0u);
  // No phantom frame ids: readers would count them as skipped.
  EXPECT_EQ(publish_pattern(1), 1u);
  auto frame = client.read_latest();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->skipped, 0u);
  expect_pattern(*frame);
}

TEST_F(Ring, AllSlotsCanBeLoanedBeforeTheFirstFrameButNeverTheLatest) {
  create(4);
  {
    std::vector<Loan> loans;
    for (uint32_t i = 0; i < 4; ++i) {
      auto loan = server_.loan();
      ASSERT_TRUE(loan) << "loan " << i << ": " << loan.status().to_string();
      loans.push_back(std::move(loan.value()));
    }
    EXPECT_EQ(server_.stats().slots_loaned, 4u);
    EXPECT_EQ(server_.loan().code(), Errc::NoFreeSlot);
    std::set<uint32_t> slots;
    for (const auto& l : loans) slots.insert(l.slot());
    EXPECT_EQ(slots.size(), 4u) << "four distinct slots";
  }
  EXPECT_EQ(server_.stats().slots_loaned, 0u);
  publish_pattern(1);
  std::vector<Loan> loans;
  for (uint32_t i = 0; i < 3; ++i) {
    auto loan = server_.loan();
    ASSERT_TRUE(loan) << loan.status().to_string();
    loans.push_back(std::move(loan.value()));
  }
  EXPECT_EQ(server_.loan().code(), Errc::NoFreeSlot) << "the latest frame's slot is never loaned";
}

TEST_F(Ring, HeldSlotsLeaveNoFreeSlotAndTheWriterDoesNotBlock) {
  create(3);
  Client client;
  open(client, 2);
  publish_pattern(1);
  auto f1 = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(f1);
  ASSERT_TRUE(f1->held);
  publish_pattern(2);
  auto f2 = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(f2);
  ASSERT_TRUE(f2->held);
  EXPECT_NE(f1->hold.slot, f2->hold.slot);
  publish_pattern(3);  // into the one slot neither held nor latest
  EXPECT_EQ(server_.stats().slots_held_by_readers, 2u);

  const auto start = Clock::now();
  auto loan = server_.loan();
  EXPECT_LT(ms_since(start), 50.0) << "loan must not wait for readers";
  EXPECT_EQ(loan.code(), Errc::NoFreeSlot) << loan.status().to_string();
  FrameInfo info;
  const uint8_t byte = 0;
  auto published = server_.publish({{0, &byte, 1}}, info);
  EXPECT_EQ(published.code(), Errc::NoFreeSlot);
  EXPECT_EQ(server_.stats().loans_refused, 2u);

  Client::release(f1->hold);
  EXPECT_EQ(server_.stats().slots_held_by_readers, 1u);
  auto again = server_.loan();
  ASSERT_TRUE(again) << again.status().to_string();
  EXPECT_EQ(again->slot(), f1->hold.slot) << "the released slot is the only free one";
  server_.abandon(std::move(again.value()));
  Client::release(f2->hold);
  EXPECT_EQ(server_.stats().slots_held_by_readers, 0u);
}

TEST_F(Ring, HeldSlotIsNeverLoanedAndItsBytesStayIntact) {
  create(4, 16 * 1024);
  Client client;
  open(client, 1);
  publish_pattern(1, 16 * 1024);
  auto held = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(held);
  ASSERT_TRUE(held->held);
  const uint32_t held_slot = held->hold.slot;
  std::vector<uint8_t> snapshot(held->payload, held->payload + held->payload_size);

  for (uint64_t id = 2; id <= 200; ++id) {
    auto loan = server_.loan();
    ASSERT_TRUE(loan) << "frame " << id << ": " << loan.status().to_string();
    ASSERT_NE(loan->slot(), held_slot) << "a held slot was loaned";
    auto data = loan->tlvs().reserve(kTlvStreamData, 0, 16 * 1024, kPayloadAlignment);
    ASSERT_TRUE(data);
    std::memset(*data, 0xEE, 16 * 1024);
    ASSERT_TRUE(server_.commit(std::move(loan.value())));
  }
  EXPECT_EQ(std::memcmp(held->payload, snapshot.data(), snapshot.size()), 0) << "held bytes changed";
  expect_pattern(*held, 16 * 1024);

  Client::release(held->hold);
  // Every slot but the latest can now be loaned at once: the released one is among them.
  std::vector<Loan> loans;
  bool available = false;
  for (int i = 0; i < 3; ++i) {
    auto loan = server_.loan();
    ASSERT_TRUE(loan) << loan.status().to_string();
    available = available || loan->slot() == held_slot;
    loans.push_back(std::move(loan).value());
  }
  EXPECT_TRUE(available) << "a released slot is free again";
}

TEST_F(Ring, HoldsBeyondMaxFallBackToCopies) {
  create(8);
  Client client;
  open(client, 1);
  publish_pattern(1);
  auto first = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->held);
  publish_pattern(2);
  auto second = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->held) << "max_held_slots=1 reached: served as a copy";
  EXPECT_FALSE(second->hold.valid());
  expect_pattern(*second);
  EXPECT_EQ(client.stats().copy_fallbacks, 1u);
  Client::release(first->hold);
  publish_pattern(3);
  auto third = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->held);
  expect_pattern(*third);
  Client::release(third->hold);
  EXPECT_EQ(client.stats().copy_fallbacks, 1u);
}

TEST_F(Ring, DefaultMaxHeldIsAQuarterOfTheSlots) {
  create(8);
  Client client;
  open(client, 0);
  std::vector<HoldToken> holds;
  for (uint64_t id = 1; id <= 4; ++id) {
    publish_pattern(id);
    auto frame = client.read_latest(ReadMode::Hold);
    ASSERT_TRUE(frame);
    if (frame->held) holds.push_back(frame->hold);
  }
  EXPECT_EQ(holds.size(), 2u);
  for (const auto& h : holds) Client::release(h);
}

TEST_F(Ring, HoldOutlivesTheClient) {
  create();
  HoldToken token;
  const uint8_t* payload = nullptr;
  size_t size = 0;
  {
    Client client;
    open(client);
    publish_pattern(1);
    auto frame = client.read_latest(ReadMode::Hold);
    ASSERT_TRUE(frame);
    ASSERT_TRUE(frame->held);
    token = frame->hold;
    payload = frame->payload;
    size = frame->payload_size;
    client.close();
  }
  // The mapping stays until the last hold is released.
  TlvView view;
  ASSERT_TRUE(find_tlv(payload, size, kTlvStreamData, 0, view));
  EXPECT_EQ(shmx_test::check_pattern(view.value, view.length, 1), view.length);
  Client::release(token);
  Client::release(HoldToken{});  // an empty token is a no-op
}

TEST_F(Ring, EosFrame) {
  create();
  Client client;
  open(client);
  publish_pattern(1);
  auto eos = server_.publish_eos();
  ASSERT_TRUE(eos) << eos.status().to_string();
  EXPECT_EQ(*eos, 2u);
  auto frame = client.read_latest();
  ASSERT_TRUE(frame);
  EXPECT_TRUE(frame->eos());
  EXPECT_EQ(frame->header.flags & kFrameFlagEos, kFrameFlagEos);
  EXPECT_EQ(frame->payload_size, 0u);
  TlvView view;
  EXPECT_FALSE(frame->stream_data(0, view));
}

TEST_F(Ring, WaitNextTimesOutInBoundedTime) {
  create();
  Client client;
  open(client);
  const auto start = Clock::now();
  auto frame = client.wait_next(50 * kMs);
  const double elapsed = ms_since(start);
  EXPECT_EQ(frame.code(), Errc::Timeout) << frame.status().to_string();
  EXPECT_GE(elapsed, 45.0);
  EXPECT_LT(elapsed, 500.0);
}

TEST_F(Ring, WaitNextReturnsAtOnceWhenAFrameIsPending) {
  create();
  Client client;
  open(client);
  publish_pattern(1);
  const auto start = Clock::now();
  auto frame = client.wait_next(5000 * kMs);
  EXPECT_LT(ms_since(start), 50.0);
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->header.frame_id, 1u);
}

TEST_F(Ring, WaitNextIsWokenByACommit) {
  create();
  Client client;
  open(client);
  WaiterProbe probe(seg_.name());
  std::vector<double> latencies;
  for (uint64_t id = 1; id <= 20; ++id) {
    std::atomic<int64_t> woke_ns{0};
    Result<FrameView> result(Errc::Timeout, "not run");
    std::thread waiter([&] {
      result = client.wait_next(5000 * kMs);
      woke_ns = static_cast<int64_t>(monotonic_ns());
    });
    shmx_test::ScopeExit join([&] {
      if (waiter.joinable()) {
        client.interrupt();
        waiter.join();
      }
    });
    ASSERT_TRUE(probe.wait_for_sleeper()) << "reader never went to sleep";
    const int64_t commit_ns = static_cast<int64_t>(monotonic_ns());
    publish_pattern(id);
    waiter.join();
    ASSERT_TRUE(result) << result.status().to_string();
    EXPECT_EQ(result->header.frame_id, id);
    latencies.push_back((woke_ns - commit_ns) / 1e6);
  }
  std::sort(latencies.begin(), latencies.end());
  // A missed wake-up would show as ~100 ms (the liveness slice), not a few microseconds.
  EXPECT_LT(latencies[latencies.size() / 2], 10.0) << "median wake-up latency (ms)";
  EXPECT_LT(latencies[latencies.size() - 2], 60.0) << "second-worst wake-up latency (ms)";
  EXPECT_EQ(probe.waiters(), 0u) << "waiters count returns to zero";
}

TEST_F(Ring, InterruptWakesAWaiterAtOnce) {
  create();
  Client client;
  open(client);
  WaiterProbe probe(seg_.name());
  Result<FrameView> result(Errc::Ok, "not run");
  std::atomic<int64_t> woke_ns{0};
  std::thread waiter([&] {
    result = client.wait_next(10000 * kMs);
    woke_ns = static_cast<int64_t>(monotonic_ns());
  });
  shmx_test::ScopeExit join([&] {
    if (waiter.joinable()) {
      client.interrupt();
      waiter.join();
    }
  });
  ASSERT_TRUE(probe.wait_for_sleeper());
  const int64_t interrupt_ns = static_cast<int64_t>(monotonic_ns());
  client.interrupt();
  waiter.join();
  EXPECT_EQ(result.code(), Errc::Interrupted) << result.status().to_string();
  EXPECT_LT((woke_ns - interrupt_ns) / 1e6, 50.0) << "ms from interrupt() to return";

  // Sticky until cleared, even with a frame available.
  publish_pattern(1);
  EXPECT_EQ(client.wait_next(1000 * kMs).code(), Errc::Interrupted);
  client.clear_interrupt();
  auto frame = client.wait_next(1000 * kMs);
  ASSERT_TRUE(frame) << frame.status().to_string();
  EXPECT_EQ(frame->header.frame_id, 1u);
  EXPECT_EQ(client.wait_next(20 * kMs).code(), Errc::Timeout);
}

TEST_F(Ring, InterruptBeforeWaitReturnsImmediately) {
  create();
  Client client;
  open(client);
  client.interrupt();
  const auto start = Clock::now();
  EXPECT_EQ(client.wait_next(0).code(), Errc::Interrupted) << "even an unbounded wait";
  EXPECT_LT(ms_since(start), 50.0);
  client.clear_interrupt();
}

TEST_F(Ring, ConcurrentLoanCommitFromTwoThreads) {
  create(8, 4096);
  Client client;
  open(client);
  constexpr int kPerThread = 3000;
  constexpr int kMinFramesRead = 50;  // producers keep going until the reader has really raced them
  std::atomic<bool> failed{false};
  std::atomic<bool> done_reading{false};
  std::atomic<int> running{2};
  std::vector<uint64_t> ids[2];  // written by its producer only, read after join
  const auto deadline = Clock::now() + 20s;
  auto producer = [&](int t) {
    for (int i = 0; (i < kPerThread || !done_reading) && !failed && Clock::now() < deadline;) {
      auto loan = server_.loan();
      if (!loan) {
        if (loan.code() != Errc::NoFreeSlot) failed = true;
        continue;
      }
      auto data = loan->tlvs().reserve(kTlvStreamData, 0, 256, kPayloadAlignment);
      if (!data) {
        failed = true;
        break;
      }
      std::memset(*data, t * 100 + (i % 100), 256);
      auto id = server_.commit(std::move(loan.value()));
      if (!id) {
        failed = true;
        break;
      }
      ids[t].push_back(*id);
      ++i;
    }
    running.fetch_sub(1);
  };
  std::thread a(producer, 0), b(producer, 1);
  shmx_test::ScopeExit join([&] {
    if (a.joinable()) {
      failed = true;
      a.join();
      b.join();
    }
  });
  // Read while they produce: every frame is internally consistent and ids only go forward.
  uint64_t last = 0;
  int frames = 0;
  while (running > 0) {
    auto frame = client.read_latest();
    if (!frame) {
      ASSERT_EQ(frame.code(), Errc::NoFrame) << frame.status().to_string();
      continue;
    }
    ASSERT_GT(frame->header.frame_id, last);
    last = frame->header.frame_id;
    TlvView view;
    ASSERT_TRUE(frame->stream_data(0, view));
    ASSERT_EQ(view.length, 256u);
    for (uint32_t j = 1; j < 256; ++j) ASSERT_EQ(view.value[j], view.value[0]) << "torn frame returned";
    if (++frames >= kMinFramesRead) done_reading = true;
  }
  a.join();
  b.join();
  ASSERT_FALSE(failed);
  EXPECT_GE(frames, kMinFramesRead);
  std::vector<uint64_t> all(ids[0]);
  all.insert(all.end(), ids[1].begin(), ids[1].end());
  std::sort(all.begin(), all.end());
  ASSERT_GE(all.size(), 2u * kPerThread);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1) << "frame ids are unique and contiguous";
  EXPECT_EQ(server_.stats().frames_committed, all.size());
  // Committers may finish out of order, but the latest frame ends as the highest id.
  Client late;
  open(late);
  auto newest = late.read_latest();
  ASSERT_TRUE(newest) << newest.status().to_string();
  EXPECT_EQ(newest->header.frame_id, all.size());
}

TEST_F(Ring, TornFramesAreNeverReturned) {
  create(3, 64 * 1024);  // few slots: the writer reuses them while the reader copies
  Client client;
  open(client, 1);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> published{0};
  std::thread writer([&] {
    std::vector<uint8_t> bytes(64 * 1024 - 64);
    for (uint64_t id = 1; !stop; ++id) {
      shmx_test::fill_pattern(bytes.data(), bytes.size(), id);
      auto r = server_.publish({{0, bytes.data(), static_cast<uint32_t>(bytes.size())}});
      if (r) published = *r;
      // NoFreeSlot is possible while the reader holds; the writer just moves on.
    }
  });
  shmx_test::ScopeExit join([&] {
    stop = true;
    if (writer.joinable()) writer.join();
  });
  uint64_t last = 0;
  int copies = 0, holds = 0;
  const auto deadline = Clock::now() + 400ms;
  while (Clock::now() < deadline) {
    const ReadMode mode = (copies + holds) % 2 ? ReadMode::Hold : ReadMode::Copy;
    auto frame = client.read_latest(mode);
    if (!frame) {
      ASSERT_EQ(frame.code(), Errc::NoFrame) << frame.status().to_string();
      continue;
    }
    ASSERT_GT(frame->header.frame_id, last);
    last = frame->header.frame_id;
    TlvView view;
    ASSERT_TRUE(frame->stream_data(0, view));
    ASSERT_EQ(shmx_test::check_pattern(view.value, view.length, frame->header.frame_id), view.length)
        << "torn frame " << frame->header.frame_id << (frame->held ? " (held)" : " (copy)");
    if (frame->held) {
      // Still intact after the writer had time to cycle the other slots many times.
      std::this_thread::sleep_for(1ms);
      ASSERT_EQ(shmx_test::check_pattern(view.value, view.length, frame->header.frame_id), view.length)
          << "held frame overwritten";
      Client::release(frame->hold);
      ++holds;
    } else {
      ++copies;
    }
  }
  stop = true;
  writer.join();
  EXPECT_GT(copies, 10);
  EXPECT_GT(holds, 10);
  EXPECT_GT(published.load(), 100u);
  RecordProperty("torn_reads", static_cast<int>(client.stats().torn_reads));
}

TEST_F(Ring, LoanOutlivingTheServerFailsToCommit) {
  create();
  auto loan = server_.loan();
  ASSERT_TRUE(loan);
  Loan kept = std::move(loan.value());
  server_.close();
  EXPECT_FALSE(shmx_test::segment_exists(seg_.name()));
  std::memset(kept.payload(), 0, 64);  // still mapped
  auto id = server_.commit(std::move(kept));
  EXPECT_EQ(id.code(), Errc::Closed) << id.status().to_string();
}

TEST_F(Ring, SilentLiveReaderIsReportedStaleButNeverReaped) {
  ServerOptions options;
  options.slot_count = 3;
  options.slot_payload_capacity = 4096;
  options.reader_timeout_ms = 200;
  auto server = Server::create(seg_.name(), options);
  ASSERT_TRUE(server) << server.status().to_string();
  server_ = std::move(server.value());
  Client client;
  open(client, 1);  // no heartbeat thread: the reader looks stopped (e.g. in a debugger)
  const auto opened = Clock::now();
  publish_pattern(1);
  auto held = client.read_latest(ReadMode::Hold);
  ASSERT_TRUE(held && held->held);
  shmx_test::ScopeExit release([&] { Client::release(held->hold); });
  publish_pattern(2);
  ASSERT_EQ(server_.readers().size(), 1u);
  EXPECT_FALSE(server_.readers()[0].stale);

  ASSERT_TRUE(poll_until(
      [&] {
        auto readers = server_.readers();
        return readers.size() == 1 && readers[0].stale;
      },
      3000ms, 5ms))
      << "a silent reader is reported stale";
  EXPECT_GE(ms_since(opened), 190.0) << "reported stale before reader_timeout_ms";
  auto readers = server_.readers();
  ASSERT_EQ(readers.size(), 1u);
  EXPECT_TRUE(readers[0].alive);
  EXPECT_GE(readers[0].heartbeat_age_ns, 200u * kMs);

  // Alive (its lock is held): never reaped, its hold stays valid and untouched.
  EXPECT_TRUE(server_.reap_stale_readers().empty());
  EXPECT_EQ(server_.readers().size(), 1u);
  EXPECT_EQ(server_.stats().slots_held_by_readers, 1u);
  for (uint64_t id = 3; id <= 20; ++id) publish_pattern(id);
  expect_pattern(*held);

  client.heartbeat();
  readers = server_.readers();
  ASSERT_EQ(readers.size(), 1u);
  EXPECT_FALSE(readers[0].stale) << "a heartbeat makes it fresh again";
}

TEST_F(Ring, HeartbeatThreadKeepsAPausedReaderFresh) {
  ServerOptions options;
  options.slot_count = 3;
  options.slot_payload_capacity = 4096;
  options.reader_timeout_ms = 200;
  auto server = Server::create(seg_.name(), options);
  ASSERT_TRUE(server) << server.status().to_string();
  server_ = std::move(server.value());
  Client client;
  ClientOptions copts;
  copts.heartbeat_thread = true;
  ASSERT_TRUE(client.open(seg_.name(), copts));
  // The application does nothing for three timeouts; the writer keeps looking.
  const auto deadline = Clock::now() + 600ms;
  while (Clock::now() < deadline) {
    ASSERT_TRUE(server_.reap_stale_readers().empty()) << "a live reader was reaped";
    auto readers = server_.readers();
    ASSERT_EQ(readers.size(), 1u);
    ASSERT_FALSE(readers[0].stale) << "age " << readers[0].heartbeat_age_ns / 1e6 << " ms";
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace
