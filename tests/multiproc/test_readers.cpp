// SPDX-License-Identifier: MIT
// Reader processes against a writer in the test process: late join, several readers, crashes, early start.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <sstream>

#include "child_process.h"
#include "roles.h"
#include "shmx_server.h"
#include "test_support.h"

using namespace shmx;
using namespace std::chrono_literals;
using namespace shmx_test;

namespace {

std::vector<std::string> reader_args(const std::string& segment, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--role=reader", "--segment=" + segment, "--deadline-ms=20000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

Server create_server(const std::string& name, uint32_t slots = 8) {
  auto server = Server::create(name, role_server_options(slots));
  EXPECT_TRUE(server) << server.status().to_string();
  return server ? std::move(server.value()) : Server();
}

uint64_t word_u64(const std::string& line, size_t index) {
  auto words = split_words(line);
  return index < words.size() ? std::strtoull(words[index].c_str(), nullptr, 10) : ~uint64_t{0};
}

bool wait_for_readers(Server& server, size_t count, std::chrono::milliseconds timeout = 5000ms) {
  return poll_until(
      [&] {
        server.poll_control([](const ControlMessage&) {});
        return server.readers().size() == count;
      },
      timeout);
}

TEST(MultiProcess, LateJoinerGetsTheLatestFrameAtOnce) {
  SegmentCleanup seg(unique_segment_name("late"));
  Server server = create_server(seg.name());
  ASSERT_TRUE(server.valid());
  for (uint64_t id = 1; id <= 10; ++id) ASSERT_TRUE(publish_pattern_frame(server, id));

  // No frame is committed after the reader starts: it can only get frame 10 by late join.
  ChildProcess reader = ChildProcess::spawn(reader_args(seg.name(), {"--frames=1"}));
  ASSERT_TRUE(reader.valid());
  auto open = reader.wait_for_line("OPEN", 5000ms);
  ASSERT_TRUE(open) << reader.transcript();
  EXPECT_EQ(word_u64(*open, 1), server.session_id());
  const auto opened = Clock::now();
  auto frame = reader.wait_for_line("FRAME", 5000ms);
  ASSERT_TRUE(frame) << reader.transcript();
  EXPECT_LT(ms_since(opened), 500.0) << "the late joiner waited for its first frame";
  EXPECT_EQ(word_u64(*frame, 1), 10u);
  EXPECT_EQ(word_u64(*frame, 2), server.session_id());
  EXPECT_EQ(reader.wait_exit(5000ms), std::optional<int>(kExitOk)) << reader.transcript();
}

TEST(MultiProcess, ThreeReadersGetIncreasingIntactFrames) {
  SegmentCleanup seg(unique_segment_name("three"));
  Server server = create_server(seg.name());
  ASSERT_TRUE(server.valid());
  constexpr uint64_t kFrames = 120;
  std::vector<ChildProcess> readers;
  readers.push_back(ChildProcess::spawn(reader_args(seg.name(), {"--frames=120", "--name=copy"})));
  readers.push_back(
      ChildProcess::spawn(reader_args(seg.name(), {"--frames=120", "--name=hold", "--mode=hold"})));
  readers.push_back(
      ChildProcess::spawn(reader_args(seg.name(), {"--frames=120", "--name=slow", "--slow-us=4000"})));
  for (auto& r : readers) ASSERT_TRUE(r.valid());
  ASSERT_TRUE(wait_for_readers(server, 3)) << "registered: " << server.readers().size();
  std::set<std::string> names;
  for (const auto& info : server.readers()) {
    names.insert(info.name);
    EXPECT_NE(info.pid, shmx_test::current_pid());
    EXPECT_TRUE(info.alive);
  }
  EXPECT_EQ(names, (std::set<std::string>{"copy", "hold", "slow"}));

  // Publish at ~1 kHz until every reader is done; the writer never waits and never runs out of slots.
  uint64_t next_id = 1;
  const auto deadline = Clock::now() + 20s;
  auto all_exited = [&] {
    for (auto& r : readers) {
      if (r.running()) return false;
    }
    return true;
  };
  while (!all_exited() && Clock::now() < deadline) {
    auto id = publish_pattern_frame(server, next_id);
    ASSERT_TRUE(id) << "frame " << next_id << ": " << id.status().to_string();
    ++next_id;
    server.poll_control([](const ControlMessage&) {});
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(server.stats().loans_refused, 0u);
  for (size_t i = 0; i < readers.size(); ++i) {
    auto rc = readers[i].wait_exit(2000ms);
    ASSERT_EQ(rc, std::optional<int>(kExitOk)) << "reader " << i << ":\n" << readers[i].transcript();
    // Drain the transcript: every FRAME line has the writer's session and increasing ids.
    while (readers[i].read_line(100ms)) {
    }
    uint64_t last = 0, frames = 0, skipped = 0, held = 0;
    std::istringstream lines(readers[i].transcript());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("FRAME", 0) != 0) continue;
      auto w = split_words(line);
      ASSERT_EQ(w.size(), 5u) << line;
      const uint64_t id = std::stoull(w[1]);
      EXPECT_GT(id, last) << "reader " << i;
      EXPECT_EQ(std::stoull(w[2]), server.session_id());
      last = id;
      ++frames;
      skipped += std::stoull(w[3]);
      held += w[4] == "1";
    }
    EXPECT_EQ(frames, kFrames) << "reader " << i;
    EXPECT_NE(readers[i].transcript().find("DONE"), std::string::npos);
    if (i == 1) {
      EXPECT_GT(held, kFrames / 2) << "the hold reader mostly holds";
    }
    if (i == 2) {
      EXPECT_GT(skipped, 0u) << "a slow reader skips frames instead of slowing the writer";
    }
  }
  EXPECT_TRUE(poll_until(
      [&] {
        server.poll_control([](const ControlMessage&) {});
        return server.readers().empty();
      },
      2000ms))
      << "readers that closed are gone from the table";
}

TEST(MultiProcess, KilledReaderIsReapedAndItsHeldSlotsFreed) {
  SegmentCleanup seg(unique_segment_name("reap"));
  Server server = create_server(seg.name(), 4);
  ASSERT_TRUE(server.valid());
  ChildProcess reader = ChildProcess::spawn(reader_args(seg.name(), {"--hold=2", "--frames=1000"}));
  ASSERT_TRUE(reader.valid());
  ASSERT_TRUE(wait_for_readers(server, 1));
  ASSERT_TRUE(publish_pattern_frame(server, 1));
  ASSERT_TRUE(reader.wait_for_line("HELD", 5000ms)) << reader.transcript();
  ASSERT_TRUE(publish_pattern_frame(server, 2));
  ASSERT_TRUE(reader.wait_for_line("HELD", 5000ms)) << reader.transcript();

  auto infos = server.readers();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].pid, reader.pid());
  EXPECT_EQ(infos[0].held_slots, 2u);
  EXPECT_EQ(server.stats().slots_held_by_readers, 2u);
  {
    // 4 slots: the latest (also held) and one more are held, so two are free.
    auto a = server.loan();
    auto b = server.loan();
    ASSERT_TRUE(a) << a.status().to_string();
    ASSERT_TRUE(b) << b.status().to_string();
    EXPECT_EQ(server.loan().code(), Errc::NoFreeSlot);
  }

  reader.kill9();
  ASSERT_EQ(reader.wait_exit(2000ms), std::optional<int>(ChildProcess::kKilledStatus));
  const auto killed = Clock::now();
  std::vector<ReaderInfo> reaped;
  ASSERT_TRUE(poll_until(
      [&] {
        auto r = server.reap_stale_readers();
        reaped.insert(reaped.end(), r.begin(), r.end());
        return !reaped.empty();
      },
      2000ms, 5ms))
      << "a dead reader was not reaped";
  EXPECT_LT(ms_since(killed), 500.0) << "a dead reader is reaped through its lock, not its heartbeat timeout";
  ASSERT_EQ(reaped.size(), 1u);
  EXPECT_EQ(reaped[0].pid, reader.pid());
  EXPECT_TRUE(server.readers().empty());
  EXPECT_EQ(server.stats().slots_held_by_readers, 0u);
  std::vector<Loan> loans;
  for (int i = 0; i < 3; ++i) {
    auto loan = server.loan();
    ASSERT_TRUE(loan) << "loan " << i << " after reaping: " << loan.status().to_string();
    loans.push_back(std::move(loan.value()));
  }
}

