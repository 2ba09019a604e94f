// SPDX-License-Identifier: MIT
// Segment lifecycle: names, permissions, one live writer, clean close, foreign segments, error texts.
#include <gtest/gtest.h>
#ifndef _WIN32
#include <sys/stat.h>  // umask
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "shmx_client.h"
#include "shmx_server.h"
#include "test_support.h"

using namespace shmx;
using namespace std::chrono_literals;
using shmx_test::ForeignSegment;
using shmx_test::SegmentCleanup;
using shmx_test::unique_segment_name;

namespace {

ServerOptions small_options() {
  ServerOptions options;
  options.slot_count = 3;
  options.slot_payload_capacity = 4096;
  options.reader_capacity = 2;
  return options;
}

ClientOptions quiet() {
  ClientOptions options;
  options.heartbeat_thread = false;
  return options;
}

TEST(SegmentName, Validation) {
  const std::vector<std::string> good = {"cam0", "a", "a.b-c_D9", "x..y",
                                         std::string(kMaxSegmentNameLength, 'n')};
  for (const auto& name : good) EXPECT_TRUE(validate_segment_name(name)) << name;
  const std::vector<std::string> bad = {"",       std::string(kMaxSegmentNameLength + 1, 'n'),
                                        "a/b",    "/cam0",
                                        "..",     "../etc",
                                        ".",      ".hidden",
                                        "a b",    std::string("a\0b", 3),
                                        "caméra", "tab\t",
                                        "a*b",    "a\\b"};
  for (const auto& name : bad) {
    Status st = validate_segment_name(name);
    EXPECT_EQ(st.code(), Errc::InvalidName) << "'" << name << "'";
    EXPECT_FALSE(st.message().empty()) << "'" << name << "'";
  }
}

TEST(SegmentName, ServerAndClientRefuseInvalidNames) {
  for (const std::string name : {"", "../x", "a/b", ".x"}) {
    auto server = Server::create(name, small_options());
    EXPECT_EQ(server.code(), Errc::InvalidName) << "'" << name << "'";
    Client client;
    EXPECT_EQ(client.open(name, quiet()).code(), Errc::InvalidName) << "'" << name << "'";
  }
}

TEST(SegmentName, LongestNameWorks) {
  std::string name = unique_segment_name("long");
  name += std::string(kMaxSegmentNameLength - name.size(), 'x');
  SegmentCleanup cleanup(name);
  auto server = Server::create(name, small_options());
  ASSERT_TRUE(server) << server.status().to_string();
  EXPECT_TRUE(shmx_test::segment_exists(name));
  Client client;
  EXPECT_TRUE(client.open(name, quiet()));
}

// Windows has no file modes or umask: its objects get the creator's default security (docs/design.md,
// "Windows"), so the two permission tests are reported as skipped there.
constexpr const char* kNoModesOnWindows = "Windows objects have no chmod bits (default security descriptor)";

TEST(Segment, DefaultPermissionsAreOwnerOnly) {
#ifdef _WIN32
  GTEST_SKIP() << kNoModesOnWindows;
#else
  SegmentCleanup seg(unique_segment_name("perm"));
  const mode_t old_mask = umask(0);  // a permissive umask must not widen the default
  auto server = Server::create(seg.name(), small_options());
  umask(old_mask);
  ASSERT_TRUE(server) << server.status().to_string();
  EXPECT_EQ(shmx_test::segment_mode(seg.name()), 0600);
#endif
}

TEST(Segment, PermissionsAreSettableWhateverTheUmask) {
#ifdef _WIN32
  GTEST_SKIP() << kNoModesOnWindows;
#else
  struct Case {
    uint32_t permissions;
    mode_t umask;
  };
  for (const Case c : {Case{0640, 077}, Case{0666, 022}, Case{0660, 0}}) {
    SegmentCleanup seg(unique_segment_name("perm"));
    ServerOptions options = small_options();
    options.permissions = c.permissions;
    const mode_t old_mask = umask(c.umask);
    auto server = Server::create(seg.name(), options);
    umask(old_mask);
    ASSERT_TRUE(server) << server.status().to_string();
    EXPECT_EQ(shmx_test::segment_mode(seg.name()), static_cast<int>(c.permissions))
        << std::oct << "requested " << c.permissions << " with umask " << c.umask;
  }
#endif
}

#ifdef _WIN32
// What Windows does instead: the segment is created, and the log handler hears that the mode was
// not applied (nothing is silently different).
TEST(Segment, PermissionsOtherThan0600AreReportedAsNotAppliedOnWindows) {
  static std::vector<std::string> warnings;
  warnings.clear();
  set_log_handler(
      [](LogLevel level, const char* message, void*) {
        if (level == LogLevel::Warning) warnings.emplace_back(message);
      },
      nullptr);
  shmx_test::ScopeExit restore([] { set_log_handler(nullptr, nullptr); });
  SegmentCleanup seg(unique_segment_name("perm"));
  ServerOptions options = small_options();
  options.permissions = 0640;
  auto server = Server::create(seg.name(), options);
  ASSERT_TRUE(server) << server.status().to_string();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(seg.name()), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("0640"), std::string::npos) << warnings[0];
  server->close();
  SegmentCleanup other(unique_segment_name("perm"));
  ASSERT_TRUE(Server::create(other.name(), small_options()));
  EXPECT_EQ(warnings.size(), 1u) << "the default 0600 is what Windows gives: no warning";
}
#endif

