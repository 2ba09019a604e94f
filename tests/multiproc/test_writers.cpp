// SPDX-License-Identifier: MIT
// Writer processes against readers: kill -9 and restart, clean close, a second writer, stale segments.
#include <gtest/gtest.h>

#include <random>

#include "child_process.h"
#include "roles.h"
#include "shmx_client.h"
#include "shmx_server.h"
#include "test_support.h"

using namespace shmx;
using namespace std::chrono_literals;
using namespace shmx_test;

namespace {

constexpr uint64_t kMs = 1000000;

std::vector<std::string> writer_args(const std::string& segment, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--role=writer", "--segment=" + segment, "--deadline-ms=30000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> reader_args(const std::string& segment, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--role=reader", "--segment=" + segment, "--deadline-ms=20000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Starts a writer process and returns its session id (0 if it did not start).
uint64_t start_writer(ChildProcess& writer, const std::string& segment, std::vector<std::string> extra = {}) {
  writer = ChildProcess::spawn(writer_args(segment, std::move(extra)));
  if (!writer.valid()) return 0;
  auto line = writer.read_line(5000ms);
  if (!line || line->rfind("SESSION ", 0) != 0) {
    ADD_FAILURE() << "writer did not start: " << writer.transcript();
    return 0;
  }
  return std::strtoull(line->c_str() + 8, nullptr, 10);
}

ClientOptions client_options() {
  ClientOptions options;
  options.reader_name = "parent";
  return options;
}

// Reads frames until one of `session` arrives; checks its bytes.
::testing::AssertionResult read_frame_of(Client& client, uint64_t session,
                                         std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto frame = client.wait_next(100 * kMs);
    if (!frame) {
      if (frame.code() == Errc::Timeout) continue;
      return ::testing::AssertionFailure() << "read failed: " << frame.status().to_string();
    }
    if (frame->session_mismatch) return ::testing::AssertionFailure() << "unexpected session_mismatch";
    if (frame->header.session_id != session) {
      return ::testing::AssertionFailure()
             << "frame of session " << frame->header.session_id << ", want " << session;
    }
    TlvView data;
    if (!frame->stream_data(0, data) || data.length != kRolePayload) {
      return ::testing::AssertionFailure() << "frame " << frame->header.frame_id << " has no stream 0";
    }
    if (check_pattern(data.value, data.length, frame->header.frame_id) != data.length) {
      return ::testing::AssertionFailure() << "frame " << frame->header.frame_id << " has wrong bytes";
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no frame of session " << session << " in time";
}

TEST(MultiProcess, WriterKilledAndRestartedReaderReopensIntoTheNewSession) {
  SegmentCleanup seg(unique_segment_name("restart"));
  ChildProcess w1;
  const uint64_t s1 = start_writer(w1, seg.name());
  ASSERT_NE(s1, 0u);
  Client client;
  ASSERT_TRUE(client.open_wait(seg.name(), client_options(), 5000 * kMs));
  EXPECT_EQ(client.session_id(), s1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(read_frame_of(client, s1, 3000ms));

  w1.kill9();
  ASSERT_EQ(w1.wait_exit(2000ms), std::optional<int>(ChildProcess::kKilledStatus));
  const auto killed = Clock::now();
  // The reader notices on its own, without any message from the dead writer.
  Errc seen = Errc::Ok;
  bool mismatch = false;
  while (ms_since(killed) < 3000.0) {
    auto frame = client.wait_next(1000 * kMs);
    if (frame && frame->session_mismatch) {
      mismatch = true;
      break;
    }
    if (!frame && frame.code() != Errc::Timeout) {
      seen = frame.code();
      break;
    }
  }
  EXPECT_TRUE(mismatch || seen == Errc::WriterGone) << "got " << errc_name(seen);
  EXPECT_LT(ms_since(killed), 1000.0) << "a dead writer is detected within the 100 ms liveness slices";
  EXPECT_FALSE(client.writer_alive());

  // A new writer reclaims the name left by the crashed one.
  ChildProcess w2;
  const uint64_t s2 = start_writer(w2, seg.name());
  ASSERT_NE(s2, 0u) << "a crashed writer's segment must be reclaimed";
  EXPECT_NE(s2, s1);
  ASSERT_TRUE(poll_until([&] { return client.reopen().is_ok(); }, 3000ms, 5ms));
  EXPECT_EQ(client.session_id(), s2);
  EXPECT_TRUE(client.writer_alive());
  // Frame ids restart at 1 in the new session; the reader must not ignore them as old.
  ASSERT_TRUE(read_frame_of(client, s2, 3000ms));
  EXPECT_EQ(client.stats().reopens, 1u);
}

TEST(MultiProcess, WriterKilledMidStreamReaderProcessesFollowTheRestart) {
  SegmentCleanup seg(unique_segment_name("follow"));
  ChildProcess w1;
  const uint64_t s1 = start_writer(w1, seg.name(), {"--interval-us=1000"});
  ASSERT_NE(s1, 0u);
  std::vector<ChildProcess> readers;
  for (const char* mode : {"--mode=copy", "--mode=hold"}) {
    readers.push_back(
        ChildProcess::spawn(reader_args(seg.name(), {"--follow", "--sessions=2", "--frames=20", mode})));
    ASSERT_TRUE(readers.back().valid());
  }
  for (auto& r : readers) ASSERT_TRUE(r.wait_for_line("FRAME", 5000ms)) << r.transcript();
  std::mt19937 rng(99);
  std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50));  // kill at an arbitrary moment
  w1.kill9();
  ASSERT_TRUE(w1.wait_exit(2000ms));
  for (auto& r : readers) {
    auto gone = r.read_line(3000ms);
    while (gone && gone->rfind("FRAME", 0) == 0) gone = r.read_line(3000ms);
    ASSERT_TRUE(gone) << r.transcript();
    EXPECT_TRUE(*gone == "GONE WriterGone" || *gone == "MISMATCH") << *gone;
  }
  ChildProcess w2;
  const uint64_t s2 = start_writer(w2, seg.name(), {"--interval-us=1000"});
  ASSERT_NE(s2, 0u);
  for (auto& r : readers) {
    auto reopened = r.wait_for_line("REOPEN", 5000ms);
    ASSERT_TRUE(reopened) << r.transcript();
    EXPECT_EQ(*reopened, "REOPEN " + std::to_string(s2));
    ASSERT_TRUE(r.wait_for_line("DONE", 5000ms)) << r.transcript();
    EXPECT_EQ(r.wait_exit(3000ms), std::optional<int>(kExitOk)) << r.transcript();
    EXPECT_EQ(r.transcript().find("BAD"), std::string::npos) << r.transcript();
  }
}

// A writer's liveness lock belongs to its segment, not to the thread that created it: seen from
// another process, a writer whose creating thread has exited is alive (on Windows a mutex owned by
// an exited thread would be abandoned; the library holds its locks on a thread of its own).
TEST(MultiProcess, WriterCreatedOnAnExitedThreadStaysAlive) {
  SegmentCleanup seg(unique_segment_name("thread"));
  ChildProcess writer;
  const uint64_t session = start_writer(writer, seg.name(), {"--create-on-thread"});
  ASSERT_NE(session, 0u);
  Client client;
  ASSERT_TRUE(client.open_wait(seg.name(), client_options(), 5000 * kMs));
  std::this_thread::sleep_for(300ms);  // several of the reader's liveness checks
  EXPECT_TRUE(client.writer_alive());
  EXPECT_TRUE(read_frame_of(client, session, 3000ms));
  EXPECT_EQ(Server::create(seg.name(), role_server_options()).code(), Errc::LiveWriter);
  writer.kill9();
  ASSERT_TRUE(writer.wait_exit(2000ms));
  EXPECT_TRUE(poll_until([&] { return !client.writer_alive(); }, 2000ms)) << "and dead once its process is";
}

TEST(MultiProcess, CleanCloseDeliversTheLastFramesThenClosed) {
  SegmentCleanup seg(unique_segment_name("close"));
  ChildProcess writer;
  const uint64_t session = start_writer(
      writer, seg.name(), {"--frames=5", "--close", "--eos", "--wait-readers=1", "--interval-us=5000"});
  ASSERT_NE(session, 0u);
  Client client;
  ASSERT_TRUE(client.open_wait(seg.name(), client_options(), 5000 * kMs));
  uint64_t last_id = 0;
  bool eos = false;
  Errc end = Errc::Ok;
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    auto frame = client.wait_next(1000 * kMs);
    if (!frame) {
      if (frame.code() == Errc::Timeout) continue;
      end = frame.code();
      break;
    }
    if (frame->eos()) {
      eos = true;
    } else {
      last_id = frame->header.frame_id;
    }
  }
  EXPECT_EQ(end, Errc::Closed) << "a clean close is not a crash";
  EXPECT_TRUE(eos) << "the EOS frame published before close reaches the reader";
  EXPECT_EQ(last_id, 5u);
  EXPECT_EQ(writer.wait_exit(3000ms), std::optional<int>(kExitOk)) << writer.transcript();
  EXPECT_FALSE(segment_exists(seg.name())) << "a clean close leaves nothing in /dev/shm";
}

TEST(MultiProcess, SecondWriterProcessIsRefusedWhileTheFirstLives) {
  SegmentCleanup seg(unique_segment_name("second"));
  ChildProcess w1;
  const uint64_t s1 = start_writer(w1, seg.name());
  ASSERT_NE(s1, 0u);
  const uint64_t identity = segment_identity(seg.name());
  Client client;
  ASSERT_TRUE(client.open_wait(seg.name(), client_options(), 5000 * kMs));
  ASSERT_TRUE(read_frame_of(client, s1, 3000ms));

  ChildProcess w2 = ChildProcess::spawn(writer_args(seg.name()));
  auto line = w2.read_line(5000ms);
  ASSERT_TRUE(line) << w2.transcript();
  EXPECT_EQ(line->rfind("ERROR LiveWriter", 0), 0u) << *line;
  EXPECT_NE(line->find(seg.name()), std::string::npos) << "the message names the segment: " << *line;
  EXPECT_EQ(w2.wait_exit(3000ms), std::optional<int>(kExitError));

  // The first writer is untouched.
  EXPECT_EQ(segment_identity(seg.name()), identity);
  EXPECT_TRUE(w1.running());
  ASSERT_TRUE(read_frame_of(client, s1, 3000ms));
  EXPECT_TRUE(client.writer_alive());

  // Once it is gone, a writer may take over.
  w1.kill9();
  ASSERT_TRUE(w1.wait_exit(2000ms));
  ChildProcess w3;
  EXPECT_NE(start_writer(w3, seg.name()), 0u);
}

TEST(MultiProcess, ReaderWaitsThroughAStaleSegmentUntilANewWriter) {
  SegmentCleanup seg(unique_segment_name("stale"));
  ChildProcess dead;
  ASSERT_NE(start_writer(dead, seg.name()), 0u);
  // Windows objects vanish with their last handle, so there a dead writer's segment outlives it only
  // while another process has it open, as a surviving reader would: this process keeps it open.
  auto survivor = Map::open(seg.name());
  ASSERT_TRUE(survivor) << survivor.status().to_string();
  dead.kill9();
  ASSERT_TRUE(dead.wait_exit(2000ms));
  ASSERT_TRUE(segment_exists(seg.name())) << "a crashed writer leaves its segment (to be reclaimed)";

  ChildProcess reader =
      ChildProcess::spawn(reader_args(seg.name(), {"--frames=3", "--open-timeout-ms=10000"}));
  ASSERT_TRUE(reader.wait_for_line("WAITING", 5000ms)) << reader.transcript();
  EXPECT_FALSE(reader.read_line(200ms)) << "a dead writer's segment is not opened: " << reader.transcript();

  auto server = Server::create(seg.name(), role_server_options());
  ASSERT_TRUE(server) << "the stale segment is reclaimed: " << server.status().to_string();
  uint64_t next_id = 1;
  const auto deadline = Clock::now() + 10s;
  while (reader.running() && Clock::now() < deadline) {
    ASSERT_TRUE(publish_pattern_frame(*server, next_id));
    ++next_id;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(reader.wait_exit(1000ms), std::optional<int>(kExitOk)) << reader.transcript();
  while (reader.read_line(100ms)) {
  }
  EXPECT_NE(reader.transcript().find("OPEN " + std::to_string(server->session_id())), std::string::npos)
      << reader.transcript();
}

}  // namespace