TEST(MultiProcess, ReadersKilledAtRandomMomentsNeverStallTheWriter) {
  SegmentCleanup seg(unique_segment_name("chaos"));
  Server server = create_server(seg.name(), 4);
  ASSERT_TRUE(server.valid());
  std::mt19937 rng(4242);
  uint64_t next_id = 1;
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ChildProcess reader =
        ChildProcess::spawn(reader_args(seg.name(), {"--frames=1000000", "--mode=hold", "--name=victim"}));
    ASSERT_TRUE(reader.valid());
    const auto kill_at = Clock::now() + std::chrono::milliseconds(5 + rng() % 60);
    while (Clock::now() < kill_at) {
      auto id = publish_pattern_frame(server, next_id);
      ASSERT_TRUE(id) << id.status().to_string();
      ++next_id;
      std::this_thread::sleep_for(200us);
    }
    reader.kill9();
    ASSERT_TRUE(reader.wait_exit(2000ms));
    EXPECT_EQ(reader.transcript().find("BAD"), std::string::npos) << reader.transcript();
    ASSERT_TRUE(poll_until(
        [&] {
          server.reap_stale_readers();
          return server.readers().empty() && server.stats().slots_held_by_readers == 0;
        },
        2000ms))
        << "not reaped: " << server.readers().size() << " readers";
  }
  EXPECT_EQ(server.stats().loans_refused, 0u);
}

TEST(MultiProcess, ReaderStartedBeforeTheWriterWaitsForIt) {
  SegmentCleanup seg(unique_segment_name("early"));
  ChildProcess reader =
      ChildProcess::spawn(reader_args(seg.name(), {"--frames=3", "--open-timeout-ms=10000"}));
  ASSERT_TRUE(reader.valid());
  ASSERT_TRUE(reader.wait_for_line("WAITING", 5000ms)) << reader.transcript();
  // No writer yet: the reader must still be waiting, not failing.
  EXPECT_FALSE(reader.read_line(150ms)) << reader.transcript();
  EXPECT_TRUE(reader.running()) << reader.transcript();

  Server server = create_server(seg.name());
  ASSERT_TRUE(server.valid());
  uint64_t next_id = 1;
  const auto deadline = Clock::now() + 10s;
  while (reader.running() && Clock::now() < deadline) {
    ASSERT_TRUE(publish_pattern_frame(server, next_id));
    ++next_id;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(reader.wait_exit(1000ms), std::optional<int>(kExitOk)) << reader.transcript();
  while (reader.read_line(100ms)) {
  }
  const std::string& t = reader.transcript();
  EXPECT_NE(t.find("OPEN " + std::to_string(server.session_id())), std::string::npos) << t;
  EXPECT_NE(t.find("DONE 3"), std::string::npos) << t;
}

}  // namespace