TEST(Segment, SecondServerOnALiveNameIsRefused) {
  SegmentCleanup seg(unique_segment_name("live"));
  auto first = Server::create(seg.name(), small_options());
  ASSERT_TRUE(first) << first.status().to_string();
  const uint64_t identity = shmx_test::segment_identity(seg.name());

  auto second = Server::create(seg.name(), small_options());
  EXPECT_EQ(second.code(), Errc::LiveWriter) << second.status().to_string();
  EXPECT_NE(second.status().message().find(seg.name()), std::string::npos)
      << "the message names the segment: " << second.status().to_string();

  // The live writer is untouched: same file, still serving.
  EXPECT_EQ(shmx_test::segment_identity(seg.name()), identity);
  Client client;
  ASSERT_TRUE(client.open(seg.name(), quiet()));
  EXPECT_EQ(client.session_id(), first->session_id());
  const uint8_t byte = 7;
  ASSERT_TRUE(first->publish({{0, &byte, 1}}));
  auto frame = client.read_latest();
  ASSERT_TRUE(frame) << frame.status().to_string();
  EXPECT_EQ(frame->header.session_id, first->session_id());
}

// Liveness locks belong to the open segment for as long as it is open, not to the thread that took
// them: a writer or reader set up on a thread that has since exited is still alive. (Seen from the
// same process; multiproc's WriterCreatedOnAnExitedThreadStaysAlive checks it from another one,
// which on Windows is what an abandoned mutex would fail.)
TEST(Segment, LocksOutliveTheThreadsThatTookThem) {
  SegmentCleanup seg(unique_segment_name("threads"));
  std::optional<Server> server;
  Client reader;
  Status reader_status;
  std::thread([&] {
    auto created = Server::create(seg.name(), small_options());
    ASSERT_TRUE(created) << created.status().to_string();
    server.emplace(std::move(*created));
  }).join();
  ASSERT_TRUE(server);
  std::thread([&] { reader_status = reader.open(seg.name(), quiet()); }).join();
  ASSERT_TRUE(reader_status) << reader_status.to_string();

  Client probe;
  ASSERT_TRUE(probe.open(seg.name(), quiet()));
  EXPECT_TRUE(probe.writer_alive()) << "the writer's thread exited, the writer did not";
  EXPECT_EQ(Server::create(seg.name(), small_options()).code(), Errc::LiveWriter);
  const auto readers = server->readers();
  ASSERT_EQ(readers.size(), 2u);
  for (const ReaderInfo& info : readers) EXPECT_TRUE(info.alive) << "reader slot " << info.index;
  EXPECT_TRUE(server->reap_stale_readers().empty()) << "no live reader is reaped";
}

TEST(Segment, CloseRemovesTheNameAndReadersSeeClosed) {
  SegmentCleanup seg(unique_segment_name("close"));
  auto server = Server::create(seg.name(), small_options());
  ASSERT_TRUE(server) << server.status().to_string();
  EXPECT_TRUE(shmx_test::segment_exists(seg.name()));
  const auto names = list_segments();
  EXPECT_NE(std::find(names.begin(), names.end(), seg.name()), names.end()) << "list_segments shows it";

  Client client;
  ASSERT_TRUE(client.open(seg.name(), quiet()));
  EXPECT_TRUE(client.writer_alive());
  server->close();
  EXPECT_FALSE(shmx_test::segment_exists(seg.name()));
  const auto after = list_segments();
  EXPECT_EQ(std::find(after.begin(), after.end(), seg.name()), after.end());
  server->close();  // idempotent

  EXPECT_EQ(client.read_latest().code(), Errc::Closed);
  const auto start = shmx_test::Clock::now();
  EXPECT_EQ(client.wait_next(5000 * 1000000ull).code(), Errc::Closed);
  EXPECT_LT(shmx_test::ms_since(start), 300.0);
}

TEST(Segment, ClosedWhileWaitingWakesTheReader) {
  SegmentCleanup seg(unique_segment_name("closewait"));
  auto server = Server::create(seg.name(), small_options());
  ASSERT_TRUE(server) << server.status().to_string();
  Client client;
  ASSERT_TRUE(client.open(seg.name(), quiet()));
  Result<FrameView> result(Errc::Ok, "not run");
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    result = client.wait_next(10000 * 1000000ull);
    done = true;
  });
  shmx_test::ScopeExit join([&] {
    if (waiter.joinable()) {
      client.interrupt();
      waiter.join();
    }
  });
  std::this_thread::sleep_for(20ms);  // let it block; the outcome is the same if it has not yet
  const auto start = shmx_test::Clock::now();
  server->close();
  EXPECT_TRUE(shmx_test::poll_until([&] { return done.load(); }, 1000ms));
  EXPECT_LT(shmx_test::ms_since(start), 150.0) << "close wakes waiters";
  waiter.join();
  EXPECT_EQ(result.code(), Errc::Closed) << result.status().to_string();
}

TEST(Segment, DestructorRemovesTheName) {
  SegmentCleanup seg(unique_segment_name("dtor"));
  {
    auto server = Server::create(seg.name(), small_options());
    ASSERT_TRUE(server) << server.status().to_string();
    Server moved = std::move(server.value());
    EXPECT_TRUE(moved.valid());
    EXPECT_TRUE(shmx_test::segment_exists(seg.name()));
  }
  EXPECT_FALSE(shmx_test::segment_exists(seg.name()));
}

TEST(Segment, RecreatedNameHasANewSession) {
  SegmentCleanup seg(unique_segment_name("again"));
  std::set<uint64_t> sessions;
  for (int i = 0; i < 3; ++i) {
    auto server = Server::create(seg.name(), small_options());
    ASSERT_TRUE(server) << server.status().to_string();
    EXPECT_NE(server->session_id(), 0u);
    sessions.insert(server->session_id());
    server->close();
  }
  EXPECT_EQ(sessions.size(), 3u);
}

TEST(Segment, ClientOnMissingSegment) {
  const std::string name = unique_segment_name("none");
  Client client;
  EXPECT_EQ(client.open(name, quiet()).code(), Errc::NotFound);
  EXPECT_FALSE(client.is_open());
  const auto start = shmx_test::Clock::now();
  EXPECT_EQ(client.open_wait(name, quiet(), 50 * 1000000ull).code(), Errc::Timeout);
  EXPECT_LT(shmx_test::ms_since(start), 1000.0);
}

TEST(Segment, OpenWaitCanBeInterrupted) {
  const std::string name = unique_segment_name("none");
  Client client;
  Status result(Errc::Ok, "not run");
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    result = client.open_wait(name, quiet(), 0);
    done = true;
  });
  shmx_test::ScopeExit join([&] {
    if (waiter.joinable()) {
      client.interrupt();
      waiter.join();
    }
  });
  std::this_thread::sleep_for(20ms);
  const auto start = shmx_test::Clock::now();
  client.interrupt();
  EXPECT_TRUE(shmx_test::poll_until([&] { return done.load(); }, 1000ms));
  EXPECT_LT(shmx_test::ms_since(start), 150.0);
  EXPECT_TRUE(done);
  waiter.join();
  EXPECT_EQ(result.code(), Errc::Interrupted);
}

TEST(Segment, OpenWaitSucceedsOnceTheWriterAppears) {
  SegmentCleanup seg(unique_segment_name("late"));
  Client client;
  Status result(Errc::Ok, "not run");
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    result = client.open_wait(seg.name(), quiet(), 5000 * 1000000ull);
    done = true;
  });
  shmx_test::ScopeExit join([&] {
    if (waiter.joinable()) {
      client.interrupt();
      waiter.join();
    }
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(done) << "no writer yet";
  auto server = Server::create(seg.name(), small_options());
  ASSERT_TRUE(server) << server.status().to_string();
  ASSERT_TRUE(shmx_test::poll_until([&] { return done.load(); }, 2000ms));
  waiter.join();
  ASSERT_TRUE(result) << result.to_string();
  EXPECT_EQ(client.session_id(), server->session_id());
}

// --- Foreign and corrupt segments under a shmx name ---

std::vector<uint8_t> header_image(const std::function<void(GlobalHeader&)>& edit, size_t size = 3 * 4096) {
  std::vector<uint8_t> bytes(size, 0);
  alignas(64) unsigned char raw[sizeof(GlobalHeader)] = {};
  auto& h = *reinterpret_cast<GlobalHeader*>(raw);
  h.magic = kMagic;
  h.layout_version = kLayoutVersion;
  h.header_size = sizeof(GlobalHeader);
  h.total_size = size;
  h.session_id = 1;
  h.state.store(static_cast<uint32_t>(SegmentState::Ready));
  h.metadata_offset = 256;
  h.metadata_capacity = 64;
  h.slot_control_offset = 384;
  h.slot_count = 3;
  h.slot_stride = 4096;
  h.slots_offset = 4096;
  h.slot_payload_capacity = 4096 - 64;
  h.reader_region_offset = 4 * 4096;  // past the end: corrupt unless edited
  h.reader_capacity = 1;
  h.reader_stride = 256 + 256;
  h.control_ring_capacity = 256;
  h.reader_timeout_ms = 1000;
  edit(h);
  std::memcpy(bytes.data(), raw, sizeof(raw));
  return bytes;
}

TEST(ForeignSegments, AreRefusedWithAClearError) {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
    Errc expected;
  };
  std::vector<uint8_t> garbage(8192);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 37 + 11);
  const std::vector<Case> cases = {
      {"garbage", garbage, Errc::NotShmx},
      {"other layout version", header_image([](GlobalHeader& h) { h.layout_version = 99; }),
       Errc::VersionMismatch},
      {"regions past the end", header_image([](GlobalHeader&) {}), Errc::Corrupt},
      {"slot count beyond the limit", header_image([](GlobalHeader& h) {
         h.slot_count = 1000;
         h.reader_region_offset = 2 * 4096;
       }),
       Errc::Corrupt},
  };
  for (const Case& c : cases) {
    const std::string name = unique_segment_name("foreign");
    ForeignSegment foreign(name, c.bytes);
    Client client;
    Status st = client.open(name, quiet());
    EXPECT_EQ(st.code(), c.expected) << c.what << ": " << st.to_string();
    EXPECT_FALSE(st.message().empty()) << c.what;
    EXPECT_FALSE(client.is_open()) << c.what;
  }
}

TEST(ForeignSegments, TooSmallOrEmptyIsNotAValidSegment) {
  for (size_t size : {size_t{0}, size_t{16}, sizeof(GlobalHeader) - 1}) {
    const std::string name = unique_segment_name("tiny");
    ForeignSegment foreign(name, std::vector<uint8_t>(size, 0));
    Client client;
    Status st = client.open(name, quiet());
    EXPECT_FALSE(st) << "size " << size;
    EXPECT_TRUE(st.code() == Errc::NotReady || st.code() == Errc::NotShmx || st.code() == Errc::Corrupt)
        << "size " << size << ": " << st.to_string();
  }
}

TEST(ForeignSegments, AServerDoesNotTakeOverAForeignLockedFile) {
  const std::string name = unique_segment_name("foreignlive");
  ForeignSegment foreign(name, std::vector<uint8_t>(4096, 0xAB));
  auto server = Server::create(name, small_options());
  EXPECT_EQ(server.code(), Errc::LiveWriter) << server.status().to_string();
}

// --- Errors as text ---

TEST(Errors, NamesAndStatusText) {
  const std::vector<std::pair<Errc, const char*>> names = {
      {Errc::Ok, "Ok"},
      {Errc::InvalidArgument, "InvalidArgument"},
      {Errc::InvalidName, "InvalidName"},
      {Errc::NotFound, "NotFound"},
      {Errc::LiveWriter, "LiveWriter"},
      {Errc::PermissionDenied, "PermissionDenied"},
      {Errc::NotReady, "NotReady"},
      {Errc::NotShmx, "NotShmx"},
      {Errc::VersionMismatch, "VersionMismatch"},
      {Errc::Corrupt, "Corrupt"},
      {Errc::TooLarge, "TooLarge"},
      {Errc::NoFreeSlot, "NoFreeSlot"},
      {Errc::RingFull, "RingFull"},
      {Errc::NoFrame, "NoFrame"},
      {Errc::Timeout, "Timeout"},
      {Errc::Interrupted, "Interrupted"},
      {Errc::WriterGone, "WriterGone"},
      {Errc::Closed, "Closed"},
      {Errc::NoReaderSlot, "NoReaderSlot"},
      {Errc::SystemError, "SystemError"},
  };
  for (const auto& [code, name] : names) {
    ASSERT_NE(errc_name(code), nullptr);
    EXPECT_STREQ(errc_name(code), name);
  }
  ASSERT_NE(errc_name(static_cast<Errc>(9999)), nullptr) << "an unknown code still has a printable name";
  EXPECT_EQ(Status(Errc::Timeout, "no frame within 50 ms").to_string(), "Timeout: no frame within 50 ms");
  EXPECT_TRUE(Status::ok());
  EXPECT_EQ(Status().code(), Errc::Ok);
  EXPECT_FALSE(Status::ok().to_string().empty());
}

TEST(Errors, ResultHoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> ok(std::make_unique<int>(5));
  ASSERT_TRUE(ok);
  EXPECT_EQ(**ok, 5);
  Result<std::unique_ptr<int>> moved(std::move(ok));
  ASSERT_TRUE(moved);
  std::unique_ptr<int> taken = std::move(moved).value();
  EXPECT_EQ(*taken, 5);
  Result<std::unique_ptr<int>> err(Errc::NotFound, "nothing");
  EXPECT_FALSE(err);
  EXPECT_EQ(err.code(), Errc::NotFound);
  err = Result<std::unique_ptr<int>>(std::make_unique<int>(6));
  ASSERT_TRUE(err);
  EXPECT_EQ(**err, 6);
}

}  // namespace
